"""The reviewer's side: one review of one session, ending in exactly one terminal action
(async; the sync twin is :mod:`agentcow.review.reviewer_sync`).

A commit applies exactly what the reviewer was shown: it needs a diff of the same selection
taken first, and passes that diff's fingerprint (``expected=``), so a write made after the
review, or any other difference, refuses it with nothing applied
(:class:`~agentcow.errors.ReviewChangedError`: diff again). Commits and discards are
schema-wide, atomic across tables.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from agentcow.commit import (
    commit_cow_operations_schema,
    commit_cow_session_schema,
    discard_cow_operations_schema,
    discard_cow_session_schema,
)
from agentcow.conflicts import Conflict, get_cow_conflicts
from agentcow.connections import async_source
from agentcow.errors import NotReviewedError, ReviewFinishedError
from agentcow.executor import Executor
from agentcow.identifiers import validate_uuid
from agentcow.operations import (
    Dependency,
    OperationSummary,
    get_operation_dependencies,
    get_operation_summaries,
)
from agentcow.review.diff import ChangeSet, RowDiff, diff
from agentcow.review.policy import Policy, PolicyReport, require_approved
from agentcow.review.validation import ModelRegistry

IdLike = str | uuid.UUID
Selection = frozenset[uuid.UUID] | None
T = TypeVar("T")


def _selection(operation_ids: Sequence[IdLike] | None) -> Selection:
    if operation_ids is None:
        return None
    return frozenset(validate_uuid(op, "operation id") for op in operation_ids)


def _rows_per_table(changes: ChangeSet) -> dict[str, int]:
    return {table: len(rows) for table, rows in changes.by_table().items()}


def _row_key(row: RowDiff) -> tuple[str, str]:
    return row.table, json.dumps(row.pk, sort_keys=True, default=repr)


def _rows_left(before: ChangeSet, after: ChangeSet) -> dict[str, int]:
    """Per table, the rows whose pending change a discard took away or altered."""
    now = {_row_key(row): (row.diff_type, row.new) for row in after.diffs}
    then = {_row_key(row): (row.diff_type, row.new) for row in before.diffs}
    counts: dict[str, int] = {}
    for key in then.keys() | now.keys():
        if then.get(key) != now.get(key):
            counts[key[0]] = counts.get(key[0], 0) + 1
    return counts


class Reviewer:
    """A review of ``session_id`` in ``schema``, over an asyncpg, psycopg 3 or SQLAlchemy
    (async) connection or pool (an idle connection: each call runs in transactions of its
    own). Read as much as needed (operations, dependencies, diffs, conflicts), then commit
    or discard once. ``registry``: where the row models are (the default registry unless
    given)."""

    def __init__(
        self,
        connection: object,
        session_id: IdLike,
        *,
        schema: str = "public",
        policy: Policy | None = None,
        tenant_id: object = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self._source = async_source(connection)
        self.session_id = validate_uuid(session_id, "session id")
        self.schema = schema
        self.policy = policy
        self.tenant_id = tenant_id
        self.registry = registry
        self._reviewed: dict[Selection, ChangeSet] = {}
        self._finished: str | None = None

    async def _run(self, call: Callable[[Executor], Awaitable[T]]) -> T:
        async with self._source.connect(reset=False) as link, link.standalone():
            return await call(link.executor)

    async def operations(self) -> list[OperationSummary]:
        """What each operation wrote, in the order they first wrote."""
        return await self._run(lambda ex: get_operation_summaries(ex, self.session_id, self.schema))

    async def dependencies(self) -> list[Dependency]:
        """``(depends_on, operation_id)`` pairs: which operations need which."""
        return await self._run(
            lambda ex: get_operation_dependencies(ex, self.session_id, self.schema)
        )

    async def diff(self, operation_ids: Sequence[IdLike] | None = None) -> ChangeSet:
        """What a commit of the session (or of ``operation_ids`` with what they depend on)
        would write; the commit of the same selection applies exactly this."""
        chosen = _selection(operation_ids)
        changes = await self._run(
            lambda ex: diff(ex, self.session_id, operation_ids=operation_ids, schema=self.schema)
        )
        self._reviewed[chosen] = changes
        if changes.operation_ids is not None:
            self._reviewed[frozenset(changes.operation_ids)] = changes
        return changes

    async def conflicts(self, operation_ids: Sequence[IdLike] | None = None) -> list[Conflict]:
        """Rows the base changed since the session wrote them (what a commit would meet)."""
        return await self._run(
            lambda ex: get_cow_conflicts(ex, self.session_id, operation_ids, schema=self.schema)
        )

    async def check(self, operation_ids: Sequence[IdLike] | None = None) -> PolicyReport:
        """The policy's judgement of the diff of this selection (taken first, as for a
        commit); without a policy, the row models' alone (an empty :class:`Policy`)."""
        reviewed = self._reviewed_for(_selection(operation_ids))
        policy = self.policy or Policy()
        return await self._run(
            lambda ex: policy.evaluate(
                ex, reviewed, tenant_id=self.tenant_id, registry=self.registry
            )
        )

    def _reviewed_for(self, chosen: Selection) -> ChangeSet:
        reviewed = self._reviewed.get(chosen)
        if reviewed is None:
            what = "the session" if chosen is None else "these operations"
            raise NotReviewedError(
                f"{what} were not reviewed: call diff() with the same selection first, "
                "then commit what it showed"
            )
        return reviewed

    def _finish(self) -> None:
        if self._finished is not None:
            raise ReviewFinishedError(
                f"this review already ended ({self._finished}): a review ends with one "
                "commit or discard; start a new Reviewer to review what is left"
            )

    async def commit(
        self,
        operation_ids: Sequence[IdLike] | None = None,
        *,
        on_conflict: str = "fail",
        allow_cascades: bool = False,
        defer_fk_constraints: bool = False,
        person_approved: bool = False,
    ) -> dict[str, int]:
        """Apply what :meth:`diff` of the same selection showed, atomically across tables;
        returns the rows applied per table. Refused, with nothing applied, when no such diff
        was taken (:class:`NotReviewedError`), when the session's changes differ from it
        (:class:`ReviewChangedError`), on conflicts (:class:`CommitConflictError`,
        ``on_conflict`` as for ``commit_cow_session_schema``), and when foreign keys would
        cascade to stored rows the diff does not show (:class:`CascadeConflictError`)
        unless ``allow_cascades``. With a policy, the diff is judged first
        (:meth:`check`): a block refuses the commit (:class:`PolicyViolationError`, with the
        report), and so does a decision that needs a person unless ``person_approved``
        (:class:`PersonRequiredError`)."""
        self._finish()
        chosen = _selection(operation_ids)
        reviewed = self._reviewed_for(chosen)
        if self.policy is not None:
            require_approved(await self.check(operation_ids), person_approved=person_approved)

        async def commit(ex: Executor) -> None:
            if chosen is None:
                await commit_cow_session_schema(
                    ex,
                    self.session_id,
                    self.schema,
                    defer_fk_constraints,
                    on_conflict=on_conflict,
                    expected=reviewed.fingerprint,
                    allow_cascades=allow_cascades,
                )
            else:
                await commit_cow_operations_schema(
                    ex,
                    self.session_id,
                    sorted(chosen, key=str),
                    self.schema,
                    include_dependencies=True,
                    on_conflict=on_conflict,
                    defer_fk_constraints=defer_fk_constraints,
                    expected=reviewed.fingerprint,
                    allow_cascades=allow_cascades,
                )

        await self._run(commit)
        self._finished = "committed"
        return _rows_per_table(reviewed)

    async def discard(
        self, operation_ids: Sequence[IdLike] | None = None, *, include_dependents: bool = False
    ) -> dict[str, int]:
        """Drop the session's changes (or those of ``operation_ids``; operations that depend
        on them must go too, or ``include_dependents`` adds them), atomically across tables.
        Returns, per table, the rows whose pending change went away or changed."""
        self._finish()
        chosen = _selection(operation_ids)

        async def discard(ex: Executor) -> dict[str, int]:
            before = await diff(ex, self.session_id, schema=self.schema)
            if chosen is None:
                await discard_cow_session_schema(ex, self.session_id, self.schema)
                return _rows_per_table(before)
            await discard_cow_operations_schema(
                ex,
                self.session_id,
                sorted(chosen, key=str),
                self.schema,
                include_dependents=include_dependents,
            )
            return _rows_left(before, await diff(ex, self.session_id, schema=self.schema))

        counts = await self._run(discard)
        self._finished = "discarded"
        return counts

    def __repr__(self) -> str:
        state = self._finished or "open"
        return f"<Reviewer of session {self.session_id} in {self.schema}: {state}>"
