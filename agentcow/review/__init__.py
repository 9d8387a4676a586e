"""Reviewing a session: its row diffs, and what approving them means."""

from agentcow.review.diff import ChangeSet, DiffType, RowDiff, diff

__all__ = ["ChangeSet", "DiffType", "RowDiff", "diff"]
