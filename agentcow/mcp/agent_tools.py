"""The agent's tools: SQL inside its copy-on-write session, the tables it may use, and what
its session holds. None of them commits, discards or undoes anything.

``execute_sql`` runs as the server's database role through a :class:`~agentcow.CowSession`
(the SQL guard, the binding, a reset connection). The inspection tools (operations, diff,
conflicts) read the session's change tables, which an agent role cannot: they run on the
review connection, always for the session the host bound, with no SQL of the model's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from agentcow.agent import CowSession, Result
from agentcow.agent.session import FROM_CATALOG
from agentcow.conflicts import get_cow_conflicts
from agentcow.mcp.results import encoded, error_result, refusal, report, untrusted
from agentcow.mcp.runtime import Runtime, call
from agentcow.mcp.tables import agent_tables, describe, find_table
from agentcow.operations import get_operation_dependencies, get_operation_summaries
from agentcow.review.diff import diff

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
#: Writes only into the session, but a DELETE or UPDATE there changes what the session holds.
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)

#: The guard's refusals of several statements, or of a transaction of the agent's own.
_SEVERAL = frozenset({"multiple_statements", "transaction_control"})
_SEVERAL_INSTEAD = (
    "execute_operation runs several statements in order as one operation, in one transaction"
)

Offset = Annotated[int, Field(ge=0, description="rows to skip, to page through a long result")]


def add_agent_tools(server: MCPServer[Any], runtime: Runtime) -> None:
    session: CowSession | None = None

    def cow_session() -> CowSession:
        nonlocal session
        if session is None:
            binding = runtime.binding
            session = CowSession(
                runtime.pool,
                session_id=binding.session_id,
                tenant_id=binding.tenant_id,
                label=binding.label,
                binding_key=binding.binding_key,
                guard=FROM_CATALOG if runtime.guard is None else runtime.guard,
            )
        return session

    @server.tool(title="Run SQL in the session", annotations=WRITE)
    async def execute_sql(
        sql: Annotated[str, Field(description="exactly one SQL statement, values inline")],
    ) -> CallToolResult:
        """Run one SQL statement (SELECT, INSERT, UPDATE, DELETE, WITH...) in your
        copy-on-write session of the database. Reads see the database as your session left
        it; writes stay in the session, invisible to everyone else, until a reviewer commits
        them. Each call is one operation in a transaction of its own. Returns the rows
        (capped; page with LIMIT/OFFSET) and the command's row count."""

        async def run() -> CallToolResult:
            try:
                result = await cow_session().execute(sql)
            except Exception as error:
                if getattr(error, "code", None) not in _SEVERAL:
                    raise
                return error_result(error, instead=_SEVERAL_INSTEAD)
            shown, note = _statement(result, runtime.max_rows)
            return untrusted(shown, note=note)

        return await call(run)

    @server.tool(title="Run statements as one operation", annotations=WRITE)
    async def execute_operation(
        statements: Annotated[
            list[str],
            Field(min_length=1, max_length=50, description="SQL statements, run in order"),
        ],
    ) -> CallToolResult:
        """Run several SQL statements, in order, as one operation in one transaction of your
        session: changes that belong together (an order and its lines). The first error
        ends it and nothing of it is kept. Returns each statement's rows and row count."""

        async def run() -> CallToolResult:
            results: list[dict[str, Any]] = []
            notes: list[str] = []
            try:
                async with cow_session().operation() as operation:
                    for number, statement in enumerate(statements, start=1):
                        try:
                            result = await operation.execute(statement)
                        except Exception as error:
                            raise _Failed(number) from error
                        shown, note = _statement(result, runtime.max_rows)
                        results.append(shown)
                        if note:
                            notes.append(f"statement {number}: {note}")
            except _Failed as failed:  # raised through the block: it rolled back
                return error_result(
                    failed.__cause__ or failed,
                    failed_statement=f"{failed.number} of {len(statements)}: nothing of the "
                    "operation was kept",
                )
            return untrusted({"results": results}, note="; ".join(notes) or None)

        return await call(run)

    @server.tool(title="List tables", annotations=READ)
    async def list_tables() -> CallToolResult:
        """The tables you may use, and the writes each allows."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.database) as ex:
                tables = await agent_tables(ex, runtime.schema)
            return report({"tables": [t.listing() for t in tables]})

        return await call(run)

    @server.tool(title="Describe a table", annotations=READ)
    async def describe_table(
        table: Annotated[str, Field(description="a table name as list_tables gives it")],
    ) -> CallToolResult:
        """A table's columns (types, nullability, defaults), keys, checks and references."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.database) as ex:
                found = await find_table(ex, runtime.schema, table)
                if found is None:
                    return refusal(
                        "unknown_table",
                        f"no table named {json.dumps(table)} is available",
                        "call list_tables for the names you may use",
                    )
                return report(await describe(ex, runtime.schema, found))

        return await call(run)

    @server.tool(title="List the session's operations", annotations=READ)
    async def list_operations() -> CallToolResult:
        """Your session's operations (one per execute_sql call that wrote something): what
        each wrote, in order, and which ones build on which."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.review_database) as ex:
                return report(await operations_report(ex, runtime))

        return await call(run)

    @server.tool(name="diff", title="Show the session's pending changes", annotations=READ)
    async def show_diff(offset: Offset = 0) -> CallToolResult:
        """What your session changed, row by row (the stored row and yours), as a reviewer
        will see it."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.review_database) as ex:
                changes = await diff(ex, runtime.binding.session_id, schema=runtime.schema)
            return diff_result(changes.to_json(), runtime.max_rows, offset, fingerprint=False)

        return await call(run)

    @server.tool(title="List conflicts with production", annotations=READ)
    async def get_conflicts(offset: Offset = 0) -> CallToolResult:
        """Rows production changed since your session first wrote them: a commit would meet
        them. Each shows the stored row then, now, and your session's."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.review_database) as ex:
                found = await get_cow_conflicts(
                    ex, runtime.binding.session_id, schema=runtime.schema
                )
            page = found[offset : offset + runtime.max_rows]
            return untrusted(
                {
                    "conflicts_total": len(found),
                    "offset": offset,
                    "conflicts": [conflict_json(c) for c in page],
                },
                note=_page_note(len(found), offset, len(page)),
            )

        return await call(run)


class _Failed(Exception):
    """Statement ``number`` of an operation failed (its error is the cause)."""

    def __init__(self, number: int) -> None:
        super().__init__(f"statement {number} failed")
        self.number = number


def _statement(result: Result, limit: int) -> tuple[dict[str, Any], str | None]:
    """One statement's rows (at most ``limit``) and row count, and a note when cut."""
    shown = result.rows[:limit]
    note = None
    if len(shown) < len(result.rows):
        note = (
            f"{len(result.rows)} rows, the first {len(shown)} shown: narrow the query "
            "(WHERE, LIMIT/OFFSET) to see the others"
        )
    document = {
        "columns": list(result.columns),
        "rows": encoded(shown),
        "rowcount": result.rowcount,
        "rows_total": len(result.rows),
    }
    return document, note


