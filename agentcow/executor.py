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
    """An executor that knows its connection's transaction state, and can send a statement
    whose rows are not needed in one round trip. With it, entering a session is one
    statement (checked client-side to be inside a transaction), the kit's blocks (enable,
    commit, discard) go without being prepared, and a commit or discard truncates the change
    tables it empties when it runs in a transaction of its own (which ends with it):
    TRUNCATE's lock, kept until a caller's transaction ended, would stop every reader of the
    view meanwhile. Executors without it do none of these."""

    def runs_alone(self) -> bool:
        """Whether the next statement runs in a transaction of its own (autocommit)."""
        ...

    async def run(self, sql: str) -> None:
        """Send one statement and wait for it, without its rows."""
        ...
