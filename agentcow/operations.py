"""A session as a sequence of operations: listing them and how they depend on each other."""

from __future__ import annotations

import uuid

from agentcow.catalog import describe_table, registered_tables, require_kit
from agentcow.executor import Executor
from agentcow.identifiers import uuid_literal
from agentcow.templates import render

IdLike = str | uuid.UUID


async def get_session_operations(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[uuid.UUID]:
    """The session's operation ids, in the order each first wrote."""
    session = uuid_literal(session_id, "session id")
    await require_kit(executor)
    tables = await registered_tables(executor, schema)
    if not tables:
        return []
    rows = await executor.execute(
        render("session_operations.sql", schema=schema, tables=tables, session=session)
    )
    return [uuid.UUID(str(row[0])) for row in rows]


async def get_operation_dependencies(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """``(depends_on, operation_id)`` pairs: an operation depends on the previous writer of
    each row it wrote."""
    session = uuid_literal(session_id, "session id")
    await require_kit(executor)
    tables = [
        await describe_table(executor, schema, entry.name, entry.base_name)
        for entry in await registered_tables(executor, schema)
    ]
    if not tables:
        return []
    rows = await executor.execute(
        render("operation_dependencies.sql", tables=tables, session=session)
    )
    return [(uuid.UUID(str(a)), uuid.UUID(str(b))) for a, b in rows]
