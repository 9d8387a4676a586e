"""The agent's side, synchronous: the same ``CowSession`` over psycopg (``Connection``,
``ConnectionPool``) or SQLAlchemy (``Engine``, ``Connection``). It runs the async
implementation (:mod:`agentcow.agent.session`) on blocking connections, whose calls never
wait for an event loop (:mod:`agentcow.blocking`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agentcow.agent import session as _async
from agentcow.agent.guard import SqlGuard
from agentcow.blocking import blocking_context, run_blocking
from agentcow.connections import Result, blocking_source


class Operation:
    """An open ``operation()`` block: its statements share one operation id and one
    transaction, committed when the block ends."""

    def __init__(self, block: _async.Operation) -> None:
        self._block = block
        self.operation_id = block.operation_id

    def execute(self, statement: Any, params: Any = None) -> Result:
        return run_blocking(self._block.execute(statement, params))

    def query(self, statement: Any, params: Any = None) -> list[dict[str, Any]]:
        return run_blocking(self._block.query(statement, params))


class CowSession:
    """An agent's copy-on-write session over a psycopg or SQLAlchemy sync connection, pool
    or engine; see the async :class:`agentcow.agent.session.CowSession`."""

    def __init__(
        self,
        connection: object,
        *,
        session_id: uuid.UUID | str | None = None,
        tenant_id: object = None,
        label: str | None = None,
        binding_key: str | None = None,
        guard: SqlGuard | None = _async.FROM_CATALOG,
    ) -> None:
        self._session = _async.CowSession(
            blocking_source(connection),
            session_id=session_id,
            tenant_id=tenant_id,
            label=label,
            binding_key=binding_key,
            guard=guard,
        )
        self.session_id = self._session.session_id
        self.tenant_id = tenant_id
        self.label = label

    @property
    def guard(self) -> SqlGuard | None:
        return self._session.guard

    def execute(self, statement: Any, params: Any = None) -> Result:
        """Run one statement as an operation of its own (or of the enclosing
        ``operation()`` block): its rowcount, columns and rows (tuples)."""
        return run_blocking(self._session.execute(statement, params))

    def query(self, statement: Any, params: Any = None) -> list[dict[str, Any]]:
        """As :meth:`execute`: the rows as dicts, by column name."""
        return run_blocking(self._session.query(statement, params))

    @contextmanager
    def operation(self, operation_id: uuid.UUID | str | None = None) -> Iterator[Operation]:
        """A block whose statements are one operation in one transaction."""
        with blocking_context(self._session.operation(operation_id)) as block:
            yield Operation(block)
