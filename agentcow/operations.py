"""A session as a sequence of operations: what each one wrote, and which ones it builds on.

A reviewer keeps some operations and drops others. The dependency graph says which choices
are coherent: an operation can be committed only with every operation it depends on, and
discarded only with every operation that depends on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.description import TableDescription
from agentcow.errors import OperationNotFoundError, OperationsNotClosedError
from agentcow.executor import Executor
from agentcow.identifiers import uuid_literal
from agentcow.script import run_pinned
from agentcow.templates import render

IdLike = str | uuid.UUID
Dependency = tuple[uuid.UUID, uuid.UUID]


@dataclass(frozen=True)
class OperationSummary:
    """What one operation wrote. Counts are distinct rows per kind of write (a key change is
    an update); ``first_write``/``last_write`` are positions in the session's write order."""

    operation_id: uuid.UUID
    tables: tuple[str, ...]
    inserted: int
    updated: int
    deleted: int
    first_write: int
    last_write: int


async def session_tables(executor: Executor, schema: str) -> list[TableDescription]:
    """Every COW table of ``schema``, described (dependencies cross tables through keys)."""
    await require_kit(executor)
    return [
        await describe_current(executor, schema, entry)
        for entry in await registered_tables(executor, schema)
    ]


async def get_session_operations(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[uuid.UUID]:
    """The session's operation ids, in the order each first wrote."""
    session = uuid_literal(session_id, "session id")
    await require_kit(executor)
    tables = await registered_tables(executor, schema)
    if not tables:
        return []
    rows = await run_pinned(
        executor,
        render("session_operations.sql", tables=tables, session=session),
        "operation_id pg_catalog.uuid",
    )
    return [uuid.UUID(str(row[0])) for row in rows]


async def require_known(
    executor: Executor, session_id: IdLike, operation_ids: Sequence[uuid.UUID], schema: str
) -> None:
    """Refuses (:class:`OperationNotFoundError`) ids the session never wrote, or whose
    versions are gone (committed or discarded)."""
    known = set(await get_session_operations(executor, session_id, schema))
    unknown = [str(op) for op in operation_ids if op not in known]
    if unknown:
        raise OperationNotFoundError(
            f"session {session_id} has no operation {', '.join(unknown)} in schema {schema} "
            "(never written, or already committed or discarded)"
        )


async def get_operation_summaries(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[OperationSummary]:
    """One summary per operation of the session, in the order each first wrote."""
    session = uuid_literal(session_id, "session id")
    tables = await session_tables(executor, schema)
    if not tables:
        return []
    rows = await run_pinned(
        executor,
        render("operation_summaries.sql", tables=tables, session=session),
        "operation_id pg_catalog.uuid, table_name pg_catalog.text, inserted pg_catalog.int8, "
        "updated pg_catalog.int8, deleted pg_catalog.int8, first_write pg_catalog.int8, "
        "last_write pg_catalog.int8",
    )
    summaries: dict[uuid.UUID, OperationSummary] = {}
    for op, table, inserted, updated, deleted, first, last in rows:
        key = uuid.UUID(str(op))
        seen = summaries.get(key)
        summaries[key] = OperationSummary(
            operation_id=key,
            tables=(seen.tables if seen else ()) + (table,),
            inserted=(seen.inserted if seen else 0) + inserted,
            updated=(seen.updated if seen else 0) + updated,
            deleted=(seen.deleted if seen else 0) + deleted,
            first_write=seen.first_write if seen else first,
            last_write=max(seen.last_write, last) if seen else last,
        )
    return list(summaries.values())


async def get_operation_dependencies(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[Dependency]:
    """``(depends_on, operation_id)`` pairs, ordered by the dependent's first write.

    B depends on A when B wrote a row A wrote before it (same primary key, a key freed or
    taken by a key change included), took a reference to a parent value A created, removed a
    parent value after A removed a reference to it, or took a unique value A released.
    """
    uuid_literal(session_id, "session id")
    tables = await session_tables(executor, schema)
    return await dependencies_among(executor, tables, session_id=session_id)


async def dependencies_among(
    executor: Executor, tables: Sequence[TableDescription], *, session_id: IdLike
) -> list[Dependency]:
    """The dependencies that arise from writes to ``tables`` (and keys between them)."""
    if not tables:
        return []
    session = uuid_literal(session_id, "session id")
    rows = await run_pinned(
        executor,
        render(
            "operation_dependencies.sql",
            tables=tables,
            by_name={t.name: t for t in tables},
            session=session,
        ),
        "depends_on pg_catalog.uuid, operation_id pg_catalog.uuid",
    )
    return [(uuid.UUID(str(a)), uuid.UUID(str(b))) for a, b in rows]


def _reach(start: Iterable[uuid.UUID], arcs: Iterable[Dependency]) -> set[uuid.UUID]:
    """``start`` and everything reachable from it along ``(from, to)`` arcs."""
    edges: dict[uuid.UUID, set[uuid.UUID]] = {}
    for source, target in arcs:
        edges.setdefault(source, set()).add(target)
    seen = set(start)
    stack = list(seen)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def with_dependencies(
    chosen: Collection[uuid.UUID], dependencies: Iterable[Dependency]
) -> set[uuid.UUID]:
    """``chosen`` and every operation they depend on, directly or not."""
    return _reach(chosen, ((op, depends_on) for depends_on, op in dependencies))


def with_dependents(
    chosen: Collection[uuid.UUID], dependencies: Iterable[Dependency]
) -> set[uuid.UUID]:
    """``chosen`` and every operation that depends on them, directly or not."""
    return _reach(chosen, dependencies)


def close_selection(
    chosen: Sequence[uuid.UUID],
    dependencies: Sequence[Dependency],
    *,
    committing: bool,
    extend: bool,
) -> list[uuid.UUID]:
    """The chosen operations, closed under dependencies (to commit) or dependents (to discard).

    Without ``extend``, a selection that is not closed is refused with an error naming what
    it lacks; with it, the missing operations are added.
    """
    closed = (with_dependencies if committing else with_dependents)(chosen, dependencies)
    missing = closed.difference(chosen)
    if missing and not extend:
        names = sorted(missing, key=str)
        if committing:
            raise OperationsNotClosedError(
                f"the chosen operations depend on {len(names)} operation(s) not chosen: "
                f"{', '.join(map(str, names))}; choose them too, or pass "
                "include_dependencies=True",
                names,
            )
        raise OperationsNotClosedError(
            f"{len(names)} operation(s) not chosen depend on the chosen ones: "
            f"{', '.join(map(str, names))}; choose them too, or pass include_dependents=True",
            names,
        )
    return list(dict.fromkeys([*chosen, *sorted(missing, key=str)]))
