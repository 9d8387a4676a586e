"""Applying a session's changes to the base tables, or dropping them.

Every call is one atomic statement: a commit that fails leaves base and session as they were.
Across tables, rows are upserted parents first and deleted children first, so foreign keys
hold at every step without deferring them.

A call reads the session (its digest first), plans, then runs one block that locks the
session (see sql/_session_state.sql) and acts only if the session is still the one it
planned for. If an agent wrote in between, the call plans again (in autocommit mode), or
raises :class:`SessionChangedError` (inside the caller's transaction, which the failed block
has aborted).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from graphlib import CycleError, TopologicalSorter
from typing import TypeVar

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.conflicts import (
    CASCADE_MESSAGE,
    CONFLICT_LIMIT,
    CONFLICT_MESSAGE,
    Cascade,
    Conflict,
    ConflictPolicy,
    cascades_in_error,
    check_policy,
    conflicts_in_error,
)
from agentcow.description import RegisteredTable, TableDescription
from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import (
    CascadeConflictError,
    CommitConflictError,
    DependencyCycleError,
    ReviewChangedError,
    SessionChangedError,
    TableNotFoundError,
    TenantIsolationError,
    UnsupportedTableError,
)
from agentcow.executor import Executor, TransactionAware
from agentcow.identifiers import Sql, uuid_array_literal, uuid_literal, validate_uuid
from agentcow.operations import close_selection, dependencies_among, require_known
from agentcow.script import run_atomically
from agentcow.templates import render

IdLike = str | uuid.UUID
T = TypeVar("T")
Watched = list[tuple[str, str]]

#: The block's error when the session holds versions outside its tenant (_tenant_checks.sql).
TENANT_MESSAGE = "agentcow: the session holds rows outside its tenant"
#: The block's error when the session is no longer the one the call planned for.
SESSION_CHANGED_MESSAGE = "agentcow: the session changed while the call was being prepared"
#: The block's error when the chosen versions are not those a reviewer approved.
REVIEW_CHANGED_MESSAGE = "agentcow: the chosen changes differ from those reviewed"
#: Plans a call makes before giving up on a session that keeps changing under it.
PLAN_ATTEMPTS = 5


async def _registered(executor: Executor, schema: str, table: str) -> RegisteredTable:
    await require_kit(executor)
    found = await registered_tables(executor, schema, table)
    if not found:
        raise TableNotFoundError(f"COW is not enabled on {schema}.{table}")
    return found[0]


async def _describe(executor: Executor, schema: str, entry: RegisteredTable) -> TableDescription:
    return await describe_current(executor, schema, entry)


def _check_pk(entry: RegisteredTable, schema: str, pk_cols: Sequence[str] | None) -> None:
    if pk_cols is not None and set(pk_cols) != set(entry.pk_columns):
        raise UnsupportedTableError(
            f"pk_cols {list(pk_cols)} do not match the primary key of {schema}.{entry.name} "
            f"{list(entry.pk_columns)}"
        )


def commit_statement(
    executor: Executor,
    tables: Sequence[TableDescription],
    session: Sql,
    operations: Sql | None,
    on_conflict: ConflictPolicy,
    state: tuple[Watched, str],
    approved: str | None,
    allow_cascades: bool,
) -> str:
    """The scheduled commit of sql/commit.sql; ``tables`` parents first."""
    return render(
        "commit.sql",
        tables=tables,
        dirty={t.name: t for t in tables},
        session=session,
        operations=operations,
        on_conflict=on_conflict,
        conflict_message=CONFLICT_MESSAGE,
        conflict_limit=CONFLICT_LIMIT,
        tenant_message=TENANT_MESSAGE,
        approved=approved,
        approval_message=REVIEW_CHANGED_MESSAGE,
        allow_cascades=allow_cascades,
        cascade_message=CASCADE_MESSAGE,
        **_exclusive_context(executor, state),
    )


def _exclusive_context(executor: Executor, state: tuple[Watched, str]) -> dict[str, object]:
    """What begin_exclusive and end_exclusive (sql/_session_state.sql) need of a commit or
    discard block; ``reclaim``: whether it may truncate the change tables it empties."""
    watched, expected = state
    return {
        "watched": watched,
        "expected": expected,
        "changed_message": SESSION_CHANGED_MESSAGE,
        "reclaim": isinstance(executor, TransactionAware) and executor.runs_alone(),
    }


async def _session_state(
    executor: Executor, session_id: IdLike, schema: str, entries: Sequence[RegisteredTable]
) -> tuple[Watched, str]:
    """The change tables a call acts on and the session's digest over them, read before the
    call plans anything (what it reads after can only be newer)."""
    watched = [entry.changes for entry in entries]
    if not watched:
        return watched, ""
    session = uuid_literal(session_id, "session id")
    rows = await executor.execute(
        render("session_fingerprint.sql", watched=watched, session=session)
    )
    return watched, str(rows[0][0])


def _session_changed(error: BaseException) -> bool:
    fields = postgres_error_fields(error)
    return fields is not None and fields[:2] == ("40001", SESSION_CHANGED_MESSAGE)


async def _in_failed_transaction(executor: Executor) -> bool:
    """After a failed statement: whether it aborted a transaction of the caller's (then every
    statement fails until ROLLBACK) rather than its own (autocommit)."""
    try:
        await executor.execute(render("probe.sql"))
    except Exception as error:
        fields = postgres_error_fields(error)
        if fields is not None and fields[0] == "25P02":
            return True
        raise
    return False


async def _planned(executor: Executor, attempt: Callable[[], Awaitable[T]]) -> T:
    """Runs ``attempt`` (read, plan, act) again while agents change the session between its
    plan and its block; at most PLAN_ATTEMPTS times, and never inside the caller's
    transaction, which the failed block aborted."""
    for number in range(1, PLAN_ATTEMPTS + 1):
        try:
            return await attempt()
        except Exception as error:
            if not _session_changed(error):
                raise
            if number == PLAN_ATTEMPTS or await _in_failed_transaction(executor):
                raise SessionChangedError(
                    "the session gained or lost versions while the call was being prepared "
                    "(an agent wrote, or another commit or discard ran); nothing was applied: "
                    "call again" + (" after ROLLBACK" if number < PLAN_ATTEMPTS else "")
                ) from error
    raise AssertionError("unreachable")


def checked_ids(operation_ids: Sequence[IdLike]) -> list[uuid.UUID]:
    """Ids checked before any SQL runs (they are printed into it)."""
    return [validate_uuid(op, "operation id") for op in operation_ids]


async def _choose(
    executor: Executor,
    tables: Sequence[TableDescription],
    session_id: IdLike,
    chosen: list[uuid.UUID] | None,
    *,
    committing: bool,
    extend: bool,
) -> list[uuid.UUID] | None:
    """The operations to act on, closed under the dependency graph; None means all."""
    if not chosen or not tables:
        return chosen
    dependencies = await dependencies_among(executor, tables, session_id=session_id)
    return close_selection(chosen, dependencies, committing=committing, extend=extend)


async def _commit(
    executor: Executor,
    tables: Sequence[TableDescription],
    session_id: IdLike,
    operation_ids: list[uuid.UUID] | None,
    *,
    on_conflict: ConflictPolicy,
    include_dependencies: bool,
    state: tuple[Watched, str],
    expected: str | None,
    allow_cascades: bool,
    defer_fk_constraints: bool = False,
) -> list[uuid.UUID] | None:
    """Check the choice, then apply it in one atomic statement that locks the base tables,
    checks for conflicts and refuses (40001) or applies; a refusal becomes
    CommitConflictError. Inside a caller's transaction, that transaction is then aborted,
    as by any failed statement."""
    session = uuid_literal(session_id, "session id")
    chosen = await _choose(
        executor,
        tables,
        session_id,
        operation_ids,
        committing=True,
        extend=include_dependencies,
    )
    if not tables or chosen == []:
        if expected is not None and expected != _nothing_approved(session_id):
            raise ReviewChangedError(_REVIEW_CHANGED)
        return chosen
    operations = None if chosen is None else uuid_array_literal(sorted(chosen, key=str))
    statement = commit_statement(
        executor, tables, session, operations, on_conflict, state, expected, allow_cascades
    )
    if defer_fk_constraints:
        statements = [
            render("set_constraints.sql", mode="DEFERRED"),
            statement,
            render("set_constraints.sql", mode="IMMEDIATE"),
        ]
    else:
        statements = [statement]
    try:
        await run_atomically(executor, statements)
    except Exception as error:
        _raise_outside_tenant(error)
        if _review_changed(error):
            raise ReviewChangedError(_REVIEW_CHANGED) from error
        cascades = cascades_in_error(error)
        if cascades is not None:
            raise CascadeConflictError(cascade_message(cascades), cascades) from error
        found = conflicts_in_error(error)
        if found is None:
            raise
        raise CommitConflictError(_conflict_message(found, on_conflict), found) from error
    return chosen


def _raise_outside_tenant(error: BaseException) -> None:
    """The commit block's tenant re-check (sql/_tenant_checks.sql) as TenantIsolationError."""
    fields = postgres_error_fields(error)
    if fields is None or fields[:2] != ("42501", TENANT_MESSAGE):
        return
    rows = json.loads(fields[2])
    shown = "; ".join(f"{row['table']} {row['key']}" for row in rows[:5])
    raise TenantIsolationError(
        f"nothing committed: the session is bound to a tenant but holds versions outside it "
        f"({shown}{' ...' if len(rows) > 5 else ''}): versions its write triggers would have "
        "refused, written around them. Discard the session",
        rows,
    ) from error


