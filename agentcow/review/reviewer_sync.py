"""The reviewer's side, synchronous: the same ``Reviewer`` over psycopg (``Connection``,
``ConnectionPool``) or SQLAlchemy (``Engine``, ``Connection``). It runs the async
implementation (:mod:`agentcow.review.reviewer`) on blocking connections
(:mod:`agentcow.blocking`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from agentcow.blocking import run_blocking
from agentcow.conflicts import Conflict
from agentcow.connections import blocking_source
from agentcow.operations import Dependency, OperationSummary
from agentcow.review import reviewer as _async
from agentcow.review.diff import ChangeSet
from agentcow.review.policy import Policy, PolicyReport
from agentcow.review.validation import ModelRegistry

IdLike = str | uuid.UUID


class Reviewer:
    """A review of ``session_id`` over a psycopg or SQLAlchemy sync connection, pool or
    engine; see the async :class:`agentcow.review.reviewer.Reviewer`."""

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
        self._reviewer = _async.Reviewer(
            blocking_source(connection),
            session_id,
            schema=schema,
            policy=policy,
            tenant_id=tenant_id,
            registry=registry,
        )
        self.session_id = self._reviewer.session_id
        self.schema = schema

    def operations(self) -> list[OperationSummary]:
        return run_blocking(self._reviewer.operations())

    def dependencies(self) -> list[Dependency]:
        return run_blocking(self._reviewer.dependencies())

    def diff(self, operation_ids: Sequence[IdLike] | None = None) -> ChangeSet:
        return run_blocking(self._reviewer.diff(operation_ids))

    def conflicts(self, operation_ids: Sequence[IdLike] | None = None) -> list[Conflict]:
        return run_blocking(self._reviewer.conflicts(operation_ids))

    def check(self, operation_ids: Sequence[IdLike] | None = None) -> PolicyReport:
        return run_blocking(self._reviewer.check(operation_ids))

    def commit(
        self,
        operation_ids: Sequence[IdLike] | None = None,
        *,
        on_conflict: str = "fail",
        allow_cascades: bool = False,
        defer_fk_constraints: bool = False,
        person_approved: bool = False,
    ) -> dict[str, int]:
        return run_blocking(
            self._reviewer.commit(
                operation_ids,
                on_conflict=on_conflict,
                allow_cascades=allow_cascades,
                defer_fk_constraints=defer_fk_constraints,
                person_approved=person_approved,
            )
        )

    def discard(
        self, operation_ids: Sequence[IdLike] | None = None, *, include_dependents: bool = False
    ) -> dict[str, int]:
        return run_blocking(
            self._reviewer.discard(operation_ids, include_dependents=include_dependents)
        )

    def __repr__(self) -> str:
        return repr(self._reviewer)
