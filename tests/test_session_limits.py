"""Per-session limits (agentcow.limits): rows written, statement time, lock waits, idle time,
with a real agent login that cannot raise its own."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

import agentcow as ac
from agentcow.binding import add_agent_role, create_binding_key
from agentcow.limits import (
    SessionLimits,
    get_session_limits,
    set_default_limits,
    set_session_limits,
)
from tests.helpers import (
    ROLE_PASSWORD,
    base_table,
    changes_count,
    connect_as,
    cow_view,
    create_login_role,
    ex,
    fetch,
    grant_agent,
    make_cow,
    new_id,
    overlay_only,
    session,
)
from tests.postgres_server import TestDatabase, replace_dsn

DDL = """
CREATE TABLE parents (id int PRIMARY KEY, v text);
CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents ON DELETE CASCADE);
INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 10) g;
INSERT INTO children SELECT g, g FROM generate_series(1, 10) g;
"""
AGENT = "limited_agent"


async def _agent(conn: Any, database: TestDatabase) -> Any:
    await make_cow(conn, DDL, "parents", "children")
    await create_login_role(database, AGENT)
    await grant_agent(conn, AGENT, ["parents", "children"])
    return await connect_as(database, AGENT)


async def test_a_statement_past_max_rows_fails_and_leaves_nothing(
    conn: Any, database: TestDatabase
) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, max_rows=4)
    try:
        async with session(agent, sid):
            await agent.execute("INSERT INTO parents SELECT g FROM generate_series(11, 13) g")
        with pytest.raises(asyncpg.ProgramLimitExceededError) as info:
            async with session(agent, sid):
                await agent.execute("UPDATE parents SET v = 'x' WHERE id <= 3")
        assert "past its limit of 4" in str(info.value)
        assert info.value.sqlstate == "54000"
        # a cascade counts with its statement (a parent and its child: 2 versions, one too many)
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            async with session(agent, sid):
                await agent.execute("DELETE FROM parents WHERE id = 1")
        async with session(agent, sid):
            await agent.execute("UPDATE parents SET v = 'y' WHERE id = 2")
            # inside a transaction: the statement alone goes (its rows were written: they count)
            with pytest.raises(asyncpg.ProgramLimitExceededError):
                async with agent.transaction():
                    await agent.execute("UPDATE parents SET v = 'z' WHERE id IN (5, 6)")
            assert await agent.fetchval("SELECT v FROM parents WHERE id = 5") == "p5"
        assert await changes_count(conn, "parents", sid) == 4
        assert await changes_count(conn, "children", sid) == 0
        limits = await get_session_limits(ex(conn), sid)
        assert limits == SessionLimits(4, None, None, None, rows_written=6)
        # written without entering the session: no count to go by, refused
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
            async with agent.transaction():
                await agent.execute(f"SET LOCAL app.session_id = '{sid}'")
                await agent.execute(f"SET LOCAL app.operation_id = '{new_id()}'")
                await agent.execute(f"UPDATE {cow_view('parents')} SET v = 'raw' WHERE id = 7")
        # another session is not limited, and writes no usage
        other = new_id()
        async with session(agent, other):
            await agent.execute("UPDATE parents SET v = 'free'")
        assert await get_session_limits(ex(conn), other) == SessionLimits(None, None, None, None)
    finally:
        await agent.close()
    assert await fetch(conn, f"SELECT id, v FROM {base_table('parents')} WHERE id <= 3") == [
        (1, "p1"),
        (2, "p2"),
        (3, "p3"),
    ]


async def test_counted_across_statements_and_transactions(
    conn: Any, database: TestDatabase
) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, max_rows=25)
    try:
        for immediate in (False, True):  # the count cannot be made to skip a transaction
            async with session(agent, sid):
                if immediate:
                    await agent.execute("SET CONSTRAINTS ALL IMMEDIATE")
                for key in range(1, 6):
                    await agent.execute(f"UPDATE parents SET v = 'x' WHERE id = {key}")
                await agent.execute("UPDATE parents SET v = 'y' WHERE id IN (6, 7, 8, 9, 10)")
            assert (await get_session_limits(ex(conn), sid)).rows_written == 10 * (1 + immediate)
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            async with session(agent, sid):
                await agent.execute("SET CONSTRAINTS ALL IMMEDIATE")
                await agent.execute("UPDATE parents SET v = 'z' WHERE id <= 5")
                await agent.execute("UPDATE parents SET v = 'z' WHERE id > 4")
        assert (await get_session_limits(ex(conn), sid)).rows_written == 20
    finally:
        await agent.close()


async def test_role_defaults_and_session_limits(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    executor = ex(conn)
    await set_default_limits(executor, max_rows=100)
    await set_default_limits(executor, role=AGENT, max_rows=1, lock_timeout=timedelta(seconds=2))
    sid, wide = new_id(), new_id()
    await set_session_limits(executor, wide, max_rows=3)
    try:
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            async with session(agent, sid):
                await agent.execute("UPDATE parents SET v = 'x' WHERE id IN (1, 2)")
        async with session(agent, wide):
            await agent.execute("UPDATE parents SET v = 'x' WHERE id IN (1, 2)")
            assert await agent.fetchval("SHOW lock_timeout") == "2s"
        assert await agent.fetchval("SHOW lock_timeout") == "0"  # transaction-local
        async with session(conn, sid):  # the owner: everyone's default
            await conn.execute("UPDATE parents SET v = 'owner' WHERE id IN (1, 2)")
    finally:
        await agent.close()
    assert await get_session_limits(executor, sid, role=AGENT) == SessionLimits(
        1, None, timedelta(seconds=2), None, rows_written=2
    )
    assert (await get_session_limits(executor, sid)).max_rows == 100
    await set_default_limits(executor, role=AGENT)
    await set_default_limits(executor)
    assert await get_session_limits(executor, sid, role=AGENT) == SessionLimits(
        None, None, None, None, rows_written=2
    )


async def test_statement_and_lock_timeouts_cut_the_agent(
    conn: Any, database: TestDatabase, second_conn: Any
) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(
        ex(conn),
        sid,
        statement_timeout=timedelta(milliseconds=300),
        lock_timeout=timedelta(milliseconds=200),
    )
    try:
        with pytest.raises(asyncpg.QueryCanceledError):
            async with session(agent, sid):
                await agent.execute("SELECT pg_sleep(5)")
        async with second_conn.transaction():
            await second_conn.execute(
                f"LOCK TABLE {base_table('parents')} IN ACCESS EXCLUSIVE MODE"
            )
            started = asyncio.get_running_loop().time()
            with pytest.raises(asyncpg.LockNotAvailableError):
                async with session(agent, sid):
                    await agent.execute("UPDATE parents SET v = 'x' WHERE id = 1")
            assert asyncio.get_running_loop().time() - started < 2
        async with session(agent, sid):
            await agent.execute("UPDATE parents SET v = 'x' WHERE id = 1")
        # outside the session, the agent's own settings are its own
        assert await agent.fetchval("SHOW statement_timeout") == "0"
    finally:
        await agent.close()


async def test_idle_in_transaction_timeout(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, idle_timeout=timedelta(milliseconds=200))
    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            async with session(agent, sid):
                await agent.execute("UPDATE parents SET v = 'x' WHERE id = 1")
                await asyncio.sleep(1)  # the agent holds its transaction open
                await agent.execute("UPDATE parents SET v = 'y' WHERE id = 2")
    finally:
        await agent.close()
    assert await changes_count(conn, "parents", sid) == 0


async def test_agent_cannot_raise_its_own_limits(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, max_rows=1)
    try:
        for statement in (
            f"SELECT agentcow.set_limits('{sid}', NULL, 1000, NULL, NULL, NULL)",
            f"SELECT agentcow.set_limits(NULL, '{AGENT}', 1000, NULL, NULL, NULL)",
            "UPDATE agentcow.session_limits SET max_rows = 1000",
            "DELETE FROM agentcow.session_limits",
            "INSERT INTO agentcow.role_limits (role_name, max_rows) VALUES ('public', 9)",
            "UPDATE agentcow.session_usage SET rows_written = 0",
            "SELECT * FROM agentcow.session_usage",
            f"SELECT * FROM agentcow.limits_info('{sid}', NULL)",
            f"SELECT * FROM agentcow.limits_of('{sid}', 'x')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await agent.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await set_session_limits(ex(agent), sid, max_rows=100)
    finally:
        await agent.close()
    assert (await get_session_limits(ex(conn), sid)).max_rows == 1


def test_limits_refuse_bad_values() -> None:
    with pytest.raises(ValueError):
        asyncio.run(set_session_limits(ex(None), new_id(), max_rows=-1))
    with pytest.raises(ValueError):
        asyncio.run(set_session_limits(ex(None), new_id(), lock_timeout=timedelta(0)))


async def test_idle_timeout_ends_a_lock_taken_through_the_view(
    conn: Any, database: TestDatabase
) -> None:
    """LOCK TABLE on a view needs only UPDATE or DELETE on it, and locks what is under it
    (see README, Known limits): the session's limits bound how long it holds."""
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, idle_timeout=timedelta(milliseconds=300))
    try:
        transaction = agent.transaction()
        await transaction.start()
        await ac.apply_cow_variables(ex(agent), sid, new_id())
        await agent.execute("LOCK TABLE parents IN ACCESS EXCLUSIVE MODE")
        started = asyncio.get_running_loop().time()
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            assert await conn.fetchval(f"SELECT count(*) FROM {base_table('parents')}") == 10
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await agent.close()