_REVIEW_CHANGED = (
    "nothing committed: the chosen changes are not those the fingerprint approved (the "
    "session was written after the review, or operations were added to it); review the "
    "session again"
)


def cascade_message(cascades: Sequence[Cascade]) -> str:
    shown = "; ".join(
        f"{c.table} {c.key or c.row} (through {c.constraint} from {c.parent_table})"
        for c in cascades[:5]
    )
    more = f" and {len(cascades) - 5} more" if len(cascades) > 5 else ""
    return (
        f"nothing committed: the commit would write {len(cascades)} row(s) the review did not "
        f"show, through cascading foreign keys: {shown}{more}. See .cascades; commit with "
        "allow_cascades=True once they are reviewed, or discard"
    )


def _review_changed(error: BaseException) -> bool:
    fields = postgres_error_fields(error)
    return fields is not None and fields[:2] == ("55000", REVIEW_CHANGED_MESSAGE)


def _nothing_approved(session_id: IdLike) -> str:
    """The fingerprint of a choice with no versions (sql/_versions.sql, approval_digest)."""
    return hashlib.sha256(str(validate_uuid(session_id, "session id")).encode()).hexdigest()


def _conflict_message(conflicts: Sequence[Conflict], policy: ConflictPolicy) -> str:
    shown = "; ".join(f"{c.table} {c.key} ({c.kind} in the base)" for c in conflicts[:5])
    more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
    what = "cannot be merged" if policy == "merge" else "changed in the base meanwhile"
    return (
        f"nothing committed: {len(conflicts)} row(s) {what}: {shown}{more}. "
        "See .conflicts; commit with on_conflict='merge' or 'overwrite', or discard"
    )


