"""enable_cow / disable_cow / enable_cow_schema: what they build, refuse and give back.

Most tests run in the layout under test; tests of one layout's own behaviour (the rename
moving the table's name and grants to the view; the overlay leaving the table as it is) are
marked as such, each with its counterpart in the other layout.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_name,
    base_table,
    changes_count,
    changes_name,
    changes_table,
    connect_as,
    cow_view,
    create_login_role,
    deploy,
    fetch,
    keep_agent_off_tables,
    kit_schema,
    make_cow,
    new_id,
    outcome,
    overlay_only,
    registered,
    relkind,
    relkind_at,
    rename_only,
    session,
    table_state,
    view_name,
)

T = "CREATE TABLE t (id int PRIMARY KEY, v text, n int DEFAULT 7)"


async def test_enable_builds_view_base_and_changes(conn: Any) -> None:
    await make_cow(conn, T + "; INSERT INTO t VALUES (1, 'a', 1)", "t")
    assert await relkind_at(conn, view_name("t")) == "v"
    assert await relkind_at(conn, base_name("t")) == "r"
    assert await relkind_at(conn, changes_name("t")) == "r"
    assert await registered(conn) == ["t"]
    cols = await fetch(
        conn,
        f"SELECT attname::text FROM pg_attribute WHERE attrelid = '{changes_table('t')}'::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    assert [c for (c,) in cols] == [
        "session_id",
        "operation_id",
        "_cow_seq",
        "_cow_kind",
        "id",
        "v",
        "n",
        "_cow_old",
    ]
    view_cols = await fetch(
        conn,
        f"SELECT attname::text FROM pg_attribute WHERE attrelid = '{cow_view('t')}'::regclass "
        "AND attnum > 0 ORDER BY attnum",
    )
    assert [c for (c,) in view_cols] == ["id", "v", "n"]
    # The data stayed in the (renamed, or untouched) table and reads through the view.
    assert await fetch(conn, "SELECT * FROM t") == [(1, "a", 1)]
    assert await fetch(conn, f"SELECT * FROM {cow_view('t')}") == [(1, "a", 1)]
    assert await fetch(conn, f"SELECT * FROM {base_table('t')}") == [(1, "a", 1)]
    assert await conn.fetchval(
        "SELECT 'security_barrier=true' = ANY (reloptions) FROM pg_class "
        f"WHERE oid = '{cow_view('t')}'::regclass"
    )


@overlay_only("the rename layout renames the table (test_enable_builds_view_base_and_changes)")
async def test_overlay_leaves_the_table_as_it_is(conn: Any, database: TestDatabase) -> None:
    """The table keeps its name, oid, kind, columns, constraints, indexes, triggers, owner
    and grants; what enable makes goes to the overlay schema public_cow, made by the first
    table enabled, owned by the table's owner, usable by whoever may use public."""
    await create_login_role(database, "reader")
    executor = await make_cow(
        conn,
        T + "; CREATE INDEX t_v ON t (v); INSERT INTO t VALUES (1, 'a', 1);"
        "GRANT SELECT, INSERT ON t TO reader",
    )
    oid = await conn.fetchval("SELECT 'public.t'::regclass::oid")
    before = await table_state(conn, "t")
    await ac.enable_cow(executor, "t", layout="overlay")
    assert await conn.fetchval("SELECT 'public.t'::regclass::oid") == oid
    assert await table_state(conn, "t") == before
    assert await relkind(conn, "t") == "r"
    assert await relkind(conn, "t", "public_cow") == "v"
    assert await relkind(conn, "t_changes", "public_cow") == "r"
    assert await relkind(conn, "t_base") is None
    assert await relkind(conn, "t_changes") is None
    assert await fetch(
        conn,
        "SELECT pg_get_userbyid(nspowner)::text, "
        "has_schema_privilege('reader', oid, 'USAGE') FROM pg_namespace "
        "WHERE nspname = 'public_cow'",
    ) == [(database.owner, True)]
    assert await fetch(
        conn,
        "SELECT c.relname::text, pg_get_userbyid(c.relowner)::text FROM pg_class c "
        "WHERE c.relnamespace = 'public_cow'::regnamespace AND c.relkind IN ('r', 'v') "
        "ORDER BY 1",
    ) == [("t", database.owner), ("t_changes", database.owner)]
    # Functions go to the overlay schema too; public holds none.
    assert await fetch(
        conn, "SELECT count(*) > 0 FROM pg_proc WHERE pronamespace = 'public_cow'::regnamespace"
    ) == [(True,)]
    assert await fetch(
        conn, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
    ) == [(0,)]
    # Production reads and writes the table itself; a session reads and writes the view.
    await conn.execute("INSERT INTO t VALUES (2, 'b', 2)")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (3, 'c', 3)")
        assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
    assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    assert await changes_count(conn, "t", sid) == 1
    await ac.disable_cow(executor, "t", discard_changes=True)
    assert await table_state(conn, "t") == before
    assert await conn.fetchval("SELECT 'public.t'::regclass::oid") == oid
    assert await conn.fetchval("SELECT to_regnamespace('public_cow') IS NULL")
    assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]


