"""The session registry: sessions recorded on first entry, bound to the tenant they were
entered with, out of the reach of the agent's SQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import TestDatabase
from tests.helpers import connect_as, create_login_role, ex, fetch, grant_agent, make_cow, new_id

DDL = "CREATE TABLE t (id int PRIMARY KEY, tenant_id int NOT NULL, v text)"


async def test_first_entry_records_the_session(conn: Any) -> None:
    await make_cow(conn, DDL, "t")
    sid = new_id()
    for _ in range(2):
        async with conn.transaction():
            await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=7, label="billing run")
    rows = await fetch(
        conn, "SELECT tenant, label, state FROM agentcow.sessions WHERE session_id = $1", sid
    )
    assert rows == [("7", "billing run", "open")]


@pytest.mark.parametrize(("first", "then"), [(7, 8), (7, None), (None, 7)])
async def test_a_session_keeps_its_tenant(conn: Any, first: Any, then: Any) -> None:
    await make_cow(conn, DDL, "t")
    sid = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=first)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="is bound to"):
        async with conn.transaction():
            await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=then)


async def test_the_agent_cannot_rebind_its_session(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, DDL, "t")
    await create_login_role(database, "registry_agent")
    await grant_agent(conn, "registry_agent", ["t"])
    sid = new_id()
    agent = await connect_as(database, "registry_agent")
    try:
        async with agent.transaction():
            await ac.apply_cow_variables(ex(agent), sid, new_id(), tenant_id=1)
            for statement in (
                "UPDATE agentcow.sessions SET tenant = '2'",
                "DELETE FROM agentcow.sessions",
                "SELECT * FROM agentcow.sessions",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with agent.transaction():
                        await agent.execute(statement)
            assert await agent.fetchval("SELECT agentcow.session_tenant()") == "1"
    finally:
        await agent.close()