async def test_limits_hold_for_a_bound_agent(conn: Any, database: TestDatabase) -> None:
    """A registered agent's transactions are bound by bind_session, which enters the session
    and applies its limits as apply_cow_variables does."""
    agent = await _agent(conn, database)
    await agent.close()
    executor = ex(conn)
    await add_agent_role(executor, AGENT)
    key = await create_binding_key(executor, label="app")
    await set_default_limits(
        executor, role=AGENT, max_rows=2, statement_timeout=timedelta(milliseconds=300)
    )
    password = ROLE_PASSWORD if urlsplit(database.owner_dsn).password is not None else None
    dsn = replace_dsn(database.owner_dsn, user=AGENT, password=password)
    async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
        # no SQL guard: what the limits hold against is the agent's own SQL
        cow = ac.CowSession(pool, binding_key=key, guard=None)
        await cow.execute("UPDATE parents SET v = 'x' WHERE id IN (1, 2)")
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            await cow.execute("UPDATE parents SET v = 'y' WHERE id = 3")
        with pytest.raises(asyncpg.QueryCanceledError):
            await cow.query("SELECT pg_sleep(3)")
    limits = await get_session_limits(executor, cow.session_id, role=AGENT)
    assert (limits.max_rows, limits.rows_written) == (2, 2)
    assert await changes_count(conn, "parents", cow.session_id) == 2


