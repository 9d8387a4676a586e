"""Upgrading a database from kit 0.1.0: the kit by deploy_cow_functions, then the tables
enabled under it by upgrade_cow_tables, with sessions keeping their changes."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from agentcow.deploy import migration_plan
from agentcow.enable import enable_script, prepare_enable
from agentcow.script import run_atomically
from agentcow.templates import render
from agentcow.versions import KIT_VERSION, OBJECTS_VERSION
from tests.conftest import TestDatabase
from tests.helpers import connect_as, create_login_role, ex, fetch, new_id, rename_only, session

#: Kits before 0.3.0 had the rename layout alone: their tables are upgraded in it.
pytestmark = rename_only("kits before 0.3.0 had no other layout")

OLD_CHANGES = "SELECT _cow_seq, _cow_kind::text, id, v, _cow_old::text FROM t_changes ORDER BY 1"


@asynccontextmanager
async def old_session(conn: Any, session_id: uuid.UUID) -> AsyncIterator[None]:
    """A transaction in a session entered as before kit 0.3.0 (its SET LOCAL statements,
    which every driver can send): apply_cow_variables needs the 0.3.0 kit."""
    async with conn.transaction():
        for statement in ac.build_cow_variable_statements(session_id, new_id()):
            await conn.execute(statement)
        yield


async def _install_kit_010(conn: Any) -> None:
    steps = migration_plan(None, "0.1.0")
    assert [step.name for step in steps] == ["agentcow--0.1.0.sql"]
    await run_atomically(
        ex(conn), [render("deploy_guard.sql", installed=None), steps[0].read_text()]
    )


async def _enable_without_session_lock(conn: Any, table: str) -> list[str]:
    """This package's enable statements (rename layout) less what older kits lack: the
    session lock (layout 0.3.0: the write trigger's lock of each row's session), the row
    limit's trigger, and the registry's record of the layout and of tenant isolation (read
    while describing the table, written by register_table's last three arguments)."""
    added = "overlay_schema name, ADD COLUMN tenant_column name, ADD COLUMN tenant_read_only bool"
    await conn.execute(f"ALTER TABLE agentcow.cow_tables ADD COLUMN {added}")
    try:
        statements = await enable_script(
            ex(conn), [await prepare_enable(ex(conn), table, None, "public", False)]
        )
    finally:
        await conn.execute(
            "ALTER TABLE agentcow.cow_tables DROP COLUMN overlay_schema, "
            "DROP COLUMN tenant_column, DROP COLUMN tenant_read_only"
        )
    row_lock = "PERFORM agentcow.share_session(_cow_sid);"
    assert any(row_lock in s for s in statements)
    layout = re.compile(r"::name\[\],\s*NULL,\s*NULL, False\)")
    assert any(layout.search(s) for s in statements)
    return [
        layout.sub("::name[])", s.replace(row_lock, ""))
        for s in statements
        if "agentcow.count_session_rows" not in s
    ]


async def _table_with_layout_010(conn: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    """Kit 0.1.0 with table t enabled and a session of three operations on it. Layout 0.1.0
    is simulated: t is enabled with this package's templates, then its change table loses
    the column 0.1.0 did not have. Returns the session id and the versions as they were."""
    await _install_kit_010(conn)
    await conn.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')"
    )
    await run_atomically(ex(conn), await _enable_without_session_lock(conn, "t"))
    sid = new_id()
    async with old_session(conn, sid):
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
        await conn.execute("INSERT INTO t VALUES (3, 'c')")
    async with old_session(conn, sid):
        await conn.execute("UPDATE t SET v = 'y' WHERE id = 1")
        await conn.execute("DELETE FROM t WHERE id = 3")
    async with old_session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (3, 'd')")
        await conn.execute("DELETE FROM t WHERE id = 2")
    versions = await fetch(conn, OLD_CHANGES)
    await conn.execute("ALTER TABLE t_changes DROP COLUMN _cow_old")
    return sid, versions


async def test_upgrade_from_kit_010(conn: Any) -> None:
    executor = ex(conn)
    sid, versions = await _table_with_layout_010(conn)
    assert await conn.fetchval("SELECT version FROM agentcow.kit") == "0.1.0"
    with pytest.raises(ac.KitVersionError, match="deploy_cow_functions"):
        await ac.get_session_operations(executor, sid)
    with pytest.raises(ac.KitVersionError, match="deploy_cow_functions"):
        async with session(conn, sid):
            pass

    await ac.deploy_cow_functions(executor)
    assert await conn.fetchval("SELECT version FROM agentcow.kit") == KIT_VERSION
    assert await fetch(conn, "SELECT table_name::text, layout FROM agentcow.cow_tables") == [
        ("t", "0.1.0")
    ]
    with pytest.raises(ac.KitVersionError, match="upgrade_cow_tables"):
        await ac.commit_cow_session(executor, "t", sid)
    with pytest.raises(ac.KitVersionError, match="upgrade_cow_tables"):
        await ac.get_operation_dependencies(executor, sid)

    assert await ac.upgrade_cow_tables(executor) == ["t"]
    assert await ac.upgrade_cow_tables(executor) == []
    assert await fetch(conn, "SELECT layout FROM agentcow.cow_tables") == [(OBJECTS_VERSION,)]
    assert await fetch(  # the row limit's trigger (agentcow.limits) is added
        conn, "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 't'::regclass ORDER BY 1"
    ) == [("agentcow_row_limit",), ("agentcow_write",)]
    # The rows before each write, rebuilt: as recorded (the base has not changed since).
    assert await fetch(conn, OLD_CHANGES) == versions
    assert len(await ac.get_operation_dependencies(executor, sid)) == 3

    # The replaced trigger records the row before each write.
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'z' WHERE id = 3")
    assert (
        await conn.fetchval("SELECT _cow_old::text FROM t_changes ORDER BY _cow_seq DESC LIMIT 1")
        == "(3,d)"
    )
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "y"), (3, "z")]


