"""agentcow.alembic: the example revisions (migrations/alembic) upgraded and downgraded by
Alembic on a real server, in the layout under test, and the operations one by one.

Alembic runs in a worker thread (its sync engine blocks), or as a subprocess; the test's
asyncpg connection plays production and the sessions."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import render_python_code
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import agentcow as ac
from agentcow.alembic import (
    AlterCowTableOp,
    DisableCowOp,
    EnableCowOp,
    EnableCowSchemaOp,
    OfflineMigrationError,
)
from agentcow.versions import KIT_VERSION, OBJECTS_VERSION
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_name,
    base_table,
    changes_count,
    changes_name,
    cow_view,
    ex,
    fetch,
    new_id,
    registered,
    relkind,
    relkind_at,
    rename_only,
    session,
    view_name,
)
from tests.test_upgrade import OLD_CHANGES
from tests.test_upgrade import _table_with_layout_010 as table_with_layout_010

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "migrations" / "alembic"
ASYNC_ENV = Path(__file__).resolve().parent / "alembic_async"


def _url(dsn: str, driver: str = "psycopg") -> str:
    url = make_url(dsn).set(drivername=f"postgresql+{driver}")
    return url.render_as_string(hide_password=False)


def _config(database: TestDatabase, *, driver: str = "psycopg", **kwargs: Any) -> Config:
    """The example's configuration on the test's database, in the layout under test."""
    config = Config(
        EXAMPLE / "alembic.ini", cmd_opts=argparse.Namespace(x=[f"layout={LAYOUT}"]), **kwargs
    )
    config.set_main_option("sqlalchemy.url", _url(database.owner_dsn, driver))
    return config


@pytest.fixture(autouse=True)
def _no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's env.py prefers DATABASE_URL to the configuration's URL."""
    monkeypatch.delenv("DATABASE_URL", raising=False)


async def _version(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, "SELECT version_num FROM alembic_version")


async def _columns(conn: Any, relation: tuple[str, str]) -> list[str]:
    return [
        name
        for (name,) in await fetch(
            conn,
            "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            '"{}"."{}"'.format(*relation),
        )
    ]


async def _assert_plain(conn: Any) -> None:
    """notes is a plain table again, with nothing of agentcow's left beside it."""
    assert await relkind(conn, "notes") == "r"
    assert await registered(conn) == []
    assert await relkind(conn, "notes_base") is None
    assert await relkind_at(conn, changes_name("notes")) is None
    assert await conn.fetchval("SELECT to_regnamespace('public_cow')") is None


async def test_upgrade_and_downgrade(conn: Any, database: TestDatabase) -> None:
    """The example through Alembic's command API: COW on notes, the ALTER TABLE of 0003 seen
    by sessions, a downgrade refused whole while a session holds changes, then undone."""
    config = _config(database)
    await asyncio.to_thread(command.upgrade, config, "0001")
    await conn.execute("INSERT INTO notes (body) VALUES ('a'), ('b')")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _version(conn) == [("0003",)]
    assert await registered(conn) == ["notes"]
    assert await relkind_at(conn, view_name("notes")) == "v"

    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE notes SET body = 'edited', tag = 'agent' WHERE id = 1")
        await conn.execute("INSERT INTO notes (body) VALUES ('new')")
        assert await fetch(conn, "SELECT id, body, tag FROM notes ORDER BY id") == [
            (1, "edited", "agent"),
            (2, "b", "inbox"),
            (3, "new", "inbox"),
        ]
    assert await changes_count(conn, "notes", sid) == 2
    base = f"SELECT id, body, tag FROM {base_table('notes')} ORDER BY id"
    assert await fetch(conn, base) == [(1, "a", "inbox"), (2, "b", "inbox")]

    with pytest.raises(ac.PendingChangesError, match="1 session"):
        await asyncio.to_thread(command.downgrade, config, "base")
    # nothing of the downgrade applied: the revision, the column, the overlay, the changes
    assert await _version(conn) == [("0003",)]
    assert await registered(conn) == ["notes"]
    assert "tag" in await _columns(conn, base_name("notes"))
    assert await relkind_at(conn, view_name("notes")) == "v"
    assert await changes_count(conn, "notes", sid) == 2

    await ac.discard_cow_session_schema(ex(conn), sid)
    await conn.execute("INSERT INTO notes (body) VALUES ('production')")  # no session
    await asyncio.to_thread(command.downgrade, config, "0001")
    await _assert_plain(conn)
    assert await fetch(conn, "SELECT * FROM notes ORDER BY id") == [
        (1, "a"),
        (2, "b"),
        (4, "production"),
    ]
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await relkind(conn, "notes") is None
    assert await _version(conn) == []


