"""Links over asyncpg connections and pools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.connections.link import Link, Result, Source, rowcount_of
from agentcow.executor import Executor
from agentcow.templates import render

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy


class AsyncpgLink:
    def __init__(self, connection: asyncpg.Connection | PoolConnectionProxy[Any]) -> None:
        self._connection = connection
        self.executor: Executor = AsyncpgExecutor(connection)

    def busy(self) -> bool:
        return self._connection.is_in_transaction()

    def in_transaction(self) -> bool:
        return self._connection.is_in_transaction()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._connection.transaction():
            yield

    @asynccontextmanager
    async def standalone(self) -> AsyncIterator[None]:
        yield  # asyncpg runs each statement in its own transaction outside one

    async def run(self, statement: Any, params: Any) -> Result:
        # A prepared statement gives the rows and the command tag (fetch gives no tag).
        prepared = await self._connection.prepare(statement)
        records = await prepared.fetch(*(params or ()))
        return Result(
            rowcount=rowcount_of(prepared.get_statusmsg()),
            columns=tuple(attribute.name for attribute in prepared.get_attributes()),
            rows=[tuple(record) for record in records],
        )

    def placeholders(self, count: int) -> list[str]:
        return [f"${index}" for index in range(1, count + 1)]

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        await self._connection.execute(statement, *values)

    async def reset(self) -> None:
        await self._connection.execute(render("reset_connection.sql"))
        # DISCARD ALL deallocated the statements asyncpg caches by name: it must forget them
        # (the call drops the statement caches of a pool's other connections too).
        await self._connection.reload_schema_state()

    async def close(self) -> None:
        self._connection.terminate()

    def closed(self) -> bool:
        return self._connection.is_closed()


def asyncpg_source(
    target: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[Any],
) -> Source:
    import asyncpg

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        if isinstance(target, asyncpg.Pool):
            async with target.acquire() as connection:
                yield AsyncpgLink(connection)
        else:
            yield AsyncpgLink(target)

    return Source(acquire)
