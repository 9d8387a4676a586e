"""Links over SQLAlchemy engines and connections, async and sync.

Transactions and the agent's statements go through SQLAlchemy; the transaction state the
server reports, and the reset, come from the DBAPI driver's own connection underneath
(asyncpg or psycopg 3), through that driver's link.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from agentcow.adapters.sqlalchemy import SQLAlchemyExecutor, SQLAlchemySyncExecutor, driver_text
from agentcow.connections.asyncpg import AsyncpgLink
from agentcow.connections.link import Link, Result, Source
from agentcow.connections.psycopg import PsycopgAsyncLink, PsycopgSyncLink
from agentcow.errors import UnsupportedConnectionError
from agentcow.executor import Executor

if TYPE_CHECKING:
    from sqlalchemy import Connection, CursorResult, Engine
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def _driver_link(driver_connection: Any, dialect: Dialect) -> Link:
    """The link of the driver connection under SQLAlchemy's."""
    asyncpg = sys.modules.get("asyncpg")
    psycopg = sys.modules.get("psycopg")
    if asyncpg is not None and isinstance(driver_connection, asyncpg.Connection):
        return AsyncpgLink(driver_connection)
    if psycopg is not None and isinstance(driver_connection, psycopg.AsyncConnection):
        return PsycopgAsyncLink(driver_connection)
    if psycopg is not None and isinstance(driver_connection, psycopg.Connection):
        return PsycopgSyncLink(driver_connection)
    raise UnsupportedConnectionError(
        f"SQLAlchemy over {dialect.driver}: CowSession and Reviewer run on SQLAlchemy over "
        "asyncpg or psycopg (3)"
    )


def _forget_statements(dialect: Dialect) -> None:
    """SQLAlchemy's asyncpg dialect caches prepared statements of its own, by name, which
    DISCARD ALL deallocated: its (private) invalidation makes it prepare them again."""
    invalidate = getattr(dialect, "_invalidate_schema_cache", None)
    if invalidate is not None:
        invalidate()


def _statement(statement: Any) -> Any:
    from sqlalchemy import text

    return text(statement) if isinstance(statement, str) else statement


def _result(result: CursorResult[Any]) -> Result:
    if not result.returns_rows:
        return Result(rowcount=result.rowcount, columns=(), rows=[])
    columns = tuple(result.keys())
    return Result(rowcount=result.rowcount, columns=columns, rows=[tuple(r) for r in result])


class SQLAlchemyAsyncLink:
    def __init__(self, connection: AsyncConnection, driver: Link) -> None:
        self._connection = connection
        self._driver = driver
        self.executor: Executor = SQLAlchemyExecutor(connection)

    @classmethod
    async def over(cls, connection: AsyncConnection) -> SQLAlchemyAsyncLink:
        raw = await connection.get_raw_connection()
        return cls(connection, _driver_link(raw.driver_connection, connection.dialect))

    def busy(self) -> bool:
        return self._connection.in_transaction() or self._driver.busy()

    def in_transaction(self) -> bool:
        return self._driver.in_transaction()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._connection.begin():
            yield

    def standalone(self) -> Any:
        return self.transaction()

    async def run(self, statement: Any, params: Any) -> Result:
        """Text without parameters reaches the server untouched (no ':name' binds); with
        them, ``:name`` placeholders and a mapping, as ``text()`` takes them."""
        if isinstance(statement, str) and params is None:
            sql = driver_text(statement, self._connection.dialect)
            return _result(await self._connection.exec_driver_sql(sql))
        return _result(await self._connection.execute(_statement(statement), params))

    def placeholders(self, count: int) -> list[str]:
        return self._driver.placeholders(count)

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        """On the driver's connection under SQLAlchemy's (in its transaction): SQLAlchemy's
        own execution takes no positional placeholders."""
        await self._driver.call(statement, values)

    async def reset(self) -> None:
        await self._driver.reset()
        _forget_statements(self._connection.dialect)

    async def close(self) -> None:
        await self._connection.invalidate()

    def closed(self) -> bool:
        return self._connection.invalidated or self._driver.closed()


class SQLAlchemySyncLink:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._driver = _driver_link(connection.connection.driver_connection, connection.dialect)
        self.executor: Executor = SQLAlchemySyncExecutor(connection)

    def busy(self) -> bool:
        return self._connection.in_transaction() or self._driver.busy()

    def in_transaction(self) -> bool:
        return self._driver.in_transaction()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        with self._connection.begin():
            yield

    def standalone(self) -> Any:
        return self.transaction()

    async def run(self, statement: Any, params: Any) -> Result:
        if isinstance(statement, str) and params is None:
            sql = driver_text(statement, self._connection.dialect)
            return _result(self._connection.exec_driver_sql(sql))
        return _result(self._connection.execute(_statement(statement), params))

    def placeholders(self, count: int) -> list[str]:
        return self._driver.placeholders(count)

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        """On the driver's connection under SQLAlchemy's (in its transaction): SQLAlchemy's
        own execution takes no positional placeholders."""
        await self._driver.call(statement, values)

    async def reset(self) -> None:
        await self._driver.reset()
        _forget_statements(self._connection.dialect)

    async def close(self) -> None:
        self._connection.invalidate()

    def closed(self) -> bool:
        return self._connection.invalidated or self._driver.closed()


def sqlalchemy_async_source(target: AsyncEngine | AsyncConnection) -> Source:
    from sqlalchemy.ext.asyncio import AsyncEngine

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        if isinstance(target, AsyncEngine):
            async with target.connect() as connection:
                yield await SQLAlchemyAsyncLink.over(connection)
        else:
            yield await SQLAlchemyAsyncLink.over(target)

    return Source(acquire)


def sqlalchemy_sync_source(target: Engine | Connection) -> Source:
    from sqlalchemy import Engine

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        if isinstance(target, Engine):
            with target.connect() as connection:
                yield SQLAlchemySyncLink(connection)
        else:
            yield SQLAlchemySyncLink(target)

    return Source(acquire)
