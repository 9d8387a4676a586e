"""Reviewing a session: its row diffs, and what approving them means."""

from agentcow.review.diff import ChangeSet, DiffType, RowDiff, diff
from agentcow.review.policy import (
    Check,
    CheckResult,
    Decision,
    LimitResult,
    Policy,
    PolicyReport,
    RowRule,
    RuleResult,
    TablePolicy,
    require_approved,
)
from agentcow.review.reviewer import Reviewer
from agentcow.review.validation import (
    InvalidRow,
    ModelRegistry,
    SafeModel,
    ValidationResult,
    default_registry,
    get_validator,
    validate_row,
)

__all__ = [
    "ChangeSet",
    "Check",
    "CheckResult",
    "Decision",
    "DiffType",
    "InvalidRow",
    "LimitResult",
    "ModelRegistry",
    "Policy",
    "PolicyReport",
    "Reviewer",
    "RowDiff",
    "RowRule",
    "RuleResult",
    "SafeModel",
    "TablePolicy",
    "ValidationResult",
    "default_registry",
    "diff",
    "get_validator",
    "require_approved",
    "validate_row",
]