async def test_enable_twice_is_a_noop(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    before = await fetch(
        conn,
        "SELECT relnamespace::regnamespace::text, relname::text, oid::bigint FROM pg_class "
        "WHERE relname LIKE 't%' ORDER BY 1, 2",
    )
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    after = await fetch(
        conn,
        "SELECT relnamespace::regnamespace::text, relname::text, oid::bigint FROM pg_class "
        "WHERE relname LIKE 't%' ORDER BY 1, 2",
    )
    assert after == before
    assert await registered(conn) == ["t"]
    assert await relkind(conn, "t_base_base") is None


async def test_unknown_table_raises_table_not_found(conn: Any) -> None:
    executor = await deploy(conn)
    with pytest.raises(ac.TableNotFoundError):
        await ac.enable_cow(executor, "nope", layout=LAYOUT)
    with pytest.raises(ac.TableNotFoundError):
        await ac.enable_cow(executor, "t", schema="no_such_schema", layout=LAYOUT)
    assert await registered(conn) == []


async def test_refused_table_is_left_untouched(conn: Any) -> None:
    executor = await make_cow(
        conn, "CREATE TABLE t (id int, _cow_v text); INSERT INTO t VALUES (1, 'a')"
    )
    before = await table_state(conn, "t")
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await table_state(conn, "t") == before
    assert await relkind(conn, "t_base") is None
    assert await relkind_at(conn, changes_name("t")) is None
    assert await conn.fetchval("SELECT to_regnamespace('public_cow') IS NULL")
    assert await registered(conn) == []
    assert await fetch(conn, "SELECT * FROM t") == [(1, "a")]


async def test_partitioned_parent_and_partition_are_refused(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE pt (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);"
        "CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10)",
    )
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "pt", layout=LAYOUT)
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "pt1", layout=LAYOUT)
    assert await relkind(conn, "pt") == "p"
    assert await relkind(conn, "pt1") == "r"
    assert await registered(conn) == []


async def test_view_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, "CREATE VIEW v AS SELECT 1 AS id")
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "v", layout=LAYOUT)
    assert await relkind(conn, "v") == "v"
    assert await registered(conn) == []


@pytest.mark.parametrize("column", ["session_id", "operation_id", "_cow_x", "_cow_seq"])
async def test_reserved_column_name_is_refused(conn: Any, column: str) -> None:
    executor = await make_cow(conn, f'CREATE TABLE t (id int PRIMARY KEY, "{column}" int)')
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await relkind(conn, "t") == "r"
    assert await registered(conn) == []


@rename_only("the overlay leaves the table where its dependents read it")
async def test_dependent_view_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE VIEW tv AS SELECT id, v FROM t")
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await relkind(conn, "t") == "r"
    assert await relkind(conn, "t_base") is None
    assert await registered(conn) == []


