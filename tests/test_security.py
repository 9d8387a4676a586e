"""What an agent (or an attacker feeding it input) cannot do."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_table,
    changes_count,
    changes_table,
    connect_as,
    cow_view,
    create_login_role,
    ex,
    fetch,
    grant_agent,
    kit_schema,
    make_cow,
    new_id,
    registered,
    relkind,
    session,
)

T = (
    "CREATE TABLE t (id int PRIMARY KEY, v text);"
    "INSERT INTO t VALUES (1, 'base-one'), (2, 'base-two');"
    "CREATE TABLE victim (id int PRIMARY KEY); INSERT INTO victim VALUES (1)"
)

T_BASE, T_CHANGES, T_VIEW = base_table("t"), changes_table("t"), cow_view("t")

PAYLOADS = [
    "00000000-0000-0000-0000-000000000000'; DROP TABLE victim; --",
    "'; DROP TABLE victim; --",
    "x' OR '1'='1",
    "00000000-0000-0000-0000-000000000000; SELECT pg_sleep(10)",
    "$$; DROP TABLE victim; $$",
    "{00000000-0000-0000-0000-000000000000}'::uuid[]; DROP TABLE victim; --",
    "\\x00",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n; DROP TABLE victim",
]


class RecordingExecutor:
    """Passes statements to asyncpg and remembers them."""

    def __init__(self, conn: Any) -> None:
        self.inner = ex(conn)
        self.statements: list[str] = []

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return await self.inner.execute(sql)


def _calls(rec: RecordingExecutor, bad: str) -> list[Any]:
    good = new_id()
    return [
        lambda: ac.apply_cow_variables(rec, bad),
        lambda: ac.apply_cow_variables(rec, good, bad),
        lambda: ac.apply_cow_variables(rec, good, good, [good, bad]),
        lambda: ac.set_visible_operations(rec, [bad]),
        lambda: ac.commit_cow_session(rec, "t", bad),
        lambda: ac.discard_cow_session(rec, "t", bad),
        lambda: ac.commit_cow_operations(rec, "t", bad, [good]),
        lambda: ac.commit_cow_operations(rec, "t", good, [good, bad]),
        lambda: ac.discard_cow_operations(rec, "t", good, [bad]),
        lambda: ac.get_dirty_tables(rec, bad),
        lambda: ac.commit_cow_session_schema(rec, bad),
        lambda: ac.discard_cow_session_schema(rec, bad),
        lambda: ac.get_session_operations(rec, bad),
        lambda: ac.get_operation_dependencies(rec, bad),
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_injection_in_ids_refused_before_any_sql(conn: Any, payload: str) -> None:
    await make_cow(conn, T, "t")
    rec = RecordingExecutor(conn)
    async with conn.transaction():
        for call in _calls(rec, payload):
            with pytest.raises(ac.InvalidIdError):
                await call()
            assert rec.statements == []
        with pytest.raises(ac.InvalidIdError):
            ac.build_cow_variable_statements(payload)
        with pytest.raises(ac.InvalidIdError):
            ac.build_cow_variable_statements(new_id(), payload)
    assert await fetch(conn, "SELECT * FROM victim") == [(1,)]
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [
        (1, "base-one"),
        (2, "base-two"),
    ]


def test_variable_statements_quote_only_uuids() -> None:
    sid, op = uuid.UUID(int=1), uuid.UUID(int=2)
    assert ac.build_cow_variable_statements(str(sid).upper(), op, [op, sid]) == [
        f"SET LOCAL app.session_id = '{sid}'",
        f"SET LOCAL app.operation_id = '{op}'",
        f"SET LOCAL app.visible_operations = '{{{op},{sid}}}'",
    ]


async def test_hostile_table_and_schema_names_are_only_names(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    for name in (
        "t; DROP TABLE victim; --",
        't" ; DROP TABLE victim; --',
        "t' OR '1'='1",
        "victim'); DROP TABLE victim; --",
    ):
        with pytest.raises(ac.TableNotFoundError):
            await ac.enable_cow(executor, name, layout=LAYOUT)
        with pytest.raises(ac.TableNotFoundError):
            await ac.enable_cow(executor, "t", schema=name, layout=LAYOUT)
        with pytest.raises(ac.TableNotFoundError):
            await ac.commit_cow_session(executor, name, new_id())
        with pytest.raises(ac.TableNotFoundError):
            await ac.disable_cow(executor, name)
        assert await ac.get_dirty_tables(executor, new_id(), schema=name) == []
    await conn.execute(f'CREATE TABLE "{"x" * 60}" (id int PRIMARY KEY)')
    with pytest.raises(ac.InvalidIdentifierError):
        await ac.enable_cow(executor, "x" * 60, layout=LAYOUT)
    assert await relkind(conn, "x" * 60) == "r"
    assert await relkind(conn, "victim") == "r"
    assert await registered(conn) == ["t"]


async def test_catalog_text_with_quotes_and_dollars(conn: Any) -> None:
    """Defaults and CHECK expressions are copied from the catalog into generated code."""
    executor = await make_cow(
        conn,
        "CREATE TABLE victim (id int PRIMARY KEY); INSERT INTO victim VALUES (1);"
        "CREATE TABLE t (id int PRIMARY KEY,"
        " v text DEFAULT '$$; DROP TABLE victim; $$' CHECK (v <> '$cow$'),"
        " w text DEFAULT E'\\'; DROP TABLE victim; --' CHECK (w NOT LIKE '%$x$%'))",
        "t",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t (id) VALUES (1)")
        assert await fetch(conn, "SELECT v, w FROM t") == [
            ("$$; DROP TABLE victim; $$", "'; DROP TABLE victim; --")
        ]
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await conn.execute("INSERT INTO t (id, v) VALUES (2, '$cow$')")
    await ac.commit_cow_session(executor, "t", sid)
    await ac.disable_cow(executor, "t")
    assert await fetch(conn, "SELECT * FROM victim") == [(1,)]
    assert await fetch(conn, "SELECT id, v FROM t") == [(1, "$$; DROP TABLE victim; $$")]


async def _agent(conn: Any, database: TestDatabase) -> Any:
    await create_login_role(database, "cow_agent")
    await conn.execute(T)
    await ac.deploy_cow_functions(ex(conn))
    await ac.enable_cow(ex(conn), "t", layout=LAYOUT)
    await grant_agent(conn, "cow_agent", ["t"])
    return await connect_as(database, "cow_agent")


async def test_agent_cannot_touch_base_or_changes(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    try:
        sid = new_id()
        async with session(agent, sid):
            await agent.execute("INSERT INTO t VALUES (3, 'agent')")
            await agent.execute("UPDATE t SET v = 'agent-upd' WHERE id = 1")
            await agent.execute("DELETE FROM t WHERE id = 2")
            assert await fetch(agent, "SELECT id, v FROM t ORDER BY id") == [
                (1, "agent-upd"),
                (3, "agent"),
            ]
        forbidden = [
            f"SELECT * FROM {T_BASE}",
            f"SELECT * FROM {T_CHANGES}",
            f"SELECT count(*) FROM {T_CHANGES}",
            f"INSERT INTO {T_BASE} VALUES (9, 'x')",
            f"UPDATE {T_BASE} SET v = 'x'",
            f"DELETE FROM {T_BASE}",
            f"TRUNCATE {T_BASE}",
            f"INSERT INTO {T_CHANGES} (session_id, operation_id, _cow_kind, id, v) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), 'I', 9, 'x')",
            f"UPDATE {T_CHANGES} SET v = 'x'",
            f"DELETE FROM {T_CHANGES}",
            f"TRUNCATE {T_CHANGES}",
            "TRUNCATE t",
            f"TRUNCATE {T_VIEW}",
            f"ALTER TABLE {T_BASE} ADD COLUMN z int",
            f"DROP VIEW {T_VIEW}",
            "SELECT agentcow.unregister_table('public', 't')",
            "DELETE FROM agentcow.cow_tables",
            "UPDATE agentcow.kit SET version = '9.9.9'",
            f"SELECT {kit_schema()}.t_cow_write()",
        ]
        if OVERLAY:  # without a session, t is production's table, closed to agents
            forbidden += ["SELECT * FROM t", "UPDATE t SET v = 'x'", "DROP TABLE t"]
        for sql in forbidden:
            with pytest.raises(asyncpg.PostgresError) as info:
                await agent.execute(sql)
            assert info.value.sqlstate in ("42501", "42809", "0A000"), (sql, info.value.sqlstate)
        if OVERLAY:  # and the overlay's view takes no write without a session
            with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
                await agent.execute(f"UPDATE {T_VIEW} SET v = 'x'")
        # Another session's changes are invisible to the agent's own session.
        other = new_id()
        async with session(agent, other):
            assert await fetch(agent, "SELECT id, v FROM t ORDER BY id") == [
                (1, "base-one"),
                (2, "base-two"),
            ]
    finally:
        await agent.close()
    assert await changes_count(conn, "t", sid) == 3  # I, U, D (the owner sees them)
    assert await fetch(conn, f"SELECT id, v FROM {T_BASE} ORDER BY id") == [
        (1, "base-one"),
        (2, "base-two"),
    ]
    assert await registered(conn) == ["t"]


NO_INDEX_SCANS = (
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;"
    "SET LOCAL enable_indexonlyscan = off"
)
LEAK = """
CREATE FUNCTION pg_temp.leak(text) RETURNS boolean
LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
    RAISE NOTICE 'leak:%', $1;
    RETURN true;
