"""Reviewing a session: its row diffs, and what approving them means."""

from agentcow.review.diff import ChangeSet, DiffType, RowDiff, diff
from agentcow.review.reviewer import Reviewer

__all__ = ["ChangeSet", "DiffType", "Reviewer", "RowDiff", "diff"]
