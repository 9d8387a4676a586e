"""Session settings: which session and operation the current transaction writes as.

They are transaction-local (``SET LOCAL``), so a pooled connection never leaks a session into
the next request; call them inside the transaction that runs the agent's SQL. Outside one
(autocommit mode, or a pool that hands out a connection per statement) they would be gone
before the agent's next statement, which would write to production: entering a session
there raises :class:`SessionNotInTransactionError`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import (
    KitVersionError,
    OverlayMissingError,
    SessionNotInTransactionError,
    ShadowedNamesError,
)
from agentcow.executor import Executor, TransactionAware
from agentcow.identifiers import validate_uuid
from agentcow.templates import render
from agentcow.versions import KIT_VERSION

T = TypeVar("T")


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
    return [
        render("set_variable.sql", name=name, value=value)
        for name, value in _cow_settings(agent_session_id, operation_id, visible_operations)
    ]


def _cow_settings(
    agent_session_id: uuid.UUID | str,
    operation_id: uuid.UUID | str | None,
    visible_operations: Sequence[uuid.UUID | str] | None,
) -> list[tuple[str, str]]:
    """The three settings of a session, as (name, value); ids validated as UUIDs."""
    session = validate_uuid(agent_session_id, "session id")
    operation = validate_uuid(operation_id, "operation id") if operation_id else None
    visible = (
        [validate_uuid(v, "operation id") for v in visible_operations]
        if visible_operations
        else None
    )
    return [
        ("app.session_id", str(session)),
        ("app.operation_id", str(operation or "")),
        ("app.visible_operations", "{" + ",".join(map(str, visible)) + "}" if visible else ""),
    ]


async def _entering(run: Awaitable[T]) -> T:
    """Runs the statement that enters a session (sql/enter_session.sql), turning its refusals
    into this package's errors: shadowing temporary objects, missing overlay views, or a kit
    that predates it."""
    try:
        return await run
    except Exception as error:
        fields = postgres_error_fields(error)
        if fields is None:
            raise
        sqlstate, message, detail = fields
        if sqlstate == "55000" and message.startswith(_SHADOWED):
            names = [str(name) for name in json.loads(detail)]
            raise ShadowedNamesError(
                "the connection holds temporary objects that shadow tables or types the "
                f"agent's SQL would name ({', '.join(names)}), left by an earlier request: "
                "they would read its statements and session id. Reset pooled connections with "
                "DISCARD ALL (or DISCARD TEMP) when they are released, or drop these objects; "
                "the transaction is aborted",
                names,
            ) from error
        if sqlstate == "55000" and message.startswith(_OVERLAY_MISSING):
            tables = [str(name) for name in json.loads(detail)]
            raise OverlayMissingError(
                f"the overlay views of {', '.join(tables)} are missing (a migration dropped "
                "them): a session would write these tables themselves. Their owner must call "
                "refresh_cow; the transaction is aborted",
                tables,
            ) from error
        if sqlstate == "42883" and ("session_search_path" in message or "enter_session" in message):
            raise KitVersionError(
                f"the database has an older agentcow kit; this package speaks {KIT_VERSION}: "
                "call deploy_cow_functions(executor) to upgrade it"
            ) from error
        raise


#: How agentcow.session_search_path's errors begin.
_SHADOWED = "agentcow: temporary objects on this connection shadow"
_OVERLAY_MISSING = "agentcow: the overlay views of"

_NOT_IN_TRANSACTION = (
    "apply_cow_variables needs an open transaction on the connection (it was in autocommit "
    "mode, or a pool ran each statement on another connection): the session would end with "
    "this call and the agent's SQL would write to production. Open a transaction first, "
    "e.g. `async with conn.transaction():`"
)


async def apply_cow_variables(
    executor: Executor,
    session_id: str | uuid.UUID,
    operation_id: str | uuid.UUID | None = None,
    visible_operations: Sequence[str | uuid.UUID] | None = None,
    *,
    tenant_id: object = None,
    label: str | None = None,
) -> None:
    """Make the rest of the current transaction read and write as this session/operation.

    The session is recorded in the registry (``agentcow.sessions``) the first time it is
    entered, with ``label`` and the tenant it is bound to (``tenant_id``, compared with the
    tables' tenant columns as text). A session keeps that binding: entering it with another
    tenant, or none, raises ``insufficient_privilege`` from the database.

    Raises :class:`SessionNotInTransactionError` when no transaction is open on the executor's
    connection: the session would not outlive this call; :class:`ShadowedNamesError` (the
    transaction aborted) when temporary objects an earlier request left would read the
    session's SQL; :class:`OverlayMissingError` when a migration dropped the overlay view of a
    table on the ``search_path``. The transaction's ``search_path`` gets each overlay schema
    just before its schema, so the agent's unqualified names reach the overlay views
    (``layout="overlay"``). An executor that knows its transaction state
    (:class:`~agentcow.executor.TransactionAware`) is asked, and the session is then entered
    in one statement, one round trip; another sets the three settings, then reads the
    session's back (in autocommit mode a setting does not outlive its statement).
    """
    settings = _cow_settings(session_id, operation_id, visible_operations)
    entry = {"tenant": None if tenant_id is None else str(tenant_id), "label": label}
    if isinstance(executor, TransactionAware):
        if executor.runs_alone():
            raise SessionNotInTransactionError(_NOT_IN_TRANSACTION)
        await _entering(executor.run(render("enter_session.sql", settings=settings, **entry)))
        return
    for name, value in settings:
        await executor.execute(render("set_variable.sql", name=name, value=value))
    entered = await _entering(
        executor.execute(render("enter_session.sql", settings=None, name="app.session_id", **entry))
    )
    if not entered or entered[0][0] != settings[0][1]:
        raise SessionNotInTransactionError(_NOT_IN_TRANSACTION)


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
