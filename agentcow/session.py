"""Session settings: which session and operation the current transaction writes as.

They are transaction-local (``SET LOCAL``), so a pooled connection never leaks a session into
the next request; call them inside the transaction that runs the agent's SQL. Outside one
(autocommit mode, or a pool that hands out a connection per statement) they would be gone
before the agent's next statement, which would write to production: entering a session
there raises :class:`SessionNotInTransactionError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentcow.errors import SessionNotInTransactionError, ShadowedNamesError
from agentcow.executor import Executor
from agentcow.identifiers import validate_uuid
from agentcow.templates import render


@dataclass
class CowPostgresConfig:
    """What a request carries: a session, the operation it is performing, an optional preview."""

    session_id: uuid.UUID | None = None
    operation_id: uuid.UUID | None = None
    visible_operations: list[uuid.UUID] | None = field(default=None)

    @property
    def is_active(self) -> bool:
        return self.session_id is not None

    def to_session_kwargs(self) -> dict[str, Any]:
        return {
            "agent_session_id": self.session_id,
            "operation_id": self.operation_id,
            "visible_operations": self.visible_operations,
        }


def build_cow_variable_statements(
    agent_session_id: uuid.UUID | str,
    operation_id: uuid.UUID | str | None = None,
    visible_operations: Sequence[uuid.UUID | str] | None = None,
) -> list[str]:
    """``SET LOCAL`` statements for any driver; every id is validated as a UUID first.

    All three settings are set, those not given to '' (none): a value left on the
    connection by earlier SQL (an agent's plain ``SET app.visible_operations``, which
    outlives its transaction on a pooled connection) must not apply to this request.
    """
    session = validate_uuid(agent_session_id, "session id")
    operation = validate_uuid(operation_id, "operation id") if operation_id else None
    visible = (
        [validate_uuid(v, "operation id") for v in visible_operations]
        if visible_operations
        else None
    )
    return [
        render("set_variable.sql", name="app.session_id", value=str(session)),
        render("set_variable.sql", name="app.operation_id", value=str(operation or "")),
        render(
            "set_variable.sql",
            name="app.visible_operations",
            value="{" + ",".join(map(str, visible)) + "}" if visible else "",
        ),
    ]


async def apply_cow_variables(
    executor: Executor,
    session_id: str | uuid.UUID,
    operation_id: str | uuid.UUID | None = None,
    visible_operations: Sequence[str | uuid.UUID] | None = None,
) -> None:
    """Make the rest of the current transaction read and write as this session/operation.

    Raises :class:`SessionNotInTransactionError` when no transaction is open on the executor's
    connection: the session would not outlive this call.
    """
    statements = build_cow_variable_statements(session_id, operation_id, visible_operations)
    for statement in statements:
        await executor.execute(statement)
    entered = await executor.execute(render("session_entered.sql", name="app.session_id"))
    if not entered or entered[0][0] != str(validate_uuid(session_id, "session id")):
        raise SessionNotInTransactionError(
            "apply_cow_variables needs an open transaction on the connection (it was in "
            "autocommit mode, or a pool ran each statement on another connection): the "
            "session would end with this call and the agent's SQL would write to production. "
            "Open a transaction first, e.g. `async with conn.transaction():`"
        )
    shadowed = [str(name) for name in entered[0][1] or []]
    if shadowed:
        raise ShadowedNamesError(
            "the connection holds temporary objects that shadow tables or types the agent's "
            f"SQL would name ({', '.join(shadowed)}), left by an earlier request: they would "
            "read its statements and session id. Reset pooled connections with DISCARD ALL "
            "(or DISCARD TEMP) when they are released, or drop these objects",
            shadowed,
        )


async def set_visible_operations(
    executor: Executor, operation_ids: Sequence[str | uuid.UUID] | None
) -> None:
    """Preview: make the session view show only these operations (None shows all again)."""
    value = (
        "{" + ",".join(str(validate_uuid(op, "operation id")) for op in operation_ids) + "}"
        if operation_ids is not None
        else ""
    )
    await executor.execute(render("set_variable.sql", name="app.visible_operations", value=value))


async def reset_cow_variables(executor: Executor) -> None:
    """Leave the session: later statements of the transaction read and write the base."""
    for name in ("app.session_id", "app.operation_id", "app.visible_operations"):
        await executor.execute(render("reset_variable.sql", name=name))
