"""Executor over an asyncpg connection (or pool)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy


class AsyncpgExecutor:
    def __init__(
        self, connection: asyncpg.Connection | asyncpg.Pool | PoolConnectionProxy[Any]
    ) -> None:
        self._connection = connection

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(record) for record in await self._connection.fetch(sql)]

    async def run(self, sql: str) -> None:
        """The simple query protocol: no statement prepared (and cached) for one-off text."""
        await self._connection.execute(sql)

    def runs_alone(self) -> bool:
        """A pool runs each statement on its own; a connection does outside a transaction."""
        import asyncpg

        if isinstance(self._connection, asyncpg.Pool):
            return True
        return not self._connection.is_in_transaction()
