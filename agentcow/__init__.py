"""agentcow: PostgreSQL copy-on-write sessions for AI agents.

The published agent-cow names live in :mod:`agentcow.postgres` and are re-exported here, with
the error classes and what agentcow adds: operation summaries, schema-wide cherry-picks and
conflict checks.
"""

from agentcow.agent import CowSession, Operation, Result
from agentcow.binding import (
    add_agent_role,
    agent_roles,
    create_binding_key,
    remove_agent_role,
    revoke_binding_key,
)
from agentcow.commit import commit_cow_operations_schema, discard_cow_operations_schema
from agentcow.conflicts import Cascade, Conflict, get_cow_conflicts
from agentcow.errors import (
    AlreadyUndoneError,
    BindingKeyExistsError,
    CascadeConflictError,
    CommitConflictError,
    ConnectionBusyError,
    CowError,
    DependencyCycleError,
    HistoryNotFoundError,
    InvalidIdentifierError,
    InvalidIdError,
    InvalidPolicyError,
    KitVersionError,
    ModelConflictError,
    NotBlockingError,
    NotDeployedError,
    NotReviewedError,
    OperationInProgressError,
    OperationNotFoundError,
    OperationsNotClosedError,
    OverlayMissingError,
    PendingChangesError,
    PersonRequiredError,
    PolicyError,
    PolicyViolationError,
    ReviewChangedError,
    ReviewFinishedError,
    SessionChangedError,
    SessionNotInTransactionError,
    ShadowedNamesError,
    StaleOverlayError,
    TableNotFoundError,
    TenantIsolationError,
    TransactionEndedError,
    UnknownRoleError,
    UnsupportedConnectionError,
    UnsupportedTableError,
)
from agentcow.executor import TransactionAware
from agentcow.operations import OperationSummary, get_operation_summaries
from agentcow.postgres import *  # noqa: F403
from agentcow.postgres import __all__ as _postgres_all
from agentcow.refresh import cow_migration, refresh_cow
from agentcow.registry import (
    DroppedSession,
    SessionRecord,
    SessionState,
    gc_sessions,
    list_sessions,
    set_history_retention,
)
from agentcow.review import (
    ChangeSet,
    DiffType,
    Policy,
    PolicyReport,
    RowDiff,
    SafeModel,
    diff,
    require_approved,
)
from agentcow.review.reviewer import Reviewer
from agentcow.undo import Undone, undo
from agentcow.upgrade import upgrade_cow_tables

__version__ = "0.3.0"

__all__ = [
    *_postgres_all,
    "AlreadyUndoneError",
    "BindingKeyExistsError",
    "Cascade",
    "CascadeConflictError",
    "ChangeSet",
    "CommitConflictError",
    "Conflict",
    "ConnectionBusyError",
    "CowError",
    "CowSession",
    "DependencyCycleError",
    "DiffType",
    "DroppedSession",
    "HistoryNotFoundError",
    "InvalidIdError",
    "InvalidIdentifierError",
    "InvalidPolicyError",
    "KitVersionError",
    "ModelConflictError",
    "NotBlockingError",
    "NotDeployedError",
    "NotReviewedError",
    "Operation",
    "OperationInProgressError",
    "OperationNotFoundError",
    "OperationSummary",
    "OperationsNotClosedError",
    "OverlayMissingError",
    "PendingChangesError",
    "PersonRequiredError",
    "Policy",
    "PolicyError",
    "PolicyReport",
    "PolicyViolationError",
    "Result",
    "ReviewChangedError",
    "ReviewFinishedError",
    "Reviewer",
    "RowDiff",
    "SafeModel",
    "SessionChangedError",
    "SessionNotInTransactionError",
    "SessionRecord",
    "SessionState",
    "ShadowedNamesError",
    "StaleOverlayError",
    "TableNotFoundError",
    "TenantIsolationError",
    "TransactionAware",
    "TransactionEndedError",
    "Undone",
    "UnknownRoleError",
    "UnsupportedConnectionError",
    "UnsupportedTableError",
    "add_agent_role",
    "agent_roles",
    "commit_cow_operations_schema",
    "cow_migration",
    "create_binding_key",
    "diff",
    "discard_cow_operations_schema",
    "gc_sessions",
    "get_cow_conflicts",
    "get_operation_summaries",
    "list_sessions",
    "refresh_cow",
    "remove_agent_role",
    "require_approved",
    "revoke_binding_key",
    "set_history_retention",
    "undo",
    "upgrade_cow_tables",
]
