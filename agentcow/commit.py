"""Applying a session's changes to the base tables, or dropping them.

Every call is one atomic statement: a commit that fails leaves base and session as they were.
Across tables, rows are upserted parents first and deleted children first, so foreign keys
hold at every step without deferring them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from graphlib import CycleError, TopologicalSorter

from agentcow.catalog import describe_table, registered_tables, require_kit
from agentcow.description import RegisteredTable, TableDescription
from agentcow.errors import DependencyCycleError, TableNotFoundError, UnsupportedTableError
from agentcow.executor import Executor
from agentcow.identifiers import Sql, uuid_array_literal, uuid_literal
from agentcow.script import run_atomically
from agentcow.templates import render, render_statements

IdLike = str | uuid.UUID


async def _registered(executor: Executor, schema: str, table: str) -> RegisteredTable:
    await require_kit(executor)
    found = await registered_tables(executor, schema, table)
    if not found:
        raise TableNotFoundError(f"COW is not enabled on {schema}.{table}")
    return found[0]


async def _describe(executor: Executor, schema: str, entry: RegisteredTable) -> TableDescription:
    return await describe_table(executor, schema, entry.name, entry.base_name)


def _check_pk(entry: RegisteredTable, schema: str, pk_cols: Sequence[str] | None) -> None:
    if pk_cols is not None and set(pk_cols) != set(entry.pk_columns):
        raise UnsupportedTableError(
            f"pk_cols {list(pk_cols)} do not match the primary key of {schema}.{entry.name} "
            f"{list(entry.pk_columns)}"
        )


def _operations(operation_ids: Sequence[IdLike] | None) -> Sql | None:
    return None if operation_ids is None else uuid_array_literal(operation_ids)


def _apply(tables: Sequence[TableDescription], session: Sql, operations: Sql | None) -> str:
    """The scheduled commit of sql/commit.sql; ``tables`` parents first."""
    return render(
        "commit.sql",
        tables=tables,
        dirty={t.name: t for t in tables},
        session=session,
        operations=operations,
    )


def _discard(tables: Sequence[TableDescription], session: Sql, operations: Sql | None) -> list[str]:
    return render_statements("discard.sql", tables=tables, session=session, operations=operations)


def _parents_first(tables: Sequence[TableDescription]) -> list[TableDescription]:
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
) -> None:
    """Apply the session's changes to one table and forget them, atomically."""
    await commit_cow_operations(executor, table_name, session_id, None, pk_cols, schema)


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
) -> None:
    """Apply the chosen operations' changes to one table (all of them when None)."""
    session = uuid_literal(session_id, "session id")
    operations = _operations(operation_ids)
    if operation_ids is not None and not operation_ids:
        return
    entry = await _registered(executor, schema, table_name)
    _check_pk(entry, schema, pk_cols)
    t = await _describe(executor, schema, entry)
    await run_atomically(executor, [_apply([t], session, operations)])


async def discard_cow_operations(
    executor: Executor,
    table_name: str,
    session_id: IdLike,
    operation_ids: Sequence[IdLike] | None,
    schema: str = "public",
) -> None:
    """Forget the chosen operations' changes to one table (all of them when None)."""
    session = uuid_literal(session_id, "session id")
    operations = _operations(operation_ids)
    if operation_ids is not None and not operation_ids:
        return
    entry = await _registered(executor, schema, table_name)
    t = await _describe(executor, schema, entry)
    await run_atomically(executor, _discard([t], session, operations))


async def get_dirty_tables(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[str]:
    """The COW tables of ``schema`` in which the session has changes, by name."""
    session = uuid_literal(session_id, "session id")
    await require_kit(executor)
    tables = await registered_tables(executor, schema)
    if not tables:
        return []
    rows = await executor.execute(
        render("dirty_tables.sql", schema=schema, tables=tables, session=session)
    )
    return [row[0] for row in rows]


async def _dirty_descriptions(
    executor: Executor, session_id: IdLike, schema: str
) -> list[TableDescription]:
    dirty = set(await get_dirty_tables(executor, session_id, schema))
    return [
        await _describe(executor, schema, entry)
        for entry in await registered_tables(executor, schema)
        if entry.name in dirty
    ]


async def commit_cow_session_schema(
    executor: Executor,
    session_id: IdLike,
    schema: str = "public",
    defer_fk_constraints: bool = False,
) -> list[str]:
    """Apply the session's changes to every table of the schema in one transaction.

    Returns the tables committed, in the order their rows were upserted (parents first).
    A foreign-key cycle among them is refused unless ``defer_fk_constraints`` is set (which
    needs the keys to be DEFERRABLE: see ``enable_cow(allow_deferred_fks=True)``).
    """
    session = uuid_literal(session_id, "session id")
    tables = await _dirty_descriptions(executor, session_id, schema)
    if not tables:
        return []
    if defer_fk_constraints:
        statements = [
            render("set_constraints.sql", mode="DEFERRED"),
            _apply(tables, session, None),
            render("set_constraints.sql", mode="IMMEDIATE"),
        ]
    else:
        tables = _parents_first(tables)
        statements = [_apply(tables, session, None)]
    await run_atomically(executor, statements)
    return [t.name for t in tables]


async def discard_cow_session_schema(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[str]:
    """Forget the session's changes in every table of the schema; returns those tables."""
    session = uuid_literal(session_id, "session id")
    tables = await _dirty_descriptions(executor, session_id, schema)
    await run_atomically(executor, _discard(tables, session, None))
    return [t.name for t in tables]


@asynccontextmanager
async def deferred_fk_constraints(executor: Executor) -> AsyncIterator[None]:
    """Defer DEFERRABLE constraints inside the block; they are checked when it ends."""
    await executor.execute(render("set_constraints.sql", mode="DEFERRED"))
    yield
    # Not in a finally: after a failed statement the transaction only accepts ROLLBACK.
    await executor.execute(render("set_constraints.sql", mode="IMMEDIATE"))
