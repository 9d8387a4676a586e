"""Executors over SQLAlchemy connections and sessions: async, and sync for the blocking API.

Not :class:`~agentcow.executor.TransactionAware`: SQLAlchemy begins a transaction on the
first statement and keeps it until the application commits (unless the engine is in
AUTOCOMMIT), which an adapter cannot see from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import Session


def driver_text(sql: str, dialect: Dialect) -> str:
    """``sql`` for ``exec_driver_sql``, which parses no bind parameters (so ':name' inside
    SQL text stays text); drivers with format-style placeholders (psycopg) still read '%'
    as one, so it is doubled for them."""
    return sql.replace("%", "%%") if dialect.paramstyle in ("format", "pyformat") else sql


class SQLAlchemyExecutor:
    def __init__(self, connection: AsyncConnection | AsyncSession) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy.ext.asyncio import AsyncSession

        connection = (
            await self._connection.connection()
            if isinstance(self._connection, AsyncSession)
            else self._connection
        )
        result = await connection.exec_driver_sql(driver_text(sql, connection.dialect))
        return [tuple(row) for row in result.fetchall()] if result.returns_rows else []


class SQLAlchemySyncExecutor:
    """Over a sync ``Connection`` or ``Session``: its ``execute`` blocks and never suspends,
    so the kit's coroutines run on it through :func:`agentcow.blocking.run_blocking`."""

    def __init__(self, connection: Connection | Session) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy.orm import Session

        connection = (
            self._connection.connection()
            if isinstance(self._connection, Session)
            else self._connection
        )
        result = connection.exec_driver_sql(driver_text(sql, connection.dialect))
        return [tuple(row) for row in result.fetchall()] if result.returns_rows else []