@overlay_only("refresh_cow rebuilds an overlay after a migration")
async def test_the_row_limit_survives_a_refresh(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    sid = new_id()
    await set_session_limits(ex(conn), sid, max_rows=1)
    await conn.execute("ALTER TABLE parents ADD COLUMN note text")
    assert await ac.refresh_cow(ex(conn)) == ["parents"]
    try:
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            async with session(agent, sid):
                await agent.execute("UPDATE parents SET v = 'x' WHERE id IN (1, 2)")
    finally:
        await agent.close()


async def _settings_reads(conn: Any) -> int:
    """Scans of agentcow.settings the server counted for this backend and not yet reported
    (the current transaction's, and maybe some before it: compare two readings in one
    transaction)."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)"
            " FROM pg_stat_xact_all_tables WHERE relid = 'agentcow.settings'::regclass"
        )
    )


async def test_statements_without_a_session_skip_the_row_limit(
    conn: Any, database: TestDatabase
) -> None:
    """Production's statements (through the view in the rename layout) run no query of the
    row limit, even with limits in use; a session's statement does."""
    await make_cow(conn, DDL, "parents", "children")
    await set_default_limits(ex(conn), max_rows=100)
    async with conn.transaction():
        before = await _settings_reads(conn)
        await conn.execute("UPDATE parents SET v = 'prod' WHERE id = 1")
        await conn.execute("INSERT INTO parents VALUES (50, 'prod')")
        assert await _settings_reads(conn) == before
    sid = new_id()
    async with session(conn, sid):
        before = await _settings_reads(conn)
        await conn.execute("UPDATE parents SET v = 'agent' WHERE id = 2")
        assert await _settings_reads(conn) > before
    assert await fetch(conn, f"SELECT v FROM {base_table('parents')} WHERE id IN (1, 2)") == [
        ("prod",),
        ("p2",),
    ]
