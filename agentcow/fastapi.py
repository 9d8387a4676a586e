"""FastAPI integration: a :class:`~agentcow.CowSession` per agent request, bound to the agent
run the application authenticated, and the reviewer's routes to mount behind the
application's own reviewer authentication. Needs the ``web`` extra.

The session comes only from an :class:`AgentRun` that the application's own dependency
returns (its authentication, its database): nothing in the request (a header, the query, the
body) names a session, so nothing an agent sends can move it. Errors the session's statements
raise, and the handler lets through, are answered as HTTP errors (403, 409, 422, 504, with
the error's fields); anything else keeps its own handling.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import Depends, HTTPException

from agentcow.agent.guard import SqlGuard
from agentcow.agent.session import FROM_CATALOG, CowSession, Operation
from agentcow.connections import Link, Result, Source, async_source
from agentcow.driver_errors import postgres_error_fields, postgres_error_hint
from agentcow.errors import CowError, GuardRefusal, TransactionEndedError, UnsupportedUpsertError
from agentcow.web.errors import code_of
from agentcow.web.routes import reviewer_router

__all__ = ["AgentRun", "cow_session", "lazy_pool", "reviewer_router"]


@dataclass(frozen=True)
class AgentRun:
    """One agent run, as the application resolved it from authenticated state (a token it
    issued, its own table): the session its statements write in, the tenant the session is
    bound to (``None``: every row) and a label recorded with the session. Build it from what
    the application verified, never from what the client sent."""

    session_id: uuid.UUID
    tenant_id: object = None
    label: str | None = None


# The HTTP status of the errors a session's statement raises. 403: the agent may not do
# this (the SQL guard, privileges and tenant isolation, the session's row limit); 409: it
# conflicts with stored rows or with concurrent work; 422: the statement or its values are
# wrong; 504: the session's statement time limit ran out. Other errors (the application's
# setup: a wrong binding key, a missing kit) are not the agent's to see: a 500.
_KIT_STATUS: dict[type[CowError], HTTPStatus] = {
    GuardRefusal: HTTPStatus.FORBIDDEN,
    UnsupportedUpsertError: HTTPStatus.UNPROCESSABLE_ENTITY,
    TransactionEndedError: HTTPStatus.UNPROCESSABLE_ENTITY,
}
#: By SQLSTATE, else by its class (the first two characters).
_SQLSTATE_STATUS: dict[str, HTTPStatus] = {
    "42501": HTTPStatus.FORBIDDEN,  # insufficient_privilege, tenant isolation
    "54000": HTTPStatus.FORBIDDEN,  # program_limit_exceeded: the session's row limit
    "23505": HTTPStatus.CONFLICT,  # unique_violation
    "23503": HTTPStatus.CONFLICT,  # foreign_key_violation
    "23001": HTTPStatus.CONFLICT,  # restrict_violation
    "23P01": HTTPStatus.CONFLICT,  # exclusion_violation
    "40001": HTTPStatus.CONFLICT,  # serialization_failure
    "40P01": HTTPStatus.CONFLICT,  # deadlock_detected
    "55P03": HTTPStatus.CONFLICT,  # lock_not_available: the session's lock time limit
    "57014": HTTPStatus.GATEWAY_TIMEOUT,  # query_canceled: the statement time limit
    "0A000": HTTPStatus.UNPROCESSABLE_ENTITY,  # feature_not_supported
    "21": HTTPStatus.UNPROCESSABLE_ENTITY,  # cardinality_violation
    "22": HTTPStatus.UNPROCESSABLE_ENTITY,  # data_exception
    "23": HTTPStatus.UNPROCESSABLE_ENTITY,  # not null, check
    "42": HTTPStatus.UNPROCESSABLE_ENTITY,  # syntax error, undefined table or column
}


class _RequestSession(CowSession):
    """The request's session: remembers the errors its calls and operation blocks raised,
    so that the dependency answers those, and only those, as HTTP errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raised: list[BaseException] = []

    async def execute(self, statement: Any, params: Any = None) -> Result:
        try:
            return await super().execute(statement, params)
        except Exception as error:
            self.raised.append(error)
            raise

    @asynccontextmanager
    async def operation(
        self, operation_id: uuid.UUID | str | None = None
    ) -> AsyncIterator[Operation]:
        try:
            async with super().operation(operation_id) as block:
                yield block
        except Exception as error:
            self.raised.append(error)
            raise