@overlay_only("the rename layout refuses them (test_dependent_view_is_refused)")
async def test_overlay_keeps_dependent_views_on_the_table(conn: Any) -> None:
    """A view (or materialized view) over the table keeps reading it, for production; in a
    session the view's overlay twin shows the session's rows (tests/test_overlay.py), the
    materialized view production's."""
    executor = await make_cow(
        conn,
        T + "; INSERT INTO t VALUES (1, 'a', 1); CREATE VIEW tv AS SELECT id, v FROM t;"
        "CREATE MATERIALIZED VIEW tm AS SELECT id FROM t",
    )
    await ac.enable_cow(executor, "t", layout="overlay")
    assert await registered(conn) == ["t"]
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (2, 'b', 2)")
        assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]
        assert await fetch(conn, "SELECT id, v FROM tv ORDER BY id") == [(1, "a"), (2, "b")]
    assert await fetch(conn, "SELECT id, v FROM tv") == [(1, "a")]
    await conn.execute("REFRESH MATERIALIZED VIEW tm")
    assert await fetch(conn, "SELECT id FROM tm") == [(1,)]
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, "SELECT id, v FROM tv ORDER BY id") == [(1, "a"), (2, "b")]


@rename_only("the overlay layout makes no base table")
async def test_base_name_taken_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE TABLE t_base (x int)")
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await relkind(conn, "t") == "r"
    assert await registered(conn) == []


async def test_changes_name_taken_is_refused(conn: Any) -> None:
    """A t_changes beside t: the rename layout would make one there; in the overlay layout
    it would stand for the change table in a session's unqualified SQL."""
    executor = await make_cow(conn, T + "; CREATE TABLE t_changes (x int)")
    before = await table_state(conn, "t")
    with pytest.raises(ac.UnsupportedTableError, match="t_changes"):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await table_state(conn, "t") == before
    assert await registered(conn) == []


@overlay_only("the rename layout makes no overlay schema")
async def test_overlay_schema_not_agentcows_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE SCHEMA public_cow")
    before = await table_state(conn, "t")
    with pytest.raises(ac.UnsupportedTableError, match="public_cow"):
        await ac.enable_cow(executor, "t", layout="overlay")
    assert await table_state(conn, "t") == before
    assert await registered(conn) == []
    assert await fetch(
        conn, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public_cow'::regnamespace"
    ) == [(0,)]


async def test_pk_cols_mismatch_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, T)
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", pk_cols=["v"], layout=LAYOUT)
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", pk_cols=["id", "v"], layout=LAYOUT)
    assert await relkind(conn, "t") == "r"
    assert await relkind_at(conn, changes_name("t")) is None
    await ac.enable_cow(executor, "t", pk_cols=["id"], layout=LAYOUT)
    assert await relkind_at(conn, view_name("t")) == "v"
    # commit checks pk_cols too
    with pytest.raises(ac.UnsupportedTableError):
        await ac.commit_cow_session(executor, "t", new_id(), pk_cols=["v"])


HOSTILE = 'Weird "Name"; DROP TABLE x;--'
HOSTILE_CHILD = 'kid "x"; DROP TABLE x;--'
HOSTILE_DDL = """
CREATE TABLE x (id int PRIMARY KEY);
CREATE TABLE "Weird ""Name""; DROP TABLE x;--" (
    id int PRIMARY KEY,
    "select" text,
    "Order" int DEFAULT 1 CHECK ("Order" >= 0),
    "a b" text UNIQUE
);
CREATE TABLE "kid ""x""; DROP TABLE x;--" (
    "Id" int PRIMARY KEY,
    "par ent" int,
    CONSTRAINT "fk""; DROP TABLE x;--" FOREIGN KEY ("par ent")
        REFERENCES "Weird ""Name""; DROP TABLE x;--" (id) ON DELETE CASCADE
);
INSERT INTO "Weird ""Name""; DROP TABLE x;--" VALUES (1, 'one', 1, 'A'), (2, 'two', 2, 'B');
INSERT INTO "kid ""x""; DROP TABLE x;--" VALUES (10, 1), (20, 2);
"""
Q = '"Weird ""Name""; DROP TABLE x;--"'
QK = '"kid ""x""; DROP TABLE x;--"'


