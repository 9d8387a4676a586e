"""Running the kit's coroutines without an event loop, for the synchronous API.

The kit is written once, as coroutines over an :class:`~agentcow.executor.Executor`. A
blocking executor's ``execute`` is a coroutine that never suspends (it calls the sync driver
and returns), so a coroutine built on it finishes at its first ``send``: this drives it there
on the calling thread. One that suspends after all (it awaited a real future) is an error.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

from agentcow.errors import NotBlockingError

T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result (or its exception), computed on this thread."""
    try:
        awaited = coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise NotBlockingError(
        f"a synchronous call waited for an event loop ({awaited!r}): give the sync API a "
        "psycopg or SQLAlchemy sync connection, or use the async API from a coroutine"
    )


@contextmanager
def blocking_context(manager: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """An async context manager of blocking calls, entered and left as a sync one."""
    value = run_blocking(manager.__aenter__())
    try:
        yield value
    except BaseException as error:
        if not run_blocking(manager.__aexit__(type(error), error, error.__traceback__)):
            raise
    else:
        run_blocking(manager.__aexit__(None, None, None))
