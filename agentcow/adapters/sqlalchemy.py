"""Executor over a SQLAlchemy ``AsyncConnection`` or ``AsyncSession``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


class SQLAlchemyExecutor:
    """Not :class:`~agentcow.executor.TransactionAware`: SQLAlchemy begins a transaction on
    the first statement and keeps it until the application commits (unless the engine is in
    AUTOCOMMIT), which the adapter cannot see from here."""

    def __init__(self, connection: AsyncConnection | AsyncSession) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy.ext.asyncio import AsyncSession

        connection = (
            await self._connection.connection()
            if isinstance(self._connection, AsyncSession)
            else self._connection
        )
        # exec_driver_sql: no bind-parameter parsing, so ':name' inside SQL text stays text.
        # Drivers with format-style placeholders (psycopg) still read '%' as one: double it.
        if connection.dialect.paramstyle in ("format", "pyformat"):
            sql = sql.replace("%", "%%")
        result = await connection.exec_driver_sql(sql)
        return [tuple(row) for row in result.fetchall()] if result.returns_rows else []