async def test_alter_with_pending_changes(conn: Any, database: TestDatabase) -> None:
    """Overlay layout: 0003's ALTER TABLE keeps pending session changes, which show the new
    column. Rename layout: it is refused while they exist (disable would lose them)."""
    config = _config(database)
    await asyncio.to_thread(command.upgrade, config, "0001")
    await conn.execute("INSERT INTO notes (body) VALUES ('a')")
    await asyncio.to_thread(command.upgrade, config, "0002")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE notes SET body = 'edited'")
    if OVERLAY:
        await asyncio.to_thread(command.upgrade, config, "head")
        async with session(conn, sid):
            assert await fetch(conn, "SELECT body, tag FROM notes") == [("edited", "inbox")]
        await ac.commit_cow_session_schema(ex(conn), sid)
        assert await fetch(conn, "SELECT body, tag FROM notes") == [("edited", "inbox")]
        return
    with pytest.raises(ac.PendingChangesError, match=r"public\.notes"):
        await asyncio.to_thread(command.upgrade, config, "head")
    assert await _version(conn) == [("0002",)]
    assert "tag" not in await _columns(conn, base_name("notes"))
    assert await registered(conn) == ["notes"]
    assert await changes_count(conn, "notes", sid) == 1


async def _alembic(database: TestDatabase, *args: str) -> tuple[int, str]:
    """``alembic -c migrations/alembic/alembic.ini ARGS`` on the test's database; its exit
    code and stderr."""
    environment = {
        **os.environ,
        "DATABASE_URL": _url(database.owner_dsn),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "-c",
        str(EXAMPLE / "alembic.ini"),
        "-x",
        f"layout={LAYOUT}",
        *args,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_alembic_command_line(conn: Any, database: TestDatabase) -> None:
    assert await _alembic(database, "upgrade", "head") == (0, "")
    await conn.execute("INSERT INTO notes (body) VALUES ('a')")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE notes SET tag = 'agent'")
    assert await fetch(conn, f"SELECT tag FROM {base_table('notes')}") == [("inbox",)]

    code, stderr = await _alembic(database, "downgrade", "base")
    assert code == 1
    assert "agentcow.errors.PendingChangesError: cannot" in stderr
    assert await _version(conn) == [("0003",)]

    await ac.discard_cow_session_schema(ex(conn), sid)
    assert await _alembic(database, "downgrade", "0001") == (0, "")
    await _assert_plain(conn)
    assert await fetch(conn, "SELECT * FROM notes") == [(1, "a")]
    assert await _alembic(database, "downgrade", "base") == (0, "")
    assert await relkind(conn, "notes") is None


async def test_offline_mode_is_refused(conn: Any, database: TestDatabase) -> None:
    """``alembic upgrade --sql`` prints 0001, then stops at the first agentcow operation."""
    printed = io.StringIO()
    config = _config(database, output_buffer=printed)
    with pytest.raises(OfflineMigrationError, match=r"op\.deploy_cow\(\) reads the database"):
        await asyncio.to_thread(command.upgrade, config, "head", sql=True)
    assert "CREATE TABLE notes" in printed.getvalue()
    assert "agentcow" not in printed.getvalue()
    assert await relkind(conn, "notes") is None  # offline mode never touched the database


async def test_async_engine(conn: Any, database: TestDatabase) -> None:
    """The revisions from an async engine (asyncpg, env.py migrating in run_sync): the kit's
    calls run on run_sync's connection, with no event loop of their own."""
    config = _config(database, driver="asyncpg")
    config.set_main_option("script_location", str(ASYNC_ENV))
    config.set_main_option("version_locations", str(EXAMPLE / "versions"))
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await registered(conn) == ["notes"]
    await conn.execute("INSERT INTO notes (body) VALUES ('a')")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE notes SET tag = 'agent'")
    with pytest.raises(ac.PendingChangesError):
        await asyncio.to_thread(command.downgrade, config, "0001")
    await ac.discard_cow_session_schema(ex(conn), sid)
    await asyncio.to_thread(command.downgrade, config, "0001")
    await _assert_plain(conn)


# ---------------------------------------------------------------------------------------
# The operations one by one, on a migration context of our own
# ---------------------------------------------------------------------------------------


def _migrate(database: TestDatabase, body: Callable[[Operations], T]) -> T:
    """``body(op)`` in one transaction, as a revision's upgrade() runs."""
    engine = sa.create_engine(_url(database.owner_dsn), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            return body(Operations(MigrationContext.configure(connection)))
    finally:
        engine.dispose()


async def migrate(database: TestDatabase, body: Callable[[Operations], T]) -> T:
    return await asyncio.to_thread(_migrate, database, body)


def _run_rendered(op: Operations, code: str) -> None:
    """Python that ``render_python_code`` wrote, run as a revision's upgrade() would."""
    namespace = {"op": op, "sa": sa}
    exec("def upgrade():\n" + textwrap.indent(code, "    "), namespace)
    namespace["upgrade"]()


async def test_schema_operations_and_their_reverse(conn: Any, database: TestDatabase) -> None:
    """enable_cow_schema / disable_cow_schema on a schema and tables whose names need
    quoting; the downgrade autogenerate would write, run."""
    schema = 'we"ird'
    await conn.execute(
        'CREATE SCHEMA "we""ird";'
        'CREATE TABLE "we""ird"."Parent" (id int PRIMARY KEY);'
        'CREATE TABLE "we""ird"."child; --" (id int PRIMARY KEY, '
        'parent int REFERENCES "we""ird"."Parent");'
        'INSERT INTO "we""ird"."Parent" VALUES (1)'
    )
    upgrade = ops.UpgradeOps([EnableCowSchemaOp(schema, layout=LAYOUT)])
    code = render_python_code(upgrade)
    layout = "" if LAYOUT == "rename" else f", layout={LAYOUT!r}"  # a default is left out
    assert f"op.enable_cow_schema(schema='we\"ird'{layout})" in code

    def up(op: Operations) -> list[str]:
        op.deploy_cow()
        return op.enable_cow_schema(schema, layout=LAYOUT)

    assert sorted(await migrate(database, up)) == ["Parent", "child; --"]
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(f"INSERT INTO {cow_view('child; --', schema)} VALUES (1, 1)")
    assert await ac.get_dirty_tables(ex(conn), sid, schema=schema) == ["child; --"]

    downgrade = upgrade.reverse()
    code = render_python_code(downgrade)
    assert "op.disable_cow_schema(schema='we\"ird')" in code
    with pytest.raises(ac.PendingChangesError):
        await migrate(database, lambda op: _run_rendered(op, code))
    await ac.discard_cow_session_schema(ex(conn), sid, schema=schema)
    await migrate(database, lambda op: _run_rendered(op, code))
    assert await registered(conn) == []
    assert await relkind(conn, "child; --", schema) == "r"
    assert downgrade.reverse().ops == upgrade.ops  # the reverse of that reverse: the enable


async def test_alter_cow_table_keeps_how_the_table_was_enabled(
    conn: Any, database: TestDatabase
) -> None:
    """The block's table is made again with its key, tenant column and deferrable foreign
    keys; the block autogenerate would write, and its reverse, run."""
    await conn.execute(
        "CREATE TABLE p (id int PRIMARY KEY);"
        "CREATE TABLE t (code text NOT NULL UNIQUE, tenant text NOT NULL,"
        "                p int REFERENCES p, note text)"
    )
    registry = (
        "SELECT pk_cols::text[], deferrable_fks::text[], overlay_schema::text, "
        "tenant_column::text, tenant_read_only FROM agentcow.cow_tables WHERE table_name = 't'"
    )

    def enable(op: Operations) -> None:
        op.deploy_cow()
        op.enable_cow("p", layout=LAYOUT)
        op.enable_cow(
            "t", layout=LAYOUT, pk_cols=[], allow_deferred_fks=True, tenant_column="tenant"
        )

    await migrate(database, enable)
    before = await fetch(conn, registry)
    assert before == [([], ["t_p_fkey"], "public_cow" if OVERLAY else None, "tenant", False)]

    add = AlterCowTableOp(
        "t", ops=[ops.AddColumnOp("t", sa.Column("extra", sa.Integer, server_default="7"))]
    )
    code = render_python_code(ops.UpgradeOps([add]))
    assert "with op.alter_cow_table('t'):" in code
    await migrate(database, lambda op: _run_rendered(op, code))
    assert await fetch(conn, registry) == before
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t (code, tenant) VALUES ('a', 'x')")
        assert await fetch(conn, "SELECT code, extra FROM t") == [("a", 7)]

    # the reverse drops the column again, once no session holds a version of it
    code = render_python_code(ops.DowngradeOps([add.reverse()]))
    assert "op.drop_column('t', 'extra')" in code
    await ac.discard_cow_session_schema(ex(conn), sid)
    await migrate(database, lambda op: _run_rendered(op, code))
    assert "extra" not in await _columns(conn, base_name("t"))
    assert await fetch(conn, registry) == before


async def test_alter_cow_table_refusals(conn: Any, database: TestDatabase) -> None:
    """A table that is not COW-enabled is refused; a block that fails leaves the table as it
    was (the migration's transaction rolls back)."""
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE plain (id int)")

    def enable(op: Operations) -> None:
        op.deploy_cow()
        op.enable_cow("t", layout=LAYOUT)

    await migrate(database, enable)

    def alter_plain(op: Operations) -> None:
        with op.alter_cow_table("plain"):
            op.add_column("plain", sa.Column("x", sa.Integer))

    with pytest.raises(ac.UnsupportedTableError, match=r"public\.plain is not COW-enabled"):
        await migrate(database, alter_plain)

    def failing(op: Operations) -> None:
        with op.alter_cow_table("t"):
            op.add_column("t", sa.Column("x", sa.Integer))
            op.execute("SELECT 1 / 0")

    with pytest.raises(sa.exc.DataError, match="division by zero"):
        await migrate(database, failing)
    assert await registered(conn) == ["t"]
    assert await relkind_at(conn, view_name("t")) == "v"
    assert await _columns(conn, base_name("t")) == ["id"]


async def test_refresh_cow(conn: Any, database: TestDatabase) -> None:
    """op.refresh_cow after an op.add_column (overlay layout); the rename layout has no
    overlay to refresh and says so."""
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")

    def enable(op: Operations) -> None:
        op.deploy_cow()
        op.enable_cow("t", layout=LAYOUT)

    await migrate(database, enable)

    if not OVERLAY:
        with pytest.raises(ac.UnsupportedTableError, match="overlay layout in schema public: t"):
            await migrate(database, lambda op: op.refresh_cow(tables=["t"]))
        return

    def add_and_refresh(op: Operations) -> list[str]:
        op.add_column("t", sa.Column("x", sa.Integer, server_default="5"))
        return op.refresh_cow(tables=["t"])

    assert await migrate(database, add_and_refresh) == ["t"]
    assert await migrate(database, lambda op: op.refresh_cow()) == []
    async with session(conn, new_id()):
        assert await fetch(conn, "SELECT id, x FROM t") == [(1, 5)]


def test_reverse_needs_the_enable() -> None:
    """A disable knows its enable only when it came from that enable's reverse()."""
    enable = EnableCowOp("t", layout="overlay", tenant_column="tenant")
    assert enable.reverse().reverse() is enable
    code = render_python_code(ops.UpgradeOps([enable.reverse()]))
    assert "    op.disable_cow('t')\n" in code
    with pytest.raises(ValueError, match=r"op\.disable_cow\('t'\) does not say how"):
        DisableCowOp("t").reverse()


@rename_only("kits before 0.3.0 had the rename layout alone")
async def test_upgrading_an_older_kit_in_a_revision(conn: Any, database: TestDatabase) -> None:
    """A revision that follows a new agentcow release: op.deploy_cow() upgrades kit 0.1.0 in
    place, op.upgrade_cow_tables() its tables; the session enabled under it keeps its
    changes (tests/test_upgrade.py checks the upgrade itself)."""
    sid, versions = await table_with_layout_010(conn)

    def upgrade(op: Operations) -> list[str]:
        op.deploy_cow()
        return op.upgrade_cow_tables()

    assert await migrate(database, upgrade) == ["t"]
    assert await conn.fetchval("SELECT version FROM agentcow.kit") == KIT_VERSION
    assert await fetch(conn, "SELECT layout FROM agentcow.cow_tables") == [(OBJECTS_VERSION,)]
    assert await fetch(conn, OLD_CHANGES) == versions
    await ac.commit_cow_session(ex(conn), "t", sid)
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "y"), (3, "d")]
