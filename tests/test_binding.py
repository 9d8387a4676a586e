"""Sessions an agent cannot move: once a role is registered as an agent role, only the
application's ``bind_session`` (with a key the agent never sees) binds its transactions.

Every test runs the agent as a login role of its own, on real connections, and checks the
database afterwards: production (the base table), other sessions, and what the agent's
backend shows to other backends of its role.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import agentcow as ac
from agentcow.binding import (
    add_agent_role,
    agent_roles,
    create_binding_key,
    remove_agent_role,
    revoke_binding_key,
)
from agentcow.errors import BindingKeyExistsError, UnknownRoleError
from agentcow.templates import render
from tests.conftest import TestDatabase
from tests.helpers import (
    ROLE_PASSWORD,
    base_table,
    changes_count,
    changes_table,
    connect_as,
    create_login_role,
    ex,
    fetch,
    grant_agent,
    make_cow,
    new_id,
    sqlstate,
)
from tests.postgres_server import replace_dsn

AGENT = "bound_agent"
DDL = """
CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL);
INSERT INTO orders SELECT g, 100 * g FROM generate_series(1, 20) g;
CREATE TABLE lines (id int PRIMARY KEY, order_id int REFERENCES orders ON DELETE CASCADE);
INSERT INTO lines SELECT g, g FROM generate_series(1, 20) g;
"""
#: What an application sends (parameters: session, operation, key, tenant, label), with the
#: session's search_path (the overlay schema first, in that layout).
BIND = render("bind_session.sql", placeholders=["$1", "$2", "$3", "NULL", "NULL"])


def agent_dsn(database: TestDatabase) -> str:
    return replace_dsn(database.owner_dsn, user=AGENT, password=ROLE_PASSWORD)


@pytest_asyncio.fixture
async def bound(conn: Any, database: TestDatabase) -> AsyncIterator[str]:
    """The COW tables, the agent role registered, and the application's binding key."""
    executor = await make_cow(conn, DDL, "orders", "lines")
    await create_login_role(database, AGENT)
    await grant_agent(conn, AGENT, ["orders", "lines"])
    await add_agent_role(executor, AGENT)
    yield await create_binding_key(executor, label="app")


@pytest_asyncio.fixture
async def agent(bound: str, database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect_as(database, AGENT)
    yield connection
    await connection.close()


async def base_rows(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, f"SELECT id, total FROM {base_table('orders')} ORDER BY id")


async def session_rows(conn: Any, session_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """The orders as ``session_id`` sees them (read by the owner, with settings)."""
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), session_id, None)
        return await fetch(conn, "SELECT id, total FROM orders ORDER BY id")


async def test_agent_writes_through_a_cow_session_with_the_key_stay_in_it(
    conn: Any, bound: str, database: TestDatabase
) -> None:
    before = await base_rows(conn)
    async with asyncpg.create_pool(agent_dsn(database), min_size=1, max_size=2) as pool:
        cow = ac.CowSession(pool, binding_key=bound)
        result = await cow.execute("UPDATE orders SET total = 0 WHERE id = 15 RETURNING total")
        assert result.rows == [(0,)]
        assert (await cow.query("SELECT total FROM orders WHERE id = 15")) == [{"total": 0}]
    assert await base_rows(conn) == before
    assert (15, 0) in await session_rows(conn, cow.session_id)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders SET total = 0 WHERE id = 15",
        "DELETE FROM orders WHERE id = 15",
        "INSERT INTO orders VALUES (99, 1)",
    ],
)
async def test_agent_writes_without_a_binding_fail_whatever_the_settings(
    conn: Any, agent: asyncpg.Connection, statement: str
) -> None:
    before = await base_rows(conn)
    session_id = new_id()
    for settings in ([], [("app.session_id", session_id), ("app.operation_id", new_id())]):
        with pytest.raises(asyncpg.PostgresError) as caught:
            async with agent.transaction():
                for name, value in settings:
                    await agent.execute("SELECT set_config($1, $2, true)", name, str(value))
                await agent.execute(statement)
        assert sqlstate(caught.value) == "42501"
    assert await base_rows(conn) == before
    assert await changes_count(conn, "orders", session_id) == 0


