"""The reviewer's tools: read the bound session (operations, diff, conflicts), then commit
exactly what a diff showed, discard, or undo a commit. Never offered in agent mode.

Each call is a review of its own (:class:`~agentcow.review.Reviewer`): a commit takes the
fingerprint of the diff the reviewer saw (``expected``), diffs the same selection again, and
commits only if nothing changed since; the commit itself refuses a write that arrives
between that diff and it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from agentcow.mcp.agent_tools import (
    READ,
    Offset,
    conflict_json,
    diff_result,
    operations_report,
)
from agentcow.mcp.results import refusal, report, untrusted
from agentcow.mcp.runtime import Runtime, call
from agentcow.review.reviewer import Reviewer
from agentcow.undo import undo as undo_session

#: Writes production (commit, undo) or drops the session's work (discard).
DECIDES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)

OperationIds = Annotated[
    list[str] | None,
    Field(description="operation ids (from operations); omit for the whole session"),
]
OnConflict = Annotated[
    Literal["fail", "merge", "overwrite"],
    Field(description="rows production changed meanwhile: refuse, merge columns, or overwrite"),
]
AllowCascades = Annotated[
    bool, Field(description="allow foreign-key cascades to stored rows the diff does not show")
]
IncludeDependents = Annotated[
    bool, Field(description="add the operations that build on the chosen ones")
]


def add_reviewer_tools(server: MCPServer[Any], runtime: Runtime) -> None:
    def reviewer() -> Reviewer:
        return Reviewer(
            runtime.review_pool,
            runtime.binding.session_id,
            schema=runtime.schema,
            policy=runtime.policy,
            tenant_id=runtime.binding.tenant_id,
        )

    @server.tool(title="List the session's operations", annotations=READ)
    async def operations() -> CallToolResult:
        """The session's operations: what each wrote, in order, and which build on which."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.review_database) as ex:
                return report(await operations_report(ex, runtime))

        return await call(run)

    @server.tool(name="diff", title="Show what a commit would write", annotations=READ)
    async def show_diff(operation_ids: OperationIds = None, offset: Offset = 0) -> CallToolResult:
        """What committing the session (or the chosen operations, with those they depend on)
        would write, row by row, and its fingerprint: pass that to commit as expected."""

        async def run() -> CallToolResult:
            changes = await reviewer().diff(operation_ids)
            return diff_result(changes.to_json(), runtime.max_rows, offset, fingerprint=True)

        return await call(run)

    @server.tool(title="List conflicts with production", annotations=READ)
    async def conflicts(operation_ids: OperationIds = None, offset: Offset = 0) -> CallToolResult:
        """Rows production changed since the session first wrote them."""

        async def run() -> CallToolResult:
            found = await reviewer().conflicts(operation_ids)
            page = found[offset : offset + runtime.max_rows]
            return untrusted(
                {
                    "conflicts_total": len(found),
                    "offset": offset,
                    "conflicts": [conflict_json(c) for c in page],
                }
            )

        return await call(run)

    @server.tool(title="Commit what the diff showed", annotations=DECIDES)
    async def commit(
        expected: Annotated[str, Field(description="the fingerprint of the diff reviewed")],
        operation_ids: OperationIds = None,
        on_conflict: OnConflict = "fail",
        allow_cascades: AllowCascades = False,
    ) -> CallToolResult:
        """Apply to production exactly what diff showed for the same selection, atomically.
        Refused, with nothing applied, if the session changed since (diff again)."""

        async def run() -> CallToolResult:
            review = reviewer()
            shown = await review.diff(operation_ids)
            if shown.fingerprint != expected:
                return refusal(
                    "review_changed",
                    "the session's changes are not those of the diff with this fingerprint "
                    "(written since, or another selection): nothing was committed",
                    "call diff again with the same operation_ids and review what it shows",
                )
            applied = await review.commit(
                operation_ids, on_conflict=on_conflict, allow_cascades=allow_cascades
            )
            return report(
                {
                    "committed": applied,
                    "operation_ids": _ids(shown.operation_ids),
                    "fingerprint": shown.fingerprint,
                }
            )

        return await call(run)

    @server.tool(title="Discard pending changes", annotations=DECIDES)
    async def discard(
        operation_ids: OperationIds = None, include_dependents: IncludeDependents = False
    ) -> CallToolResult:
        """Drop the session's pending changes (or the chosen operations'). Returns, per
        table, the rows whose pending change went away."""

        async def run() -> CallToolResult:
            dropped = await reviewer().discard(operation_ids, include_dependents=include_dependents)
            return report({"discarded": dropped})

        return await call(run)

    @server.tool(title="Undo a commit", annotations=DECIDES)
    async def undo(
        operation_ids: OperationIds = None,
        on_conflict: OnConflict = "fail",
        include_dependents: IncludeDependents = False,
        allow_cascades: AllowCascades = False,
    ) -> CallToolResult:
        """Put back the rows production had before the session's commit (or before the
        chosen operations'), atomically. Undo the returned undo session to redo."""

        async def run() -> CallToolResult:
            async with runtime.executor(runtime.review_database) as ex:
                done = await undo_session(
                    ex,
                    runtime.binding.session_id,
                    operation_ids=operation_ids,
                    schema=runtime.schema,
                    on_conflict=on_conflict,
                    include_dependents=include_dependents,
                    allow_cascades=allow_cascades,
                )
            return report(
                {
                    "undone": done.rows,
                    "operation_ids": _ids(done.operation_ids),
                    "undo_session_id": str(done.undo_session_id),
                }
            )

        return await call(run)


def _ids(ids: Any) -> list[str] | None:
    return None if ids is None else [str(op) for op in ids]