async def test_hostile_identifiers_round_trip(conn: Any) -> None:
    executor = await make_cow(conn, HOSTILE_DDL, HOSTILE, HOSTILE_CHILD)
    assert await relkind_at(conn, view_name(HOSTILE)) == "v"
    assert await relkind_at(conn, base_name(HOSTILE)) == "r"
    assert await relkind_at(conn, changes_name(HOSTILE)) == "r"
    assert await relkind_at(conn, view_name(HOSTILE_CHILD)) == "v"
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(
            f"INSERT INTO {Q} (id, \"select\", \"a b\") VALUES (3, 'th\"r''ee', 'C')"
        )
        await conn.execute(f'UPDATE {Q} SET "Order" = "Order" + 10, "select" = NULL WHERE id = 2')
        await conn.execute(f"DELETE FROM {Q} WHERE id = 1")  # cascades to kid 10
        await conn.execute(f"INSERT INTO {QK} VALUES (30, 3)")
        dup = await outcome(conn, f"INSERT INTO {Q} (id, \"a b\") VALUES (4, 'C')")
        assert dup == ("error", "23505")
    async with session(conn, sid):
        seen = await fetch(conn, f'SELECT id, "select", "Order", "a b" FROM {Q} ORDER BY id')
        kids = await fetch(conn, f'SELECT "Id", "par ent" FROM {QK} ORDER BY 1')
    assert seen == [(2, None, 12, "B"), (3, "th\"r'ee", 1, "C")]
    assert kids == [(20, 2), (30, 3)]
    # Outside the session: base untouched.
    assert await fetch(conn, f"SELECT id FROM {Q} ORDER BY id") == [(1,), (2,)]
    assert await ac.commit_cow_session_schema(executor, sid) == [HOSTILE, HOSTILE_CHILD]
    assert await fetch(conn, f'SELECT id, "select", "Order", "a b" FROM {Q} ORDER BY id') == seen
    assert await fetch(conn, f'SELECT "Id", "par ent" FROM {QK} ORDER BY 1') == kids
    await ac.disable_cow(executor, HOSTILE_CHILD)
    await ac.disable_cow(executor, HOSTILE)
    assert await relkind(conn, HOSTILE) == "r"
    assert await relkind(conn, HOSTILE_CHILD) == "r"
    assert await relkind(conn, HOSTILE + "_base") is None
    assert await relkind_at(conn, changes_name(HOSTILE)) is None
    assert await fetch(conn, f'SELECT id, "select", "Order", "a b" FROM {Q} ORDER BY id') == seen
    assert await relkind(conn, "x") == "r"
    assert await registered(conn) == []


async def test_enable_cow_schema_returns_tables_and_is_atomic(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);"
        "CREATE TABLE c (id int, _cow_x int); CREATE TABLE d (id int PRIMARY KEY)",
    )
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow_schema(executor, layout=LAYOUT)
    assert await registered(conn) == []
    for name in "abcd":
        assert await relkind(conn, name) == "r"
    assert await ac.enable_cow_schema(executor, exclude={"c"}, layout=LAYOUT) == ["a", "b", "d"]
    assert await registered(conn) == ["a", "b", "d"]
    for name in "abd":
        assert await relkind_at(conn, view_name(name)) == "v"
    assert await relkind(conn, "c") == "r"
    assert await relkind_at(conn, changes_name("c")) is None
    await conn.execute("ALTER TABLE c RENAME COLUMN _cow_x TO x")
    assert await ac.enable_cow_schema(executor, layout=LAYOUT) == ["c"]
    assert await ac.enable_cow_schema(executor, layout=LAYOUT) == []
    assert await ac.disable_cow_schema(executor) == ["a", "b", "c", "d"]
    assert await registered(conn) == []
    for name in "abcd":
        assert await relkind(conn, name) == "r"
        assert await relkind_at(conn, changes_name(name)) is None