async def _discard(
    executor: Executor,
    tables: Sequence[TableDescription],
    session_id: IdLike,
    operation_ids: list[uuid.UUID] | None,
    *,
    include_dependents: bool,
    state: tuple[Watched, str],
) -> list[uuid.UUID] | None:
    session = uuid_literal(session_id, "session id")
    chosen = await _choose(
        executor, tables, session_id, operation_ids, committing=False, extend=include_dependents
    )
    if not tables or chosen == []:
        return chosen
    operations = None if chosen is None else uuid_array_literal(chosen)
    await run_atomically(
        executor,
        [
            render(
                "discard.sql",
                tables=tables,
                session=session,
                operations=operations,
                **_exclusive_context(executor, state),
            )
        ],
    )
    return chosen


def parents_first(tables: Sequence[TableDescription]) -> list[TableDescription]:
    by_name = {t.name: t for t in tables}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for t in tables:
        parents = {
            fk.parent_table
            for fk in t.foreign_keys
            if fk.parent_schema == t.schema
            and fk.parent_table in by_name
            and fk.parent_table != t.name
        }
        sorter.add(t.name, *sorted(parents))
    try:
        order = list(sorter.static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise DependencyCycleError(
            f"the session's tables reference each other in a cycle ({cycle}); commit with "
            "defer_fk_constraints=True after enabling COW with allow_deferred_fks=True"
        ) from error
    return [by_name[name] for name in order]


async def commit_cow_session(
    executor: Executor,
    table_name: str,
    session_id: IdLike,
    pk_cols: list[str] | None = None,
    schema: str = "public",
    *,
    on_conflict: str = "fail",
    expected: str | None = None,
    allow_cascades: bool = False,
) -> None:
    """Apply the session's changes to one table and forget them, atomically.

    Rows whose base changed since the session first wrote them are conflicts: by default the
    commit is refused (:class:`CommitConflictError`); ``on_conflict="merge"`` takes both
    sides' changes when they touch different columns; ``"overwrite"`` applies the session's.
    A commit whose deletes or key changes would cascade (through a foreign key's CASCADE,
    SET NULL or SET DEFAULT) to stored rows no chosen version shows is refused with
    :class:`CascadeConflictError` naming them, unless ``allow_cascades``. With ``expected``
    (the fingerprint of ``diff(..., table=table_name)``), the changes must be exactly those
    reviewed, else :class:`ReviewChangedError` and nothing applied.
    """
    await commit_cow_operations(
        executor,
        table_name,
        session_id,
        None,
        pk_cols,
        schema,
        on_conflict=on_conflict,
        expected=expected,
        allow_cascades=allow_cascades,
    )


async def discard_cow_session(
    executor: Executor, table_name: str, session_id: IdLike, schema: str = "public"
) -> None:
    """Forget the session's changes to one table."""
    await discard_cow_operations(executor, table_name, session_id, None, schema)


async def commit_cow_operations(
    executor: Executor,
    table_name: str,
    session_id: IdLike,
    operation_ids: Sequence[IdLike] | None,
    pk_cols: list[str] | None = None,
    schema: str = "public",
    *,
    include_dependencies: bool = False,
    on_conflict: str = "fail",
    expected: str | None = None,
    allow_cascades: bool = False,
) -> None:
    """Apply the chosen operations' changes to one table (all of them when None).

    The choice must hold every operation the chosen ones depend on through this table's rows
    (:class:`OperationsNotClosedError` names the missing ones), unless
    ``include_dependencies`` adds them. Keys to other tables are left to the base's own
    foreign keys; :func:`commit_cow_operations_schema` commits across tables.
    """
    uuid_literal(session_id, "session id")
    policy = check_policy(on_conflict)
    chosen = None if operation_ids is None else checked_ids(operation_ids)

    async def attempt() -> None:
        entry = await _registered(executor, schema, table_name)
        _check_pk(entry, schema, pk_cols)
        state = await _session_state(executor, session_id, schema, [entry])
        t = await _describe(executor, schema, entry)
        await _commit(
            executor,
            [t],
            session_id,
            chosen,
            on_conflict=policy,
            include_dependencies=include_dependencies,
            state=state,
            expected=expected,
            allow_cascades=allow_cascades,
        )

    await _planned(executor, attempt)


async def discard_cow_operations(
    executor: Executor,
    table_name: str,
    session_id: IdLike,
    operation_ids: Sequence[IdLike] | None,
    schema: str = "public",
    *,
    include_dependents: bool = False,
) -> None:
    """Forget the chosen operations' changes to one table (all of them when None).

    Operations that depend on a discarded one through this table's rows must be discarded
    with it (or ``include_dependents`` adds them); the others keep their effects.
    """
    uuid_literal(session_id, "session id")
    chosen = None if operation_ids is None else checked_ids(operation_ids)

    async def attempt() -> None:
        entry = await _registered(executor, schema, table_name)
        state = await _session_state(executor, session_id, schema, [entry])
        t = await _describe(executor, schema, entry)
        await _discard(
            executor, [t], session_id, chosen, include_dependents=include_dependents, state=state
        )

    await _planned(executor, attempt)


async def get_dirty_tables(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[str]:
    """The COW tables of ``schema`` in which the session has changes, by name."""
    session = uuid_literal(session_id, "session id")
    await require_kit(executor)
    tables = await registered_tables(executor, schema)
    if not tables:
        return []
    rows = await executor.execute(render("dirty_tables.sql", tables=tables, session=session))
    return [row[0] for row in rows]


async def _schema_plan(
    executor: Executor, session_id: IdLike, schema: str
) -> tuple[tuple[Watched, str], list[TableDescription]]:
    """The session's digest over every COW table of the schema, then its dirty tables."""
    await require_kit(executor)
    entries = await registered_tables(executor, schema)
    state = await _session_state(executor, session_id, schema, entries)
    dirty = set(await get_dirty_tables(executor, session_id, schema))
    tables = [await _describe(executor, schema, e) for e in entries if e.name in dirty]
    return state, tables


async def commit_cow_session_schema(
    executor: Executor,
    session_id: IdLike,
    schema: str = "public",
    defer_fk_constraints: bool = False,
    *,
    on_conflict: str = "fail",
    expected: str | None = None,
    allow_cascades: bool = False,
) -> list[str]:
    """Apply the session's changes to every table of the schema in one transaction.

    Returns the tables committed, in the order their rows were upserted (parents first).
    A foreign-key cycle among them is refused unless ``defer_fk_constraints`` is set (which
    needs the keys to be DEFERRABLE: see ``enable_cow(allow_deferred_fks=True)``).
    Conflicts are handled as by :func:`commit_cow_session`; ``expected`` (the fingerprint of
    :func:`agentcow.review.diff`) as by :func:`commit_cow_operations_schema`.
    """
    uuid_literal(session_id, "session id")
    policy = check_policy(on_conflict)

    async def attempt() -> list[str]:
        state, tables = await _schema_plan(executor, session_id, schema)
        if not defer_fk_constraints:
            tables = parents_first(tables)
        await _commit(
            executor,
            tables,
            session_id,
            None,
            on_conflict=policy,
            include_dependencies=False,
            state=state,
            expected=expected,
            allow_cascades=allow_cascades,
            defer_fk_constraints=defer_fk_constraints,
        )
        return [t.name for t in tables]

    return await _planned(executor, attempt)


async def commit_cow_operations_schema(
    executor: Executor,
    session_id: IdLike,
    operation_ids: Sequence[IdLike],
    schema: str = "public",
    *,
    include_dependencies: bool = False,
    on_conflict: str = "fail",
    defer_fk_constraints: bool = False,
    expected: str | None = None,
    allow_cascades: bool = False,
) -> list[uuid.UUID]:
    """Apply the chosen operations' changes to every table of the schema, atomically.

    The choice must be closed under :func:`get_operation_dependencies`: committing it then
    leaves the base as if only those operations had run, in their order. A choice that
    lacks some is refused (:class:`OperationsNotClosedError` names them) unless
    ``include_dependencies`` adds them. With ``expected`` (the fingerprint of
    ``diff(..., operation_ids=...)`` for the same choice), the changes must be exactly those
    reviewed, else :class:`ReviewChangedError` and nothing applied. Returns the operations
    committed.
    """
    uuid_literal(session_id, "session id")
    policy = check_policy(on_conflict)
    chosen = checked_ids(operation_ids)

    async def attempt() -> list[uuid.UUID]:
        state, tables = await _schema_plan(executor, session_id, schema)
        await require_known(executor, session_id, chosen, schema)
        if not defer_fk_constraints:
            tables = parents_first(tables)
        committed = await _commit(
            executor,
            tables,
            session_id,
            chosen,
            on_conflict=policy,
            include_dependencies=include_dependencies,
            state=state,
            expected=expected,
            allow_cascades=allow_cascades,
            defer_fk_constraints=defer_fk_constraints,
        )
        return committed or []

    return await _planned(executor, attempt)


async def discard_cow_session_schema(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[str]:
    """Forget the session's changes in every table of the schema; returns those tables."""
    uuid_literal(session_id, "session id")

    async def attempt() -> list[str]:
        state, tables = await _schema_plan(executor, session_id, schema)
        await _discard(executor, tables, session_id, None, include_dependents=False, state=state)
        return [t.name for t in tables]

    return await _planned(executor, attempt)


async def discard_cow_operations_schema(
    executor: Executor,
    session_id: IdLike,
    operation_ids: Sequence[IdLike],
    schema: str = "public",
    *,
    include_dependents: bool = False,
) -> list[uuid.UUID]:
    """Forget the chosen operations in every table of the schema, atomically.

    The session then shows its state as if they had never run: every other operation keeps
    its effects. Operations that depend on a discarded one must go with it (or
    ``include_dependents`` adds them). Returns the operations discarded.
    """
    uuid_literal(session_id, "session id")
    chosen = checked_ids(operation_ids)

    async def attempt() -> list[uuid.UUID]:
        state, tables = await _schema_plan(executor, session_id, schema)
        await require_known(executor, session_id, chosen, schema)
        discarded = await _discard(
            executor, tables, session_id, chosen, include_dependents=include_dependents, state=state
        )
        return discarded or []

    return await _planned(executor, attempt)


@asynccontextmanager
async def deferred_fk_constraints(executor: Executor) -> AsyncIterator[None]:
    """Defer DEFERRABLE constraints inside the block; they are checked when it ends."""
    await executor.execute(render("set_constraints.sql", mode="DEFERRED"))
    yield
    # Not in a finally: after a failed statement the transaction only accepts ROLLBACK.
    await executor.execute(render("set_constraints.sql", mode="IMMEDIATE"))