async def test_upgrade_is_for_the_owner(conn: Any, database: TestDatabase) -> None:
    await _table_with_layout_010(conn)
    await ac.deploy_cow_functions(ex(conn))
    await create_login_role(database, "intruder")
    intruder = await connect_as(database, "intruder")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ac.upgrade_cow_tables(ex(intruder))
    finally:
        await intruder.close()
    assert await fetch(conn, "SELECT layout FROM agentcow.cow_tables") == [("0.1.0",)]


async def test_upgrade_from_kit_020(conn: Any) -> None:
    """Tables enabled under kit 0.2.0 gain the session lock; their sessions commit after."""
    executor = ex(conn)
    steps = migration_plan(None, "0.2.0")
    await run_atomically(
        executor, [render("deploy_guard.sql", installed=None), *(s.read_text() for s in steps)]
    )
    await conn.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL CONSTRAINT v_set CHECK (v <> ''));"
        "INSERT INTO t VALUES (1, 'a')"
    )
    await run_atomically(executor, await _enable_without_session_lock(conn, "t"))
    # Layout 0.2.0 copied NOT NULL and CHECK to the change table, which had a primary key and
    # no partial indexes (and its view read no floor function).
    await conn.execute(
        "ALTER TABLE t_changes ALTER COLUMN v SET NOT NULL, ADD CONSTRAINT v_set "
        "CHECK (_cow_kind IN ('D', 'M') OR (v <> '')), ADD PRIMARY KEY (session_id, id, _cow_seq);"
        "CREATE INDEX ON t_changes (session_id, _cow_seq);"
        "GRANT SELECT ON t TO PUBLIC"
    )
    sid = new_id()
    async with old_session(conn, sid):
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    # A child with foreign keys (checked by triggers that upgrade_cow_tables replaces).
    await conn.execute(
        "CREATE TABLE c (id int PRIMARY KEY, t_id int REFERENCES t_base DEFERRABLE,"
        "                n int REFERENCES t_base)"
    )
    await run_atomically(executor, await _enable_without_session_lock(conn, "c"))

    await ac.deploy_cow_functions(executor)
    assert await fetch(conn, "SELECT layout FROM agentcow.cow_tables") == [("0.2.0",)] * 2
    with pytest.raises(ac.KitVersionError, match="upgrade_cow_tables"):
        await ac.commit_cow_session(executor, "t", sid)
    assert await ac.upgrade_cow_tables(executor) == ["c", "t"]
    # Only partial indexes, each naming its own predicate; the view kept its grants.
    assert await fetch(
        conn,
        "SELECT count(*), count(*) FILTER (WHERE indpred IS NOT NULL), "
        "bool_or(indisprimary) FROM pg_index WHERE indrelid = 't_changes'::regclass",
    ) == [(2, 2, False)]  # the key index, and the sequence index (t has children)
    assert await conn.fetchval("SELECT has_table_privilege('public', 't', 'SELECT')")
    assert "t_cow_floor" in await conn.fetchval("SELECT pg_get_viewdef('t'::regclass)")
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (2, 'b')")
        # the write holds the session's lock (share mode) until the transaction ends
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                "AND locktype = 'advisory' AND classid = 1634166635 AND objsubid = 2 "
                f"AND objid = uuid_hash('{sid}')::oid AND mode = 'ShareLock'"
            )
            == 1
        )
        for bad in ("INSERT INTO t VALUES (3, '')", "INSERT INTO t VALUES (3, NULL)"):
            with pytest.raises(asyncpg.IntegrityConstraintViolationError) as raised:
                async with conn.transaction():
                    await conn.execute(bad)
            assert raised.value.table_name == "t" and "t_changes" not in str(raised.value)
        for orphan in ("INSERT INTO c VALUES (1, 9, NULL)", "INSERT INTO c VALUES (1, NULL, 9)"):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with conn.transaction():
                    await conn.execute(orphan)
                    await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "x"), (2, "b")]
