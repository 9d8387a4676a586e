"""What the tools of one server share: its connections, the session it is bound to, and the
way every call turns into a result.

The session (and its tenant and binding key) is fixed when the server is made, by the host
application; no tool takes a session id, so nothing the model sends can move it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from mcp.types import CallToolResult

from agentcow.agent.guard import SqlGuard
from agentcow.connections import async_source
from agentcow.executor import Executor
from agentcow.mcp.results import error_result
from agentcow.review.policy import Policy


@dataclass
class Binding:
    """The session a server serves, as the host application gave it."""

    session_id: uuid.UUID
    tenant_id: object = None
    binding_key: str | None = field(default=None, repr=False)  # a secret: never in a log
    label: str | None = None


@dataclass
class Runtime:
    """Connections (a DSN is opened as an asyncpg pool while the server runs; a pool or
    connection given is the host's) and the settings every tool reads."""

    database: object = field(repr=False)  # a DSN may hold a password
    review_database: object = field(repr=False)
    binding: Binding
    schema: str
    max_rows: int
    policy: Policy | None = None
    guard: SqlGuard | None = None
    _open: dict[str, object] = field(default_factory=dict, repr=False)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the pools the DSNs name for as long as the server runs."""
        async with AsyncExitStack() as stack:
            for target in (self.database, self.review_database):
                if isinstance(target, str) and target not in self._open:
                    self._open[target] = await stack.enter_async_context(_pool(target))
            try:
                yield
            finally:
                self._open.clear()

    def connection(self, target: object) -> object:
        """The pool (or the host's connection) behind ``target``."""
        if not isinstance(target, str):
            return target
        opened = self._open.get(target)
        if opened is None:
            raise RuntimeError("the server's connections are open only while it runs")
        return opened

    @property
    def pool(self) -> object:
        return self.connection(self.database)

    @property
    def review_pool(self) -> object:
        return self.connection(self.review_database)

    @asynccontextmanager
    async def executor(self, target: object) -> AsyncIterator[Executor]:
        """The kit's executor on a connection of ``target``, reset when the call ends: its
        statements (which name the session) stay on no pooled connection."""
        source = async_source(self.connection(target))
        async with source.connect(reset=True) as link, link.standalone():
            yield link.executor


async def call(work: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """A tool's work, any error it raises given back as an error result."""
    try:
        return await work()
    except Exception as error:
        return error_result(error)


@asynccontextmanager
async def _pool(dsn: str) -> AsyncIterator[Any]:
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
