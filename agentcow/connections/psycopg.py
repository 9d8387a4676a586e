"""Links over psycopg 3 connections and pools, async and sync (psycopg_pool for pools).

The sync link's coroutine methods call the blocking driver and never suspend (see
:mod:`agentcow.blocking`). After ``DISCARD ALL`` psycopg must forget the statements it
prepared (it prepares a text it ran five times): it notices ``DISCARD ALL`` only the first
time it runs that text, but forgets them whenever a transaction rolls back, so the reset
ends with an empty transaction rolled back. The reset itself is never prepared: a prepared
``DISCARD ALL`` would deallocate itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from agentcow.adapters.psycopg import PsycopgExecutor, PsycopgSyncExecutor
from agentcow.connections.link import Link, Result, Source
from agentcow.executor import Executor
from agentcow.templates import render

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    from psycopg import sql


def _query(statement: Any) -> bytes | sql.SQL | sql.Composed:
    """Text as bytes (psycopg's types ask str for literals only), composed SQL as it is."""
    return statement.encode() if isinstance(statement, str) else statement


def _busy(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    from psycopg.pq import TransactionStatus

    return connection.info.transaction_status != TransactionStatus.IDLE


def _in_transaction(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    from psycopg.pq import TransactionStatus

    status = connection.info.transaction_status
    return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)


class PsycopgAsyncLink:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection
        self.executor: Executor = PsycopgExecutor(connection)

    def busy(self) -> bool:
        return _busy(self._connection)

    def in_transaction(self) -> bool:
        return _in_transaction(self._connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._connection.transaction():
            yield

    @asynccontextmanager
    async def standalone(self) -> AsyncIterator[None]:
        if self._connection.autocommit:
            yield
            return
        await self._connection.set_autocommit(True)
        try:
            yield
        finally:
            await self._connection.set_autocommit(False)

    async def run(self, statement: Any, params: Any) -> Result:
        from psycopg.rows import tuple_row

        async with self._connection.cursor(row_factory=tuple_row) as cursor:
            await cursor.execute(_query(statement), params)
            rows = await cursor.fetchall() if cursor.description else []
            columns = tuple(column.name for column in cursor.description or ())
            return Result(rowcount=cursor.rowcount, columns=columns, rows=rows)

    def placeholders(self, count: int) -> list[str]:
        return ["%s"] * count

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        await self._connection.execute(_query(statement), tuple(values), prepare=False)

    async def reset(self) -> None:
        async with self.standalone():
            await self._connection.execute(_query(render("reset_connection.sql")), prepare=False)
        async with self._connection.transaction(force_rollback=True):
            pass  # see the module's docstring

    async def close(self) -> None:
        await self._connection.close()

    def closed(self) -> bool:
        return self._connection.closed


class PsycopgSyncLink:
    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self.executor: Executor = PsycopgSyncExecutor(connection)

    def busy(self) -> bool:
        return _busy(self._connection)

    def in_transaction(self) -> bool:
        return _in_transaction(self._connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        with self._connection.transaction():
            yield

    @asynccontextmanager
    async def standalone(self) -> AsyncIterator[None]:
        if self._connection.autocommit:
            yield
            return
        self._connection.autocommit = True
        try:
            yield
        finally:
            self._connection.autocommit = False

    async def run(self, statement: Any, params: Any) -> Result:
        from psycopg.rows import tuple_row

        with self._connection.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(_query(statement), params)
            rows = cursor.fetchall() if cursor.description else []
            columns = tuple(column.name for column in cursor.description or ())
            return Result(rowcount=cursor.rowcount, columns=columns, rows=rows)

    def placeholders(self, count: int) -> list[str]:
        return ["%s"] * count

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        self._connection.execute(_query(statement), tuple(values), prepare=False)

    async def reset(self) -> None:
        async with self.standalone():
            self._connection.execute(_query(render("reset_connection.sql")), prepare=False)
        with self._connection.transaction(force_rollback=True):
            pass  # see the module's docstring

    async def close(self) -> None:
        self._connection.close()

    def closed(self) -> bool:
        return self._connection.closed


def psycopg_async_source(
    target: psycopg.AsyncConnection[Any] | psycopg_pool.AsyncConnectionPool[Any],
) -> Source:
    import psycopg

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        if isinstance(target, psycopg.AsyncConnection):
            yield PsycopgAsyncLink(target)
        else:
            async with target.connection() as connection:
                yield PsycopgAsyncLink(connection)

    return Source(acquire)


def psycopg_sync_source(
    target: psycopg.Connection[Any] | psycopg_pool.ConnectionPool[Any],
) -> Source:
    import psycopg

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        if isinstance(target, psycopg.Connection):
            yield PsycopgSyncLink(target)
        else:
            with target.connection() as connection:
                yield PsycopgSyncLink(connection)

    return Source(acquire)