END $$
"""


async def test_leaky_function_cannot_see_other_sessions(conn: Any, database: TestDatabase) -> None:
    agent = await _agent(conn, database)
    try:
        secret_session = new_id()
        async with session(conn, secret_session):
            await conn.execute("INSERT INTO t VALUES (10, 'secret-insert')")
            await conn.execute("UPDATE t SET v = 'secret-update' WHERE id = 1")
            await conn.execute("DELETE FROM t WHERE id = 2")
        await agent.execute(LEAK)
        notices: list[str] = []
        agent.add_log_listener(lambda _conn, message: notices.append(message.message))
        mine = new_id()
        async with session(agent, mine):
            await agent.execute("INSERT INTO t VALUES (20, 'mine')")
        queries = [
            "SELECT * FROM {t} WHERE pg_temp.leak(v)",
            "SELECT * FROM {t} WHERE pg_temp.leak(v) AND id > 0",
            "SELECT * FROM {t} WHERE pg_temp.leak(v) AND id = 10",
            "SELECT * FROM {t} WHERE pg_temp.leak(v::text || id::text) AND v LIKE 'secret%'",
            "SELECT count(*) FROM {t} WHERE pg_temp.leak(v)",
            "UPDATE {t} SET v = v WHERE pg_temp.leak(v) AND id = 20",
            "DELETE FROM {t} WHERE NOT pg_temp.leak(v)",
        ]
        for sql in queries:
            for plan in ("SELECT 1", NO_INDEX_SCANS):  # without indexes, filters see every row
                async with session(agent, mine):
                    await agent.execute(plan)
                    await agent.execute(sql.format(t="t"))
                try:  # without a session, through the view
                    async with agent.transaction():
                        await agent.execute(plan)
                        await agent.execute(sql.format(t=T_VIEW))
                except asyncpg.ObjectNotInPrerequisiteStateError:
                    assert OVERLAY and not sql.startswith("SELECT")  # writes need a session
        async with session(agent, mine):
            rows = await fetch(agent, "SELECT id, v FROM t ORDER BY id")
        assert rows == [(1, "base-one"), (2, "base-two"), (20, "mine")]
        await asyncio.sleep(0.05)  # notices are delivered through the event loop
    finally:
        await agent.close()
    leaked = [n for n in notices if "secret" in n]
    assert leaked == []
    # The listener works: the agent's own rows and the base went through the function.
    assert "leak:mine" in notices
    assert "leak:base-one" in notices


async def test_agent_cannot_move_the_statement_checks_mark(
    conn: Any, database: TestDatabase
) -> None:
    """The statement-level foreign-key check finds a statement's rows by the change sequence
    at its start. An agent that moves that mark from the WHERE clause of its own statement
    (evaluated after the statement started) must still get the foreign-key error."""
    await create_login_role(database, "mark_mover")
    await conn.execute(
        "CREATE TABLE parents (id int PRIMARY KEY);"
        "CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents);"
        "INSERT INTO parents VALUES (1);"
    )
    oid = await conn.fetchval("SELECT 'children'::regclass::oid")
    await ac.deploy_cow_functions(ex(conn))
    assert sorted(await ac.enable_cow_schema(ex(conn), layout=LAYOUT)) == ["children", "parents"]
    await grant_agent(conn, "mark_mover", ["parents", "children"], "SELECT, INSERT")
    agent = await connect_as(database, "mark_mover")
    try:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with session(agent, new_id()):
                await agent.execute(
                    "INSERT INTO children SELECT 1, 999 WHERE "
                    f"set_config('agentcow.mark_{oid}_1', '999999999999', true) IS NOT NULL "
                    "AND set_config('agentcow.mark_children_1', '999999999999', true) IS NOT NULL"
                )
        forbidden = [
            "SELECT agentcow.remember('mark_1_1', 1)",
            "SELECT agentcow.recall('mark_1_1')",
            "SELECT * FROM agentcow.backend_state",
            "DELETE FROM agentcow.backend_state",
            "SELECT agentcow.lock_session(gen_random_uuid(), false)",
            "SELECT agentcow.share_session(gen_random_uuid())",
        ]
        for sql in forbidden:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await agent.execute(sql)
    finally:
        await agent.close()


async def test_agent_cannot_forge_a_drawn_identity_value(conn: Any, database: TestDatabase) -> None:
    """A GENERATED ALWAYS column takes only the value its default drew for the row. The kit
    once remembered that value in a setting, which the agent could set to the value it wanted
    to insert; and the agent needed rights on the sequence, which a plain table does not."""
    await create_login_role(database, "identity_forger")
    await conn.execute(
        "CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "n int GENERATED BY DEFAULT AS IDENTITY, v text);"
    )
    oid = await conn.fetchval("SELECT 'tickets'::regclass::oid")
    await ac.deploy_cow_functions(ex(conn))
    await ac.enable_cow(ex(conn), "tickets", layout=LAYOUT)
    await grant_agent(conn, "identity_forger", ["tickets"], "SELECT, INSERT")
    agent = await connect_as(database, "identity_forger")
    try:
        sid = new_id()
        async with session(agent, sid):
            # The default works without any right on the sequences, as on a plain table.
            assert await fetch(agent, "INSERT INTO tickets (v) VALUES ('a') RETURNING id, n") == [
                (1, 1)
            ]
        for forged in (
            f"INSERT INTO tickets (id, v) SELECT 500, 'x' "
            f"WHERE set_config('agentcow.identity_{oid}', '500', true) IS NOT NULL",
            "INSERT INTO tickets (id, v) VALUES (1, 'again')",  # the value drawn, used up
            "INSERT INTO tickets (id, v) VALUES (2, 'next')",  # not drawn yet
        ):
            with pytest.raises(asyncpg.GeneratedAlwaysError):
                async with session(agent, sid):
                    await agent.execute(forged)
        # Calling the identity function itself only draws values, as the default would.
        async with session(agent, sid):
            drawn = await agent.fetchval(f"SELECT {kit_schema()}.tickets_cow_identity('id')")
            await agent.execute(f"INSERT INTO tickets (id, v) VALUES ({drawn}, 'drawn')")
        with pytest.raises(asyncpg.GeneratedAlwaysError):
            async with session(agent, sid):
                await agent.execute(f"INSERT INTO tickets (id, v) VALUES ({drawn}, 'twice')")
    finally:
        await agent.close()
    async with session(conn, sid):
        assert await fetch(conn, "SELECT id, v FROM tickets ORDER BY id") == [
            (1, "a"),
            (drawn, "drawn"),
        ]