async def test_set_config_in_the_statement_cannot_move_a_bound_transaction(
    conn: Any, agent: asyncpg.Connection, bound: str
) -> None:
    """The issue's escape: clear the session from the WHERE clause (the row would reach the
    base, as a write without a session), put it back from RETURNING."""
    own, other = new_id(), new_id()
    async with conn.transaction():  # a session of another agent, with a pending row
        await ac.apply_cow_variables(ex(conn), other, new_id())
        await conn.execute("UPDATE orders SET total = 7 WHERE id = 3")
    before = await base_rows(conn)
    async with agent.transaction():
        await agent.execute(BIND, own, new_id(), bound)
        rows = await fetch(
            agent,
            "UPDATE orders SET total = 0 WHERE id = 15 "
            "AND set_config('app.session_id', '', true) = '' "
            f"RETURNING set_config('app.session_id', '{own}', true)",
        )
        assert len(rows) == 1
        await agent.execute(
            "DELETE FROM orders WHERE id = 16 AND set_config('app.session_id', $1, true) <> ''",
            str(other),
        )
        await agent.execute(
            "UPDATE orders SET total = 1 WHERE id = 17 "
            "AND set_config('app.operation_id', $1, true) <> ''",
            str(new_id()),
        )
    assert await base_rows(conn) == before
    mine = dict(await session_rows(conn, own))
    assert mine[15] == 0 and 16 not in mine and mine[17] == 1
    theirs = dict(await session_rows(conn, other))
    assert theirs[3] == 7 and theirs[15] == 1500 and theirs[16] == 1600
    # every version of the transaction carries the operation it was bound with
    operations = await fetch(
        conn,
        f"SELECT DISTINCT operation_id FROM {changes_table('orders')} WHERE session_id = $1",
        own,
    )
    assert len(operations) == 1


async def test_a_leaked_session_id_shows_nothing_of_that_session(
    conn: Any, agent: asyncpg.Connection, bound: str
) -> None:
    other = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), other, new_id())
        await conn.execute("UPDATE orders SET total = 7 WHERE id = 3")
    async with agent.transaction():  # bound: its own session, which has not changed row 3
        await agent.execute(BIND, new_id(), new_id(), bound)
        await agent.execute("SELECT set_config('app.session_id', $1, true)", str(other))
        assert await fetch(agent, "SELECT total FROM orders WHERE id = 3") == [(300,)]
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with agent.transaction():  # unbound: production, read-only
            await agent.execute("SELECT set_config('app.session_id', $1, true)", str(other))
            assert await fetch(agent, "SELECT total FROM orders WHERE id = 3") == [(300,)]
            await agent.execute("INSERT INTO orders VALUES (98, 1)")
    assert sqlstate(caught.value) == "42501"
    assert await changes_count(conn, "orders", other) == 1


async def test_binding_needs_a_valid_key(conn: Any, agent: asyncpg.Connection, bound: str) -> None:
    for key in ("", "guess", bound + "x", None):
        with pytest.raises(asyncpg.PostgresError) as caught:
            async with agent.transaction():
                await agent.execute(BIND, new_id(), new_id(), key)
        assert sqlstate(caught.value) == "28000"
    assert await revoke_binding_key(ex(conn), "app")
    assert not await revoke_binding_key(ex(conn), "app")
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with agent.transaction():
            await agent.execute(BIND, new_id(), new_id(), bound)
    assert sqlstate(caught.value) == "28000"


async def test_binding_keys_are_labelled_and_stored_as_digests(conn: Any, bound: str) -> None:
    with pytest.raises(BindingKeyExistsError):
        await create_binding_key(ex(conn), label="app")
    stored = await fetch(conn, "SELECT label, encode(key_digest, 'hex') FROM agentcow.binding_keys")
    assert len(stored) == 1 and bound not in repr(stored)


async def test_a_transaction_is_bound_once_and_the_binding_ends_with_it(
    conn: Any, agent: asyncpg.Connection, bound: str
) -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with agent.transaction():
            await agent.execute(BIND, new_id(), new_id(), bound)
            await agent.execute(BIND, new_id(), new_id(), bound)
    assert sqlstate(caught.value) == "55000"
    before = await base_rows(conn)
    # COMMIT in the agent's SQL ends the bound transaction: the next one is not bound
    await agent.execute("BEGIN")
    await agent.execute(BIND, new_id(), new_id(), bound)
    with pytest.raises(asyncpg.PostgresError) as caught:
        await agent.execute("COMMIT; UPDATE orders SET total = 0 WHERE id = 15")
    assert sqlstate(caught.value) == "42501"
    with pytest.raises(asyncpg.PostgresError) as caught:
        await agent.execute("COMMIT AND CHAIN")  # no transaction block: nothing to chain
        await agent.execute("UPDATE orders SET total = 0 WHERE id = 15")
    assert sqlstate(caught.value) in {"42501", "25P01"}
    assert await base_rows(conn) == before


async def test_ids_and_keys_never_appear_in_statement_texts(
    conn: Any, bound: str, database: TestDatabase
) -> None:
    """Another backend of the agent's role reads pg_stat_activity while the session's
    transaction is open, and the session's own backend reads its prepared statements."""
    spy = await connect_as(database, AGENT)
    try:
        async with asyncpg.create_pool(agent_dsn(database), min_size=1, max_size=1) as pool:
            cow = ac.CowSession(pool, binding_key=bound, guard=None)  # it reads the catalogs
            async with cow.operation() as operation:
                backend = (await operation.execute("SELECT pg_backend_pid()")).rows[0][0]
                prepared = await operation.query("SELECT statement FROM pg_prepared_statements")
                shown = await fetch(
                    spy, "SELECT query FROM pg_stat_activity WHERE pid = $1", backend
                )
                texts = repr(prepared) + repr(shown)
                assert shown and prepared
                for secret in (cow.session_id, operation.operation_id, bound):
                    assert str(secret) not in texts
    finally:
        await spy.close()