@rename_only("the overlay copies the grants (test_overlay_copies_grants_to_the_view)")
async def test_grants_move_to_view_and_base_is_closed(conn: Any, database: TestDatabase) -> None:
    await create_login_role(database, "reader")
    executor = await make_cow(
        conn,
        T + "; INSERT INTO t VALUES (1, 'a', 1); GRANT SELECT, INSERT ON t TO reader",
        "t",
    )
    reader = await connect_as(database, "reader")
    try:
        assert await fetch(reader, "SELECT id, v FROM t") == [(1, "a")]
        await reader.execute("INSERT INTO t (id, v) VALUES (2, 'b')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("UPDATE t SET v = 'z'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("DELETE FROM t")
        sid = new_id()
        async with session(reader, sid):
            await reader.execute("INSERT INTO t (id, v) VALUES (3, 'c')")
        async with session(reader, sid):
            assert await fetch(reader, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
        for sql in (
            "SELECT * FROM t_base",
            "SELECT * FROM t_changes",
            "INSERT INTO t_base (id) VALUES (9)",
            "INSERT INTO t_changes (session_id, operation_id, _cow_kind, id) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), 'I', 9)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(sql)
    finally:
        await reader.close()
    assert await fetch(conn, "SELECT id FROM t_base ORDER BY id") == [(1,), (2,)]
    privileges = await fetch(
        conn,
        "SELECT has_table_privilege('reader', 'public.t', 'SELECT'), "
        "has_table_privilege('reader', 'public.t', 'INSERT'), "
        "has_table_privilege('reader', 'public.t', 'UPDATE'), "
        "has_table_privilege('reader', 'public.t_base', 'SELECT'), "
        "has_table_privilege('reader', 'public.t_changes', 'SELECT')",
    )
    assert privileges == [(True, True, False, False, False)]
    await ac.discard_cow_session_schema(executor, sid)


@overlay_only("the rename layout moves the grants (test_grants_move_to_view_and_base_is_closed)")
async def test_overlay_copies_grants_to_the_view(conn: Any, database: TestDatabase) -> None:
    """The view takes a copy of the table's grants, which stay: production's roles keep
    their rights on the table. A deployment then takes the agents' roles off the table
    (keep_agent_off_tables): they reach the view alone, and only in a session."""
    await create_login_role(database, "reader")
    executor = await make_cow(
        conn, T + "; INSERT INTO t VALUES (1, 'a', 1); GRANT SELECT, INSERT ON t TO reader"
    )
    acl = await conn.fetchval("SELECT relacl::text FROM pg_class WHERE oid = 'public.t'::regclass")
    await ac.enable_cow(executor, "t", layout="overlay")
    assert (
        await conn.fetchval("SELECT relacl::text FROM pg_class WHERE oid = 'public.t'::regclass")
        == acl
    )
    privileges = (
        "SELECT has_table_privilege('reader', 'public_cow.t', 'SELECT'), "
        "has_table_privilege('reader', 'public_cow.t', 'INSERT'), "
        "has_table_privilege('reader', 'public_cow.t', 'UPDATE'), "
        "has_table_privilege('reader', 'public.t', 'SELECT'), "
        "has_table_privilege('reader', 'public.t', 'INSERT'), "
        "has_table_privilege('reader', 'public_cow.t_changes', 'SELECT')"
    )
    assert await fetch(conn, privileges) == [(True, True, False, True, True, False)]
    reader = await connect_as(database, "reader")
    try:
        await reader.execute("INSERT INTO t (id, v) VALUES (2, 'b')")  # the table: production
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
            await reader.execute("INSERT INTO public_cow.t (id, v) VALUES (9, 'no session')")
        sid = new_id()
        async with session(reader, sid):
            await reader.execute("INSERT INTO t (id, v) VALUES (3, 'c')")
            assert await fetch(reader, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
        await keep_agent_off_tables(conn, "reader", ["t"])
        assert await fetch(conn, privileges) == [(True, True, False, False, False, False)]
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("SELECT * FROM t")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("SELECT * FROM public_cow.t_changes")
        async with session(reader, sid):
            await reader.execute("INSERT INTO t (id, v) VALUES (4, 'd')")
            assert await fetch(reader, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,), (4,)]
    finally:
        await reader.close()
    assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    await ac.discard_cow_session_schema(executor, sid)


DISABLE_DDL = """
CREATE TABLE p (id int PRIMARY KEY);
INSERT INTO p VALUES (1), (2);
CREATE TABLE t (
    id int PRIMARY KEY,
    v text NOT NULL DEFAULT 'x',
    n int CHECK (n >= 0),
    u text UNIQUE,
    p_id int REFERENCES p ON DELETE CASCADE
);
CREATE INDEX t_v_idx ON t (v, n DESC);
CREATE INDEX t_lower_u ON t (lower(u)) WHERE n > 0;
CREATE TABLE child (id int PRIMARY KEY, t_id int REFERENCES t ON UPDATE CASCADE);
INSERT INTO t VALUES (1, 'a', 1, 'u1', 1), (2, 'b', 2, 'u2', 2);
INSERT INTO child VALUES (100, 1);
GRANT SELECT, INSERT ON t TO reader;
GRANT UPDATE (v) ON t TO reader;
GRANT DELETE ON t TO reader WITH GRANT OPTION;
"""


async def test_disable_gives_back_table_with_everything(conn: Any, database: TestDatabase) -> None:
    await create_login_role(database, "reader")
    executor = await deploy(conn)
    await conn.execute(DISABLE_DDL)
    before = await table_state(conn, "t")
    child_before = await table_state(conn, "child")
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    await ac.enable_cow(executor, "p", layout=LAYOUT)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (3, 'c', 3, 'u3', 1)")
        await conn.execute("UPDATE t SET n = 10 WHERE id = 2")
    await ac.commit_cow_session(executor, "t", sid)
    data = await fetch(conn, "SELECT * FROM t ORDER BY id")
    assert data == [(1, "a", 1, "u1", 1), (2, "b", 10, "u2", 2), (3, "c", 3, "u3", 1)]
    await ac.disable_cow(executor, "t")
    await ac.disable_cow(executor, "p")
    assert await table_state(conn, "t") == before
    assert await table_state(conn, "child") == child_before
    assert await fetch(conn, "SELECT * FROM t ORDER BY id") == data
    assert await relkind_at(conn, changes_name("t")) is None
    assert await relkind(conn, "t_base") is None
    leftover = await fetch(
        conn,
        "SELECT proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
        f"OR pronamespace = to_regnamespace('{kit_schema()}')",
    )
    assert leftover == []
    if OVERLAY:  # the overlay schema goes with its last table
        assert await conn.fetchval("SELECT to_regnamespace('public_cow') IS NULL")
    # Constraints are live again on the plain table.
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO t VALUES (4, 'd', 4, 'u1', 1)")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO t VALUES (4, 'd', 4, 'u4', 99)")
    await conn.execute("UPDATE t SET id = 11 WHERE id = 1")
    assert await fetch(conn, "SELECT id, t_id FROM child") == [(100, 11)]


async def test_disable_refused_while_session_has_changes(conn: Any) -> None:
    executor = await make_cow(conn, T + "; INSERT INTO t VALUES (1, 'a', 1)", "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'changed'")
    with pytest.raises(ac.PendingChangesError):
        await ac.disable_cow(executor, "t")
    with pytest.raises(ac.PendingChangesError):
        await ac.disable_cow_schema(executor)
    assert await relkind_at(conn, view_name("t")) == "v"
    assert await changes_count(conn) == 1
    await ac.disable_cow(executor, "t", discard_changes=True)
    assert await relkind(conn, "t") == "r"
    assert await relkind_at(conn, changes_name("t")) is None
    assert await fetch(conn, "SELECT id, v FROM t") == [(1, "a")]


async def test_allow_deferred_fks_and_disable_reverts(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE p (id int PRIMARY KEY);"
        "CREATE TABLE c (id int PRIMARY KEY, p_id int CONSTRAINT c_p_fk REFERENCES p);"
        "CREATE TABLE d (id int PRIMARY KEY, p_id int CONSTRAINT d_p_fk REFERENCES p "
        "DEFERRABLE INITIALLY DEFERRED)",
    )
    sql = (
        "SELECT condeferrable, condeferred FROM pg_constraint WHERE conname = $1 AND contype = 'f'"
    )
    await ac.enable_cow(executor, "p", layout=LAYOUT)
    await ac.enable_cow(executor, "c", allow_deferred_fks=True, layout=LAYOUT)
    await ac.enable_cow(executor, "d", allow_deferred_fks=True, layout=LAYOUT)
    assert await fetch(conn, sql, "c_p_fk") == [(True, False)]
    assert await fetch(conn, sql, "d_p_fk") == [(True, True)]
    await ac.disable_cow(executor, "c")
    await ac.disable_cow(executor, "d")
    assert await fetch(conn, sql, "c_p_fk") == [(False, False)]
    # Already deferrable before enable: left as it was.
    assert await fetch(conn, sql, "d_p_fk") == [(True, True)]
    # Without allow_deferred_fks the key is not touched.
    await ac.enable_cow(executor, "c", layout=LAYOUT)
    assert await fetch(conn, sql, "c_p_fk") == [(False, False)]
    await ac.disable_cow(executor, "c")
    # revert_deferred_fks=False keeps them deferrable.
    await ac.enable_cow(executor, "c", allow_deferred_fks=True, layout=LAYOUT)
    await ac.disable_cow(executor, "c", revert_deferred_fks=False)
    assert await fetch(conn, sql, "c_p_fk") == [(True, False)]


async def test_disable_unknown_table(conn: Any) -> None:
    executor = await deploy(conn)
    with pytest.raises(ac.TableNotFoundError):
        await ac.disable_cow(executor, "nope")
    await conn.execute(T)
    await ac.disable_cow(executor, "t")  # not enabled: a no-op
    assert await relkind(conn, "t") == "r"


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t ENABLE ROW LEVEL SECURITY",
        "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE t2 (x int) INHERITS (t)",
        "CREATE TABLE t0 (id int PRIMARY KEY); CREATE TABLE t (x int) INHERITS (t0);"
        "ALTER TABLE t ADD PRIMARY KEY (id)",
        "CREATE TABLE t (id int PRIMARY KEY, r int4range, EXCLUDE USING gist (r WITH &&))",
        pytest.param(
            "CREATE TABLE t (id int PRIMARY KEY); CREATE MATERIALIZED VIEW mv AS SELECT * FROM t",
            marks=rename_only("see test_overlay_keeps_dependent_views_on_the_table"),
        ),
    ],
)
async def test_other_unsupported_tables_are_refused(conn: Any, ddl: str) -> None:
    executor = await make_cow(conn, ddl)
    before = await table_state(conn, "t")
    with pytest.raises(ac.UnsupportedTableError):
        await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await table_state(conn, "t") == before
    assert await registered(conn) == []


