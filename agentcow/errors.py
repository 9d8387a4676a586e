"""Errors the kit raises itself; errors from PostgreSQL reach callers as the driver raises them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentcow.conflicts import Cascade, Conflict
    from agentcow.review.policy import PolicyReport


class CowError(Exception):
    """Base class of every error raised by agentcow."""


class InvalidIdError(CowError, ValueError):
    """A session or operation id is not a UUID."""


class InvalidIdentifierError(CowError, ValueError):
    """A table, schema or column name cannot be used (empty, too long once suffixed, ...)."""


class TableNotFoundError(CowError, LookupError):
    """The named table does not exist in the schema."""


class UnsupportedTableError(CowError):
    """The table cannot be COW-enabled as it is (partitioned, reserved names, ...).

    ``reasons`` maps each table refused (``schema.name``) to why: ``enable_cow_schema``
    names every table of the schema it cannot enable in one error."""

    def __init__(self, message: str, reasons: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.reasons = dict(reasons or {})


class NotDeployedError(CowError):
    """deploy_cow_functions() has not been run on this database."""


class KitVersionError(CowError):
    """The database holds a kit version this package cannot upgrade or use."""


class PendingChangesError(CowError):
    """Sessions still hold changes for a table that is being disabled."""


class DependencyCycleError(CowError, ValueError):
    """Dirty tables reference each other in a cycle and FK checks are not deferred."""


class OperationsNotClosedError(CowError, ValueError):
    """A cherry-pick leaves out operations it needs: the dependencies of what is committed,
    or the dependents of what is discarded. ``missing`` names them."""

    def __init__(self, message: str, missing: list[uuid.UUID]) -> None:
        super().__init__(message)
        self.missing = missing


class OperationNotFoundError(CowError, LookupError):
    """An operation id names no operation of the session (never written, or already gone)."""


class SessionNotInTransactionError(CowError):
    """A session was entered outside a transaction (autocommit mode, or a pool handing out a
    different connection per statement): its settings would be gone before the agent's next
    statement, which would then write to production."""


class ShadowedNamesError(CowError):
    """The connection holds temporary objects, left by an earlier request, that shadow
    tables or types the agent's SQL names (``.names``): they would read its statements and
    session id. Reset connections when they go back to the pool (``DISCARD ALL``, or
    ``DISCARD TEMP``), or drop them."""

    def __init__(self, message: str, names: list[str]) -> None:
        super().__init__(message)
        self.names = names


class OverlayMissingError(CowError):
    """Overlay views of tables (``.tables``) on the session's ``search_path`` are missing (a
    migration dropped them): the agent's SQL would reach the tables themselves. Their owner
    calls ``refresh_cow`` to make them again."""

    def __init__(self, message: str, tables: list[str]) -> None:
        super().__init__(message)
        self.tables = tables


class StaleOverlayError(OverlayMissingError):
    """A column an overlay reads (``.tables``) was dropped, renamed or given another type
    since the overlay was made: its owner calls ``refresh_cow``."""


class ModelConflictError(CowError, ValueError):
    """A second SafeModel class was registered for a table that has one: unregister the
    first (``ModelRegistry.unregister``), or give one of them ``__schema__``."""


class InvalidPolicyError(CowError, ValueError):
    """A policy cannot be loaded: a key it does not know, a negative limit, a rule that is
    not one SQL expression or a check that is not one query. The message lists each."""


class PolicyError(CowError):
    """A policy cannot be applied to a review: it names a table that is not COW-enabled in
    the review's schema, or the executor cannot hold a transaction (a pool)."""


class PolicyViolationError(CowError):
    """A review fails its policy (a row rule, a check, a model, a limit or a forbidden
    delete): the commit is refused as a whole. ``report`` is the
    :class:`~agentcow.review.policy.PolicyReport` that says what failed."""

    def __init__(self, message: str, report: PolicyReport) -> None:
        super().__init__(message)
        self.report = report


class PersonRequiredError(PolicyViolationError):
    """The review passes its policy but changes a table that always needs a person:
    commit only once one approved it (``require_approved(report, person_approved=True)``)."""


class SessionChangedError(CowError):
    """Agents wrote in the session (or another commit or discard ran) while a commit or
    discard was being prepared, and it could not plan again; nothing was applied.
    ``sqlstate`` is serialization_failure: call again."""

    sqlstate = "40001"