async def test_a_cow_session_resets_the_connection_before_it_binds(
    conn: Any, bound: str, database: TestDatabase
) -> None:
    """State another user of the pool left (a temp view shadowing the table, a session
    setting) is gone before the agent's statement runs."""
    async with asyncpg.create_pool(agent_dsn(database), min_size=1, max_size=1) as pool:
        async with pool.acquire() as raw:
            await raw.execute("CREATE TEMP VIEW orders AS SELECT 1 AS id, -1 AS total")
            await raw.execute("SET app.visible_operations = '{}'")
        cow = ac.CowSession(pool, binding_key=bound)
        assert await cow.query("SELECT total FROM orders WHERE id = 1") == [{"total": 100}]
        await cow.execute("UPDATE orders SET total = 5 WHERE id = 1")
    assert (1, 5) in await session_rows(conn, cow.session_id)


async def test_settings_bind_other_roles_and_agents_again_once_removed(
    conn: Any, agent: asyncpg.Connection, bound: str
) -> None:
    executor = ex(conn)
    assert await agent_roles(executor) == [AGENT]
    owner_session = new_id()
    async with conn.transaction():  # the owner is no agent: its settings still bind
        await ac.apply_cow_variables(executor, owner_session, new_id())
        await conn.execute("UPDATE orders SET total = 1 WHERE id = 1")
    assert await changes_count(conn, "orders", owner_session) == 1
    await remove_agent_role(executor, AGENT)
    assert await agent_roles(executor) == []
    agent_session = new_id()
    async with agent.transaction():
        await ac.apply_cow_variables(ex(agent), agent_session, new_id())
        await agent.execute("UPDATE orders SET total = 2 WHERE id = 2")
    assert await changes_count(conn, "orders", agent_session) == 1
    with pytest.raises(UnknownRoleError):
        await add_agent_role(executor, "no such role")


async def test_members_of_an_agent_role_are_agents(
    conn: Any, bound: str, database: TestDatabase, _admin_conn: Any
) -> None:
    """Per-run login roles in an agent group; SET ROLE to a role outside it does not help
    (the login role still is one)."""
    await create_login_role(database, "bound_agent_run")
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await su.execute(f'GRANT "{AGENT}" TO bound_agent_run')
        await su.execute(
            "DO $$ BEGIN CREATE ROLE bound_other; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        await su.execute("GRANT bound_other TO bound_agent_run")
        await su.execute("GRANT SELECT, UPDATE ON orders TO bound_other")
    finally:
        await su.close()
    run = await connect_as(database, "bound_agent_run")
    try:
        before = await base_rows(conn)
        for role in (None, "bound_other"):
            with pytest.raises(asyncpg.PostgresError) as caught:
                async with run.transaction():
                    if role:
                        await run.execute(f"SET LOCAL ROLE {role}")
                    await ac.apply_cow_variables(ex(run), new_id(), new_id())
                    await run.execute("UPDATE orders SET total = 0 WHERE id = 4")
            assert sqlstate(caught.value) == "42501"
        assert await base_rows(conn) == before
    finally:
        await run.close()


async def test_concurrent_bound_transactions_of_one_connection_pool_stay_apart(
    conn: Any, bound: str, database: TestDatabase
) -> None:
    async with asyncpg.create_pool(agent_dsn(database), min_size=2, max_size=2) as pool:
        sessions = [ac.CowSession(pool, binding_key=bound) for _ in range(4)]

        async def write(index: int, cow: ac.CowSession) -> None:
            for step in range(5):
                await cow.execute(
                    f"UPDATE orders SET total = {index * 10 + step} WHERE id = {index + 1}"
                )

        await asyncio.gather(*(write(i, cow) for i, cow in enumerate(sessions)))
    for index, cow in enumerate(sessions):
        rows = dict(await session_rows(conn, cow.session_id))
        assert rows[index + 1] == index * 10 + 4
        assert await changes_count(conn, "orders", cow.session_id) == 5


async def test_bindings_of_ended_transactions_are_cleared(
    conn: Any, bound: str, database: TestDatabase
) -> None:
    """A connection's next bind removes its earlier bindings; gc_sessions removes those of
    connections that are gone."""
    count = "SELECT count(*) FROM agentcow.bindings"
    first = await connect_as(database, AGENT)
    try:
        for _ in range(3):
            async with first.transaction():
                await first.execute(BIND, new_id(), new_id(), bound)
        assert await conn.fetchval(count) == 1
        pid = first.get_server_pid()
    finally:
        await first.close()
    for _ in range(100):  # the backend exits after the client closes
        if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            break
        await asyncio.sleep(0.05)
    await ac.gc_sessions(ex(conn), older_than=timedelta(days=1))
    assert await conn.fetchval(count) == 0