async def test_dropped_column_and_other_schema(conn: Any) -> None:
    schema = 'My "Schema"'
    executor = await make_cow(
        conn,
        'CREATE SCHEMA "My ""Schema""";'
        'CREATE TABLE "My ""Schema""".t (id int PRIMARY KEY, gone int, v text);'
        'ALTER TABLE "My ""Schema""".t DROP COLUMN gone;'
        'INSERT INTO "My ""Schema""".t VALUES (1, \'a\');'
        "CREATE TABLE public.t (id int PRIMARY KEY, v text)",
    )
    await ac.enable_cow(executor, "t", schema=schema, layout=LAYOUT)
    assert await relkind_at(conn, view_name("t", schema)) == "v"
    assert await relkind(conn, "t") == "r"  # same name in public: untouched
    assert (await ac.get_cow_status(executor, schema))["tables_with_cow"] == ["t"]
    assert (await ac.get_cow_status(executor))["tables_with_cow"] == []
    sid = new_id()
    view = cow_view("t", schema)  # what a session names (the schema is not on its path)
    async with session(conn, sid):
        await conn.execute(f"INSERT INTO {view} VALUES (2, 'b')")
        await conn.execute(f"UPDATE {view} SET v = 'A' WHERE id = 1")
    assert await ac.get_dirty_tables(executor, sid, schema=schema) == ["t"]
    assert await ac.get_dirty_tables(executor, sid) == []
    assert await ac.commit_cow_session_schema(executor, sid, schema=schema) == ["t"]
    rows = [(1, "A"), (2, "b")]
    assert await fetch(conn, 'SELECT * FROM "My ""Schema""".t ORDER BY id') == rows
    await ac.disable_cow(executor, "t", schema=schema)
    assert await relkind(conn, "t", schema) == "r"
    assert await relkind_at(conn, changes_name("t", schema)) is None
    assert await fetch(conn, 'SELECT * FROM "My ""Schema""".t ORDER BY id') == rows


async def test_is_cow_enabled(conn: Any) -> None:
    executor = await deploy(conn)
    active = ac.CowPostgresConfig(session_id=new_id())
    assert active.is_active
    assert not ac.CowPostgresConfig().is_active
    assert await ac.is_cow_enabled(executor, active) is False  # no COW table yet
    await conn.execute(T)
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    assert await ac.is_cow_enabled(executor, active) is True
    assert await ac.is_cow_enabled(executor, ac.CowPostgresConfig()) is False
