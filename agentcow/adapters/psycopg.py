"""Executors over psycopg 3 connections: async, and sync for the blocking API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


def _alone(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """In autocommit mode with no transaction open (else psycopg's is the caller's)."""
    from psycopg.pq import TransactionStatus

    idle = connection.info.transaction_status == TransactionStatus.IDLE
    return connection.autocommit and idle


class PsycopgExecutor:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        # No parameters are passed, so psycopg sends the text untouched (no %-placeholders).
        async with self._connection.cursor() as cursor:
            await cursor.execute(sql.encode())
            return [tuple(row) for row in await cursor.fetchall()] if cursor.description else []

    async def run(self, sql: str) -> None:
        await self.execute(sql)

    def runs_alone(self) -> bool:
        return _alone(self._connection)


class PsycopgSyncExecutor:
    """Over a sync ``psycopg.Connection``: its ``execute`` blocks and never suspends, so the
    kit's coroutines run on it through :func:`agentcow.blocking.run_blocking`."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            cursor.execute(sql.encode())
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    async def run(self, sql: str) -> None:
        await self.execute(sql)

    def runs_alone(self) -> bool:
        return _alone(self._connection)
