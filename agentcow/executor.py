"""The one protocol the kit needs from a database driver."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    """Anything that runs one SQL statement and returns its rows as tuples.

    The kit sends complete statements with every value already quoted, so an executor needs
    no parameter support; adapters for asyncpg, psycopg 3 and SQLAlchemy live in
    :mod:`agentcow.adapters`.
    """

    async def execute(self, sql: str) -> list[tuple[Any, ...]]: ...
