"""Sessions an agent cannot move: binding keys, agent roles, and binding a transaction.

agent-cow binds a transaction to a session with settings, which any SQL the agent sends can
change. Once a role is registered as an agent role (:func:`add_agent_role`), its settings
bind nothing: its transaction's session is the one the application recorded with
``agentcow.bind_session`` and a key the agent never sees (:func:`create_binding_key`), and
its writes through a COW view without one fail (42501). Values travel as parameters, so no
session id and no key appears in a statement text that statistics views or prepared
statements show.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from agentcow.catalog import require_kit
from agentcow.connections.link import Link
from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import BindingKeyExistsError, UnknownRoleError
from agentcow.executor import Executor
from agentcow.templates import render

#: Where applications conventionally keep their binding key (an environment variable).
BINDING_KEY_ENV = "AGENTCOW_BINDING_KEY"


def key_digest(key: str) -> str:
    """The SHA-256 digest of a key, as stored (hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_binding_key(executor: Executor, *, label: str) -> str:
    """A new binding key, recorded by its digest under ``label`` (the kit's owner only). The
    key is returned once and stored nowhere: keep it with the application's secrets, out of
    the agent's reach."""
    await require_kit(executor)
    key = secrets.token_urlsafe(32)
    rows = await executor.execute(
        render("binding_key_add.sql", label=label, digest=key_digest(key))
    )
    if not rows:
        raise BindingKeyExistsError(f"a binding key labelled {label!r} exists already")
    return key


async def revoke_binding_key(executor: Executor, label: str) -> bool:
    """Whether a key labelled ``label`` was revoked. Transactions bound with it keep their
    binding until they end; later ones cannot be bound with it."""
    await require_kit(executor)
    return bool(await executor.execute(render("binding_key_revoke.sql", label=label)))


async def add_agent_role(executor: Executor, role: str) -> None:
    """Register ``role`` as an agent role (the kit's owner only): it, and every role that is
    a member of it, superusers excepted, is bound only by ``bind_session``."""
    await _change_agent_role(executor, role, add=True)


async def remove_agent_role(executor: Executor, role: str) -> None:
    """Stop treating ``role`` as an agent role; settings bind it again."""
    await _change_agent_role(executor, role, add=False)


async def agent_roles(executor: Executor) -> list[str]:
    """The registered agent roles, by name."""
    await require_kit(executor)
    return [str(row[0]) for row in await executor.execute(render("agent_roles.sql"))]


async def _change_agent_role(executor: Executor, role: str, *, add: bool) -> None:
    await require_kit(executor)
    try:
        await executor.execute(render("agent_role.sql", role=role, add=add))
    except Exception as error:
        fields = postgres_error_fields(error)
        if fields is not None and fields[0] == "42704":  # undefined_object
            raise UnknownRoleError(f"role {role!r} does not exist") from error
        raise


async def bind_link(
    link: Link,
    session_id: uuid.UUID,
    operation_id: uuid.UUID,
    *,
    key: str,
    tenant_id: object = None,
    label: str | None = None,
) -> None:
    """Bind the link's open transaction to ``session_id`` and ``operation_id`` with ``key``,
    recording the session (tenant and label, checked as ``apply_cow_variables`` does) and
    taking its search_path."""
    statement = render("bind_session.sql", placeholders=link.placeholders(5))
    tenant = None if tenant_id is None else str(tenant_id)
    await link.call(statement, [str(session_id), str(operation_id), key, tenant, label])
