"""Executor over a psycopg 3 async connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


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
        """In autocommit mode with no transaction open (else psycopg's is the caller's)."""
        from psycopg.pq import TransactionStatus

        idle = self._connection.info.transaction_status == TransactionStatus.IDLE
        return self._connection.autocommit and idle