def cow_session(
    resolve_run: Callable[..., Any],
    pool: object,
    *,
    binding_key: str | None = None,
    guard: SqlGuard = FROM_CATALOG,
) -> Callable[..., AsyncIterator[CowSession]]:
    """A FastAPI dependency giving each request a :class:`~agentcow.CowSession` of the run
    ``resolve_run`` returns.

    ``resolve_run`` is the application's own dependency (sync or async, with dependencies of
    its own: a bearer token, its database) that authenticates the agent and returns its
    :class:`AgentRun`, or raises (401, 404: the application's answers). ``pool`` is what
    the statements run on: an asyncpg, psycopg 3 or SQLAlchemy async pool (or engine), or
    :func:`lazy_pool` for one the application opens in its lifespan. ``binding_key`` is
    :class:`~agentcow.CowSession`'s: give it, and a pool that logs in as an agent role, so
    that the agent's SQL cannot leave the session. Every statement passes the SQL guard:
    ``guard=SqlGuard(...)`` configures it (the default reads the kit's catalog, as
    ``CowSession`` does, once per request); it cannot be turned off here.

    As everywhere, each ``execute`` / ``query`` is one operation in a transaction of its own
    (committed when the call returns, so the response never reports a write that is then
    lost); ``async with session.operation():`` makes several statements one operation.
    Errors those calls raise are answered as HTTP errors unless the handler catches them."""
    if guard is None:
        raise ValueError("the agent's statements always pass the SQL guard: give a SqlGuard")
    source = async_source(pool)

    async def request_session(
        run: Any = Depends(resolve_run),  # noqa: B008 (how FastAPI declares a dependency)
    ) -> AsyncIterator[CowSession]:
        if not isinstance(run, AgentRun):
            raise TypeError(
                f"the run resolver must return an AgentRun, not {type(run).__name__}: build "
                "it from what the application authenticated"
            )
        session = _RequestSession(
            source,
            session_id=run.session_id,
            tenant_id=run.tenant_id,
            label=run.label,
            binding_key=binding_key,
            guard=guard,
        )
        try:
            yield session
        except Exception as error:
            answer = _answer(error) if any(error is e for e in session.raised) else None
            if answer is None:
                raise
            raise answer from error

    return request_session


def _answer(error: BaseException) -> HTTPException | None:
    """The HTTP error for what a session's statement raised (None: not one to answer)."""
    if isinstance(error, CowError):
        kinds = [status for kind, status in _KIT_STATUS.items() if isinstance(error, kind)]
        return HTTPException(kinds[0], detail=_kit_detail(error)) if kinds else None
    fields = postgres_error_fields(error)
    if fields is None:
        return None
    sqlstate, message, detail = fields
    status = _SQLSTATE_STATUS.get(sqlstate) or _SQLSTATE_STATUS.get(sqlstate[:2])
    if status is None:
        return None
    body = {
        "source": "postgresql",
        "error": type(error).__name__,
        "code": sqlstate,
        "sqlstate": sqlstate,
        "message": message,
        "detail": detail or None,
        "hint": postgres_error_hint(error),
    }
    return HTTPException(status, detail={k: v for k, v in body.items() if v is not None})


def _kit_detail(error: CowError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "agentcow",
        "error": type(error).__name__,
        "code": getattr(error, "code", None) or code_of(type(error).__name__),
        "sqlstate": getattr(error, "sqlstate", None),
        "message": getattr(error, "message", None) or str(error),
        "refused": getattr(error, "refused", None),
        "hint": getattr(error, "hint", None),
    }
    return {k: v for k, v in body.items() if v is not None}


class _LazyPool(Source):
    def __init__(self, get: Callable[[], object]) -> None:
        self._get = get

    @asynccontextmanager
    async def connect(self, *, reset: bool) -> AsyncIterator[Link]:
        # The pool's own source checks the connection and resets it.
        async with async_source(self._get()).connect(reset=reset) as link:
            yield link


def lazy_pool(get: Callable[[], object]) -> Source:
    """A pool looked up when a request needs it, by ``get()``: one the application opens in
    its lifespan (``lazy_pool(lambda: app.state.pool)``), for :func:`cow_session` and
    :func:`reviewer_router`, which are built before it exists."""
    return _LazyPool(get)
