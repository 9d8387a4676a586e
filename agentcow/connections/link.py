"""A connection as a scope uses it, whatever the driver: its own transactions, the agent's
statements with their parameters, and a reset before it goes back.

Each driver module gives a :class:`Link` per connection and a way to get one (from a pool,
or the connection itself). Links of sync drivers have coroutine methods that never suspend,
so the scopes' single implementation also runs under :mod:`agentcow.blocking`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from agentcow.errors import ConnectionBusyError
from agentcow.executor import Executor


@dataclass(frozen=True)
class Result:
    """What one statement gave: rows affected (or returned; -1 when the driver does not say),
    the columns of its rows, and the rows as tuples."""

    rowcount: int
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def rowcount_of(status: str | None) -> int:
    """Rows a command tag reports (``UPDATE 3``, ``INSERT 0 3``), -1 for a tag without."""
    words = (status or "").split()
    return int(words[-1]) if len(words) > 1 and words[-1].isdigit() else -1


class Link(Protocol):
    """One connection, held for one scope call."""

    executor: Executor
    """The kit's executor on this connection (for entering the session, reviewing)."""

    def busy(self) -> bool:
        """Whether a transaction is open that the scope did not open."""
        ...

    def in_transaction(self) -> bool:
        """Whether the server still has the transaction open (an agent may have ended it)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """One transaction: committed at the end of the block, rolled back on any error."""
        ...

    def standalone(self) -> AbstractAsyncContextManager[None]:
        """A block whose statements are committed by its end at the latest: each on its own
        under the driver's autocommit where there is one (so the kit's blocks may reclaim
        space and plan again), else all in one transaction."""
        ...

    async def run(self, statement: Any, params: Any) -> Result:
        """One statement, parameters in the driver's own style."""
        ...

    def placeholders(self, count: int) -> list[str]:
        """``count`` parameter placeholders in the driver's style, for :meth:`call`."""
        ...

    async def call(self, statement: str, values: Sequence[Any]) -> None:
        """One statement of the kit's whose values travel as parameters, never in its text
        (which pg_stat_activity, pg_stat_statements and pg_prepared_statements show to other
        backends of the role): a placeholder from :meth:`placeholders` per value."""
        ...

    async def reset(self) -> None:
        """``DISCARD ALL`` (settings, temporary objects, prepared statements, advisory locks,
        cursors, listens), and the driver forgets its prepared statements too."""
        ...

    async def close(self) -> None:
        """Close the connection (a pool then drops it)."""
        ...

    def closed(self) -> bool:
        """Whether the connection is closed (the driver may close it on cancellation)."""
        ...


Acquire = Callable[[], AbstractAsyncContextManager[Link]]


class Source:
    """Where a scope gets its connection for each call: a pool, or one connection."""

    def __init__(self, acquire: Acquire) -> None:
        self._acquire = acquire

    @asynccontextmanager
    async def connect(self, *, reset: bool) -> AsyncIterator[Link]:
        """A link for one call. With ``reset``, the connection is reset when the call ends
        (after its transaction), and closed if that fails: it never goes back to a pool, or
        to the next call, holding what the agent's SQL left on it."""
        async with self._acquire() as link:
            if link.busy():
                raise ConnectionBusyError(
                    "the connection has a transaction open: a CowSession or Reviewer opens "
                    "and ends its own, so give it an idle connection (commit or roll back "
                    "first) or a pool"
                )
            try:
                yield link
            finally:
                if reset and not link.closed():  # a closed one holds nothing any more
                    await _reset(link)


async def _reset(link: Link) -> None:
    try:
        await link.reset()
    except BaseException:
        await link.close()
        raise
