"""The agent's side: a session that owns its transactions (async; the sync twin is
:mod:`agentcow.agent.session_sync`).

Each ``execute``/``query`` is one operation in one transaction of its own on a connection
from the pool (or the connection given): the session is entered, the statement runs, the
transaction commits, and the connection is reset before it goes back. An ``operation()``
block runs several statements as one operation, in one transaction. Any error, task
cancellation included, rolls the transaction back; errors from PostgreSQL reach the caller
as the driver raised them. The SQL guard (:mod:`agentcow.agent.guard`) checks every statement
before it is sent, unless the session was made with ``guard=None``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from agentcow.agent.guard import SqlGuard, guard_from_catalog, sql_text
from agentcow.agent.upserts import rewrite_for
from agentcow.binding import bind_link
from agentcow.connections import Link, Result, async_source
from agentcow.errors import OperationInProgressError, TransactionEndedError
from agentcow.identifiers import validate_uuid
from agentcow.session import apply_cow_variables

#: ``guard=`` default: a guard of every COW table the catalog lists, built on first use.
FROM_CATALOG: Any = object()

#: The innermost open operation block of this task or thread (each knows the one it is in).
_blocks: ContextVar[Operation | None] = ContextVar("agentcow_operation_block", default=None)


class Operation:
    """An open ``operation()`` block: its statements share one operation id and one
    transaction, committed when the block ends."""

    def __init__(
        self, session: CowSession, operation_id: uuid.UUID, link: Link, outer: Operation | None
    ) -> None:
        self.session = session
        self.operation_id = operation_id
        self._link = link
        self._outer = outer
        self._open = True

    async def execute(self, statement: Any, params: Any = None) -> Result:
        """Run one statement (parameters in the driver's style): its rowcount and rows."""
        if not self._open:
            raise TransactionEndedError("this operation block has ended: open another")
        await self.session._check(self._link, statement)
        result = await _run_agent_statement(self._link, statement, params)
        if not self._link.in_transaction():
            raise TransactionEndedError(
                "the statement ended the operation's transaction (COMMIT or ROLLBACK in the "
                "agent's SQL): statements after it would run outside the session, so the "
                "operation stops here. What ran before it stays in the session (COMMIT) or "
                "is gone (ROLLBACK)"
            )
        return result

    async def query(self, statement: Any, params: Any = None) -> list[dict[str, Any]]:
        """Run one statement: its rows as dicts, by column name."""
        return (await self.execute(statement, params)).dicts()

    def find(self, session: CowSession) -> Operation | None:
        """The block of ``session`` this one is in (or is), if any."""
        block: Operation | None = self
        while block is not None and block.session is not session:
            block = block._outer
        return block

    def close(self) -> None:
        self._open = False


async def _run_agent_statement(link: Link, statement: Any, params: Any) -> Result:
    """Runs the agent's statement in the session: an upsert into a COW view as its rewrite
    (:mod:`agentcow.agent.upserts`), reporting what the agent's own statement would."""
    rewrite = await rewrite_for(link.executor, statement) if isinstance(statement, str) else None
    if rewrite is None:
        return await link.run(statement, params)
    result = await link.run(rewrite.sql, params)
    if rewrite.counts_only:
        return Result(rowcount=int(result.rows[0][0]), columns=(), rows=[])
    return result


class CowSession:
    """An agent's copy-on-write session over an asyncpg, psycopg 3 or SQLAlchemy (async)
    connection or pool. ``session_id`` is a new UUID unless given; ``tenant_id`` and
    ``label`` are recorded with the session (see ``apply_cow_variables``).

    With ``binding_key`` (from :func:`agentcow.binding.create_binding_key`, kept from the
    agent) each transaction is bound with ``agentcow.bind_session``, which no SQL of the
    agent can undo or move; an agent role (:func:`agentcow.binding.add_agent_role`) can
    write only so. Without it, the session is entered with agent-cow's settings.

    A connection given directly must be idle (the session opens its own transactions) and
    serves one call at a time; give a pool for concurrent calls. Whatever the agent's SQL
    leaves on a connection (settings, temporary objects, prepared statements, advisory
    locks) is reset with ``DISCARD ALL`` after each call, and whatever the connection held
    before (another user of the pool) before it.

    Every statement passes the SQL guard first (:class:`~agentcow.agent.guard.SqlGuard`;
    a refusal raises :class:`~agentcow.errors.GuardRefusal` and sends nothing). By default
    the guard allows the COW tables the kit's catalog lists, read on first use; give
    ``guard=SqlGuard(...)`` to allow read-only tables or functions, or ``guard=None`` for
    SQL the application trusts (never the agent's).
    """

    def __init__(
        self,
        connection: object,
        *,
        session_id: uuid.UUID | str | None = None,
        tenant_id: object = None,
        label: str | None = None,
        binding_key: str | None = None,
        guard: SqlGuard | None = FROM_CATALOG,
    ) -> None:
        self._source = async_source(connection)
        self._binding_key = binding_key
        self._guard_from_catalog = guard is FROM_CATALOG
        self._guard = None if self._guard_from_catalog else guard
        self.session_id = (
            uuid.uuid4() if session_id is None else validate_uuid(session_id, "session id")
        )
        self.tenant_id = tenant_id
        self.label = label

    @property
    def guard(self) -> SqlGuard | None:
        """The guard checking this session's statements (None: off, or not yet read from
        the catalog)."""
        return None if self._guard_from_catalog else self._guard

    async def _check(self, link: Link, statement: Any) -> None:
        """Refuse the statement (:class:`GuardRefusal`) unless the guard lets it through."""
        if self._guard_from_catalog:
            self._guard = await guard_from_catalog(link.executor)
            self._guard_from_catalog = False
        if self._guard is not None:
            self._guard.check(sql_text(statement))

    async def execute(self, statement: Any, params: Any = None) -> Result:
        """Run one statement as an operation of its own (or of the enclosing
        ``operation()`` block): its rowcount, columns and rows (tuples)."""
        block = _blocks.get()
        current = block.find(self) if block is not None else None
        if current is not None:
            return await current.execute(statement, params)
        async with self.operation() as operation:
            return await operation.execute(statement, params)

    async def query(self, statement: Any, params: Any = None) -> list[dict[str, Any]]:
        """As :meth:`execute`: the rows as dicts, by column name."""
        return (await self.execute(statement, params)).dicts()

    @asynccontextmanager
    async def operation(
        self, operation_id: uuid.UUID | str | None = None
    ) -> AsyncIterator[Operation]:
        """A block whose statements (``execute``/``query`` of the session or of the block)
        are one operation (a new id unless given) in one transaction: committed when the
        block ends, rolled back if it raises."""
        outer = _blocks.get()
        if outer is not None and outer.find(self) is not None:
            raise OperationInProgressError(
                "an operation block of this session is already open in this task: its "
                "statements are one operation; end it before opening another"
            )
        operation_id = (
            uuid.uuid4() if operation_id is None else validate_uuid(operation_id, "operation id")
        )
        async with self._source.connect(reset=True) as link:
            await link.reset()
            async with link.transaction():
                await self._enter(link, operation_id)
                block = Operation(self, operation_id, link, outer)
                token = _blocks.set(block)
                try:
                    yield block
                finally:
                    _blocks.reset(token)
                    block.close()

    async def _enter(self, link: Link, operation_id: uuid.UUID) -> None:
        if self._binding_key is not None:
            await bind_link(
                link,
                self.session_id,
                operation_id,
                key=self._binding_key,
                tenant_id=self.tenant_id,
                label=self.label,
            )
        else:
            await apply_cow_variables(
                link.executor,
                self.session_id,
                operation_id,
                tenant_id=self.tenant_id,
                label=self.label,
            )