class TenantIsolationError(CowError):
    """A commit found versions of a session bound to a tenant outside that tenant (in another
    tenant's rows, or in a table read-only for tenants), which its write triggers would
    have refused; nothing was applied. ``rows`` names some of them (``{"table", "key"}``).
    ``sqlstate`` is insufficient_privilege, as row-level security's."""

    sqlstate = "42501"

    def __init__(self, message: str, rows: Sequence[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = list(rows)


class ReviewChangedError(CowError):
    """A commit given ``expected=`` (a :class:`~agentcow.review.ChangeSet` fingerprint) found
    other changes than those reviewed: a write after the review, or a later request writing
    under an approved operation. Nothing was applied; review the session again."""


class CommitConflictError(CowError):
    """The base changed under rows the session wrote; nothing was committed.

    ``conflicts`` lists every one (see :class:`agentcow.conflicts.Conflict`). ``sqlstate`` is
    PostgreSQL's serialization_failure, the code a racing commit raises from the database.
    """

    sqlstate = "40001"

    def __init__(self, message: str, conflicts: Sequence[Conflict]) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)


class CascadeConflictError(CommitConflictError):
    """The commit would write stored rows the review did not show, through foreign keys
    that cascade (``cascades``, see :class:`agentcow.conflicts.Cascade`): for example orders
    production added under a customer the session deleted. Nothing was committed; commit
    with ``allow_cascades=True`` once they are reviewed."""

    def __init__(self, message: str, cascades: Sequence[Cascade]) -> None:
        super().__init__(message, [])
        self.cascades = list(cascades)


class HistoryNotFoundError(CowError, LookupError):
    """A session has no committed history to undo in the tables the caller owns: it never
    committed there, or its history is past the retention (``set_history_retention``)."""


class AlreadyUndoneError(CowError):
    """The rows an undo would revert were undone already (by an earlier or a concurrent
    undo); nothing was undone by this call."""


class UnsupportedConnectionError(CowError, TypeError):
    """A scope (``CowSession``, ``Reviewer``) was given something it cannot run on: it takes
    a connection or pool of asyncpg, psycopg 3 or SQLAlchemy (async in ``agentcow``, sync in
    ``agentcow.sync``)."""


class ConnectionBusyError(CowError):
    """The connection given to a scope has a transaction open: a scope opens and ends its own
    transactions, so it needs an idle connection (or a pool)."""


class TransactionEndedError(CowError):
    """The agent's SQL ended the operation's transaction (``COMMIT``, ``ROLLBACK``): the
    statements after it would run outside the session, so none runs."""


class OperationInProgressError(CowError):
    """``operation()`` was opened inside another operation block of the same session."""


class NotReviewedError(CowError):
    """A commit of operations whose diff the reviewer has not taken: call ``diff`` with the
    same selection first, so that the commit applies exactly what was shown."""


class ReviewFinishedError(CowError):
    """The reviewer already committed or discarded: a review ends with one terminal action."""


class NotBlockingError(CowError, RuntimeError):
    """A synchronous call met an executor or connection that waits for an event loop; the
    sync API (``agentcow.sync``) needs blocking ones (psycopg or SQLAlchemy sync)."""


class BindingKeyExistsError(CowError, ValueError):
    """A binding key with that label exists already (labels name keys for revoking)."""


class UnknownRoleError(CowError, LookupError):
    """No role of that name exists in the cluster."""


class GuardRefusal(CowError):
    """The SQL guard refused an agent's statement before it was sent (nothing ran).
    ``code`` is a stable reason (``multiple_statements``, ``function_not_allowed``,
    ``table_not_allowed``...), ``refused`` the fragment refused, ``hint`` what to do
    instead; ``sqlstate`` is insufficient_privilege."""

    sqlstate = "42501"

    def __init__(self, code: str, message: str, *, refused: str, hint: str) -> None:
        self.code = code
        self.message = message
        self.refused = refused
        self.hint = hint
        shown = " ".join(refused.split())  # one line
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        super().__init__(f"refused by the SQL guard ({code}): {message}: {shown} (hint: {hint})")


class GuardSetupError(CowError, ValueError):
    """The SQL guard cannot be set up as asked: a table it would allow is a COW table's base
    or change table, or the connection reads strings otherwise than the guard
    (``standard_conforming_strings`` off)."""


class UnsupportedUpsertError(CowError):
    """An upsert or MERGE through a COW view that the kit cannot run as the table would.
    ``sqlstate`` is feature_not_supported."""

    def __init__(self, message: str, sqlstate: str = "0A000") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