async def operations_report(ex: Any, runtime: Runtime) -> dict[str, Any]:
    session = runtime.binding.session_id
    summaries = await get_operation_summaries(ex, session, runtime.schema)
    dependencies = await get_operation_dependencies(ex, session, runtime.schema)
    return {
        "operations": [
            {
                "operation_id": str(s.operation_id),
                "tables": list(s.tables),
                "inserted": s.inserted,
                "updated": s.updated,
                "deleted": s.deleted,
            }
            for s in summaries
        ],
        "dependencies": [{"operation_id": str(b), "depends_on": str(a)} for a, b in dependencies],
    }


def conflict_json(conflict: Any) -> dict[str, Any]:
    return {
        "table": conflict.table,
        "key": encoded(conflict.key),
        "kind": conflict.kind,
        "columns": list(conflict.columns),
        "mergeable": conflict.mergeable,
        "base_then": encoded(conflict.base_then),
        "base_now": encoded(conflict.base_now),
        "session": encoded(conflict.session),
    }


def diff_result(document: str, limit: int, offset: int, *, fingerprint: bool) -> CallToolResult:
    """A ChangeSet's JSON form, its rows paged."""
    changes = json.loads(document)
    rows = changes.pop("diffs")
    page = rows[offset : offset + limit]
    data = {
        key: changes[key]
        for key in ("summary", "tables", "operation_ids", "fingerprint")
        if fingerprint or key != "fingerprint"
    }
    data |= {"rows_total": len(rows), "offset": offset, "rows": page}
    return untrusted(data, note=_page_note(len(rows), offset, len(page)))


def _page_note(total: int, offset: int, shown: int) -> str | None:
    if offset == 0 and shown == total:
        return None
    return f"{total} in all; {shown} shown from offset {offset}: pass offset to see others"
