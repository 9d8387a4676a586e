"""SafeAgentDB's public names, on PostgreSQL copy-on-write sessions.

``from agentcow.shadow import ShadowDB, SafeModel`` in place of ``from safeagentdb import
...``: the agent works on the real tables through a session instead of a SQLite copy of one
tenant's rows, so every constraint, default, trigger and type is production's own, and a
statement that would leave the tenant fails when it runs (SafeAgentDB accepts it in the
sandbox and refuses the commit). The differences are listed in the README ("Switching from
SafeAgentDB").
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentcow.agent.guard import SqlGuard
from agentcow.blocking import run_blocking
from agentcow.catalog import registered_tables
from agentcow.commit import discard_cow_session_schema
from agentcow.deploy import deploy_cow_functions
from agentcow.enable import enable_cow
from agentcow.errors import (
    CommitConflictError,
    CowError,
    TenantIsolationError,
    UnsupportedTableError,
)
from agentcow.naming import Layout
from agentcow.review.diff import ChangeSet, DiffType, RowDiff
from agentcow.review.reviewer_sync import Reviewer
from agentcow.review.validation import SafeModel, get_validator
from agentcow.session import apply_cow_variables

if TYPE_CHECKING:
    from sqlalchemy import CursorResult, Engine
    from sqlalchemy.orm import Session

__all__ = [
    "ChangeSet",
    "ConflictError",
    "DiffType",
    "IntegrityViolationError",
    "MissingValidatorError",
    "MissingValidatorWarning",
    "RowDiff",
    "SafeAgentDBError",
    "SafeModel",
    "SchemaError",
    "ShadowDB",
    "SyncError",
    "get_validator",
]


class SafeAgentDBError(CowError):
    """Base class of the errors SafeAgentDB's API raises."""


class SchemaError(SafeAgentDBError):
    """A table cannot be put in a session as it is (no key, partitioned, ...)."""


class SyncError(SafeAgentDBError):
    """A changeset was refused or could not be applied: a tenant breach, a second commit."""


class ConflictError(SyncError):
    """A production row changed since the session first wrote it; nothing was written.
    ``table``, ``row_key`` and ``columns`` (the drifted columns) name the first one."""

    def __init__(
        self, message: str, table: str, row_key: dict[str, Any], columns: list[str]
    ) -> None:
        super().__init__(message)
        self.table = table
        self.row_key = row_key
        self.columns = columns


class IntegrityViolationError(SyncError):
    """Production refused the commit with an integrity error (``__cause__``)."""


class MissingValidatorError(SafeAgentDBError, KeyError):
    """A table the agent wrote has no ``SafeModel`` and ``require_validators`` is set."""


class MissingValidatorWarning(UserWarning):
    """A row was written without a ``SafeModel`` (``require_validators=False``)."""


def missing_validator_message(table: str) -> str:
    return (
        f"no SafeModel is registered for table {table!r}: define one with "
        f"__table_name__ = {table!r}, or pass require_validators=False"
    )


