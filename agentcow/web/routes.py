"""The reviewer's JSON routes, for the review page and for FastAPI apps of your own:
``app.include_router(reviewer_router(pool), prefix="/review")``.

Each request is a review of its own (:class:`~agentcow.review.Reviewer`). A commit names the
fingerprint of the diff the person saw: the route diffs the same selection again, refuses
(409) unless the fingerprint is the same, and the commit itself refuses a write that lands
between that diff and it. The routes carry no authentication: pass ``dependencies=`` (as
``APIRouter`` takes them) to require yours, as :func:`agentcow.web.create_review_app` does
with its token.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, params

from agentcow.connections import Source, async_source
from agentcow.executor import Executor
from agentcow.operations import get_operation_dependencies, get_operation_summaries
from agentcow.registry import SessionState, list_sessions
from agentcow.review.diff import ChangeSet
from agentcow.review.policy import Policy, PolicyReport
from agentcow.review.reviewer import Reviewer
from agentcow.undo import session_history, undo
from agentcow.web.errors import answered, refusal
from agentcow.web.models import (
    CheckModel,
    CommitRequest,
    CommitResult,
    ConflictModel,
    DependencyModel,
    DiffModel,
    DiscardRequest,
    DiscardResult,
    ErrorModel,
    HistoryModel,
    LimitModel,
    OperationModel,
    OperationsModel,
    PolicyModel,
    RowDiffModel,
    SessionModel,
    UndoRequest,
    UndoResult,
    encoded,
)

T = TypeVar("T")
Ops = Annotated[
    list[str] | None,
    Query(description="operation ids (repeat the parameter); none: the whole session"),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorModel} for code in (HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
}


async def _on_connection(source: Source, call: Callable[[Executor], Awaitable[T]]) -> T:
    async with source.connect(reset=False) as link, link.standalone():
        return await call(link.executor)


def _policy_model(report: PolicyReport, configured: bool) -> PolicyModel:
    return PolicyModel(
        configured=configured,
        decision=report.decision.value,
        reasons=report.reasons,
        failed_rules=[f"{r.table} {encoded(r.pk)}: {r.rule}" for r in report.failed_rules],
        checks=[
            CheckModel(name=c.name, passed=c.passed, row_count=c.row_count, rows=encoded(c.rows))
            for c in report.checks
        ],
        limits=[
            LimitModel(
                table=r.table, type=r.diff_type.value, limit=r.limit, count=r.count, passed=r.passed
            )
            for r in report.limits
        ],
    )


def _diff_model(changes: ChangeSet, report: PolicyReport, configured: bool) -> DiffModel:
    rows = []
    for row in changes.diffs:
        findings = report.row_findings(row)
        rows.append(
            RowDiffModel(
                table=row.table,
                type=row.diff_type.value,
                pk=encoded(row.pk),
                before=encoded(row.old),
                after=encoded(row.new),
                changed_columns=row.changed_columns(),
                operations=list(row.operations),
                findings=findings,
                blocked=bool(findings),
            )
        )
    return DiffModel(
        session_id=changes.session_id,
        operation_ids=None if changes.operation_ids is None else list(changes.operation_ids),
        fingerprint=changes.fingerprint,
        summary=changes.summary,
        rows=rows,
        policy=_policy_model(report, configured),
    )


def reviewer_router(
    source: object,
    *,
    schema: str = "public",
    policy: Policy | None = None,
    dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """The reviewer's routes over ``source`` (an asyncpg, psycopg 3 or SQLAlchemy async
    pool or connection, as :class:`~agentcow.review.Reviewer` takes), for the sessions of
    ``schema``; commits must pass ``policy`` when one is given."""
    pool = async_source(source)
    router = APIRouter(dependencies=list(dependencies), responses=_ERRORS)

    def reviewer(session_id: uuid.UUID) -> Reviewer:
        return Reviewer(pool, session_id, schema=schema, policy=policy)

    async def require_session(session_id: uuid.UUID) -> None:
        sessions = await _on_connection(pool, lambda ex: list_sessions(ex, schema))
        if not any(s.session_id == session_id for s in sessions):
            raise refusal(
                HTTPStatus.NOT_FOUND,
                "SessionNotFoundError",
                f"no session {session_id} in schema {schema}",
            )

    @router.get("/sessions", response_model=list[SessionModel])
    async def sessions(
        state: Annotated[list[SessionState] | None, Query()] = None,
    ) -> list[SessionModel]:
        """The sessions, oldest first, with their pending versions per table."""
        async with answered():
            found = await _on_connection(pool, lambda ex: list_sessions(ex, schema, state=state))
        return [
            SessionModel(
                session_id=s.session_id,
                registered=s.registered,
                tenant=s.tenant,
                label=s.label,
                state=s.state,
                created_at=s.created_at,
                last_active_at=s.last_active_at,
                committed_by=s.committed_by,
                committed_at=s.committed_at,
                undone_at=s.undone_at,
                pending=s.pending,
            )
            for s in found
        ]

    @router.get("/sessions/{session_id}/operations", response_model=OperationsModel)
    async def operations(session_id: uuid.UUID) -> OperationsModel:
        """The session's pending operations in the order each first wrote, and which
        operation needs which (``depends_on``)."""
        async with answered():
            await require_session(session_id)

            async def read(ex: Executor) -> OperationsModel:
                summaries = await get_operation_summaries(ex, session_id, schema)
                arcs = await get_operation_dependencies(ex, session_id, schema)
                return OperationsModel(
                    session_id=session_id,
                    operations=[
                        OperationModel(
                            operation_id=s.operation_id,
                            tables=list(s.tables),
                            inserted=s.inserted,
                            updated=s.updated,
                            deleted=s.deleted,
                        )
                        for s in summaries
                    ],
                    dependencies=[DependencyModel(depends_on=a, operation_id=b) for a, b in arcs],
                )

            return await _on_connection(pool, read)

    @router.get("/sessions/{session_id}/diff", response_model=DiffModel)
    async def show_diff(session_id: uuid.UUID, ops: Ops = None) -> DiffModel:
        """What committing the selection (with what it depends on) writes, row by row, its
        fingerprint, and the policy's judgement of it."""
        async with answered():
            await require_session(session_id)
            review = reviewer(session_id)
            changes = await review.diff(ops)
            report = await review.check(ops)
        return _diff_model(changes, report, policy is not None)

    @router.get("/sessions/{session_id}/conflicts", response_model=list[ConflictModel])
    async def conflicts(session_id: uuid.UUID, ops: Ops = None) -> list[ConflictModel]:
        """Rows production changed since the session first wrote them."""
        async with answered():
            await require_session(session_id)
            found = await reviewer(session_id).conflicts(ops)
        return [
            ConflictModel(
                table=c.table,
                key=encoded(c.key),
                kind=c.kind,
                columns=list(c.columns),
                mergeable=c.mergeable,
                base_then=encoded(c.base_then),
                base_now=encoded(c.base_now),
                session=encoded(c.session),
            )
            for c in found
        ]

    @router.get("/sessions/{session_id}/history", response_model=list[HistoryModel])
    async def history(session_id: uuid.UUID) -> list[HistoryModel]:
        """What the session's commits wrote, per key and commit, oldest first."""
        async with answered():
            await require_session(session_id)
            entries = await _on_connection(pool, lambda ex: session_history(ex, session_id, schema))
        return [
            HistoryModel(
                table=e.table,
                key=encoded(e.key),
                before=encoded(e.before),
                after=encoded(e.after),
                operations=list(e.operations),
                undone=e.undone,
            )
            for e in entries
        ]

    @router.post("/sessions/{session_id}/commit", response_model=CommitResult)
    async def commit(session_id: uuid.UUID, body: CommitRequest) -> CommitResult:
        """Apply exactly what the diff with ``fingerprint`` showed, atomically; refused
        (409), nothing applied, if the session's changes are no longer those."""
        async with answered():
            await require_session(session_id)
            review = reviewer(session_id)
            shown = await review.diff(body.ops)
            if shown.fingerprint != body.fingerprint:
                raise refusal(
                    HTTPStatus.CONFLICT,
                    "ReviewChangedError",
                    "the session's changes are not those of the diff you reviewed (written "
                    "since, or another selection): nothing was committed; preview again",
                )
            applied = await review.commit(
                body.ops,
                on_conflict=body.on_conflict,
                allow_cascades=body.allow_cascades,
                person_approved=body.person_approved,
            )
        return CommitResult(
            committed=applied,
            operation_ids=None if shown.operation_ids is None else list(shown.operation_ids),
            fingerprint=shown.fingerprint,
        )

    @router.post("/sessions/{session_id}/discard", response_model=DiscardResult)
    async def discard(session_id: uuid.UUID, body: DiscardRequest) -> DiscardResult:
        """Drop the session's pending changes (or the chosen operations')."""
        async with answered():
            await require_session(session_id)
            dropped = await reviewer(session_id).discard(
                body.ops, include_dependents=body.include_dependents
            )
        return DiscardResult(discarded=dropped)

    @router.post("/sessions/{session_id}/undo", response_model=UndoResult)
    async def undo_commit(session_id: uuid.UUID, body: UndoRequest) -> UndoResult:
        """Put back what production had before the session's commits (or the chosen
        operations'); undo the returned undo session to redo."""
        async with answered():
            await require_session(session_id)
            done = await _on_connection(
                pool,
                lambda ex: undo(
                    ex,
                    session_id,
                    operation_ids=body.ops,
                    schema=schema,
                    on_conflict=body.on_conflict,
                    include_dependents=body.include_dependents,
                ),
            )
        return UndoResult(
            undone=done.rows,
            operation_ids=list(done.operation_ids),
            undo_session_id=done.undo_session_id,
        )

    return router
