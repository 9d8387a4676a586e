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


@runtime_checkable
class TransactionAware(Protocol):
    """An executor that can tell whether its next statement runs in a transaction of its own
    (autocommit), which ends with the statement. Only then does a commit or discard truncate
    the change tables it emptied: TRUNCATE's lock, kept until a caller's transaction ended,
    would stop every reader of the view meanwhile. Executors without it never truncate."""

    def runs_alone(self) -> bool: ...