class ShadowDB:
    """A copy-on-write session of one tenant over ``tables`` of a PostgreSQL database.

    Entering it deploys the kit and puts the tables under copy-on-write if they are not
    (as their owner; ``layout``: see the README's *Layouts*), with ``tenant_column`` as their
    tenant column, and ``reference_tables`` read-only for tenants; then opens ``session``: a
    SQLAlchemy ``Session`` whose every transaction runs in the agent's session, bound to
    ``tenant_id``. Leaving it forgets what was not committed.
    """

    def __init__(
        self,
        prod_engine: Engine,
        tables: Sequence[str],
        tenant_id: Any,
        tenant_column: str = "user_id",
        *,
        schema: str = "public",
        row_key: dict[str, list[str]] | None = None,
        reference_tables: Sequence[str] = (),
        require_validators: bool = True,
        on_conflict: str = "abort",
        layout: Layout = "rename",
        guard: bool = True,
    ) -> None:
        if on_conflict not in ("abort", "merge", "overwrite"):
            raise ValueError(
                "on_conflict must be 'abort' (refuse the whole commit), 'merge' or "
                f"'overwrite', not {on_conflict!r}; SafeAgentDB's 'ignore' (apply the rest) "
                "is not offered: a commit applies what was reviewed, all of it or nothing"
            )
        self.prod_engine = prod_engine
        self._tables = list(tables)
        self.reference_table_names = list(reference_tables)
        self.tenant_id = tenant_id
        self.tenant_column = tenant_column
        self.schema = schema
        self.row_keys: dict[str, list[str]] = dict(row_key or {})
        self.require_validators = require_validators
        # SafeAgentDB guards the columns the agent changed: a production edit of another
        # column of the row coexists, which is the merge policy
        self.on_conflict = "merge" if on_conflict == "abort" else on_conflict
        self.layout = layout
        # execute() and query() check the agent's SQL: the tables, bare (or qualified with
        # the schema in the rename layout, where the qualified name is the view's too)
        self.guard = (
            SqlGuard(cow_tables=self.tables, schemas=(schema,) if layout == "rename" else ())
            if guard
            else None
        )
        self.session_id = uuid.uuid4()
        self.clone_stats: dict[str, int] = {}
        self._session: Session | None = None
        self._review: Reviewer | None = None
        self._committed = False

    # -- the context -----------------------------------------------------------------------

    def __enter__(self) -> ShadowDB:
        from sqlalchemy import event, func, select, table
        from sqlalchemy.orm import Session

        with self.prod_engine.begin() as connection:
            executor = _executor(connection)
            run_blocking(deploy_cow_functions(executor))
            for name in self._tables:
                self._enable(executor, name, read_only=False)
            for name in self.reference_table_names:
                self._enable(executor, name, read_only=True)
            entries = run_blocking(registered_tables(executor, self.schema))
            for entry in entries:
                if entry.name in self.tables:
                    self.row_keys.setdefault(entry.name, list(entry.pk_columns))
        session = Session(bind=self.prod_engine)
        event.listen(session, "after_begin", self._enter_session)
        self._session = session
        for name in self.tables:
            # unqualified, as the agent names them: the session's search_path finds the views
            counted = session.execute(select(func.count()).select_from(table(name)))
            self.clone_stats[name] = int(counted.scalar_one())
        session.commit()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            self._session.rollback()
            self._session.close()
            self._session = None
        if not self._committed:
            with self.prod_engine.begin() as connection:
                run_blocking(
                    discard_cow_session_schema(_executor(connection), self.session_id, self.schema)
                )

    def _enable(self, executor: Any, table: str, *, read_only: bool) -> None:
        try:
            run_blocking(
                enable_cow(
                    executor,
                    table,
                    pk_cols=self.row_keys.get(table),
                    schema=self.schema,
                    layout=self.layout,
                    tenant_column=None if read_only else self.tenant_column,
                    read_only_for_tenants=read_only,
                )
            )
        except UnsupportedTableError as error:
            raise SchemaError(str(error)) from error

    def _enter_session(self, session: Session, transaction: Any, connection: Any) -> None:
        """Every transaction of ``session`` writes as one new operation of the session."""
        run_blocking(
            apply_cow_variables(
                _executor(connection),
                self.session_id,
                uuid.uuid4(),
                tenant_id=self.tenant_id,
                label="ShadowDB",
            )
        )

    # -- the agent's side ------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The SQLAlchemy ``Session`` the agent's statements run in (ORM use included)."""
        if self._session is None:
            raise SyncError("the ShadowDB is not open: use it as a context manager")
        return self._session

    @property
    def tables(self) -> list[str]:
        return [*self._tables, *self.reference_table_names]

    @property
    def dialect(self) -> str:
        return str(self.prod_engine.dialect.name)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> CursorResult[Any]:
        """Run the agent's SQL (``:name`` parameters) in the session, once the SQL guard
        let it through (:class:`~agentcow.errors.GuardRefusal` otherwise)."""
        from sqlalchemy import text

        if self.guard is not None:
            self.guard.check(sql)
        return self.session.execute(text(sql), params or {})  # type: ignore[return-value]

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query in the session: its rows as dicts."""
        return [dict(row) for row in self.execute(sql, params).mappings()]

    # -- review and commit -----------------------------------------------------------------

    def diff(self) -> ChangeSet:
        """What the session changed, row by row (its open transaction is committed first:
        into the session, not production)."""
        self.session.commit()
        return self._reviewer().diff()

    def _reviewer(self) -> Reviewer:
        if self._review is None:
            self._review = Reviewer(self.prod_engine, self.session_id, schema=self.schema)
        return self._review

    def commit_to_production(self) -> int:
        """Apply the session to the tables in one transaction, after its gates: the tenant
        (already enforced at each statement, checked again by the commit), the row models
        (``pydantic.ValidationError``; :class:`MissingValidatorError`), conflicts with
        production (:class:`ConflictError`). Returns the rows written. Once only."""
        if self._committed:
            raise SyncError("this ShadowDB has committed already: a session commits once")
        changes = self.diff()
        for row in changes.diffs:
            self._validate(row)
        try:
            written = self._reviewer().commit(on_conflict=self.on_conflict)
        except TenantIsolationError as error:
            raise SyncError(f"Tenant breach blocked: {error}") from error
        except CommitConflictError as error:
            first = error.conflicts[0] if error.conflicts else None
            raise ConflictError(
                f"{error}",
                first.table if first else "",
                first.key if first else {},
                list(first.columns) if first else [],
            ) from error
        except Exception as error:
            if _is_integrity_error(error):
                raise IntegrityViolationError(f"production refused the commit: {error}") from error
            raise
        self._committed = True
        return sum(written.values())

    def _validate(self, row: RowDiff) -> None:
        if row.new is None:
            return
        model = get_validator(row.table, row.schema)
        if model is None:
            if self.require_validators:
                raise MissingValidatorError(missing_validator_message(row.table))
            warnings.warn(missing_validator_message(row.table), MissingValidatorWarning, 2)
            return
        model.model_validate(row.new)


def _executor(connection: Any) -> Any:
    from agentcow.adapters.sqlalchemy import SQLAlchemySyncExecutor

    return SQLAlchemySyncExecutor(connection)


def _is_integrity_error(error: BaseException) -> bool:
    from agentcow.driver_errors import postgres_error_fields

    fields = postgres_error_fields(error)
    return fields is not None and fields[0].startswith("23")
