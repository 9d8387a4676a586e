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
