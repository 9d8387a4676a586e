"""The operator's commands: deploy, enable, disable, sql, status, sessions, gc, harden.

Each runs in-process through Typer's CliRunner (in a thread: the command runs its own event
loop) against the test database, in the layout under test; a few run as a real
``python -m agentcow`` to see what a shell sees on standard error.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import Result
from typer.testing import CliRunner

import agentcow as ac
from agentcow.cli import app
from agentcow.cli.setup import PROGRESS_FROM_TABLES
from agentcow.versions import KIT_VERSION
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_name,
    changes_count,
    create_login_role,
    deploy,
    ex,
    kit_schema,
    new_id,
    on_shared_catalog,
    registered,
    relkind,
    relkind_at,
    session,
    view_name,
)

REPO = Path(__file__).resolve().parent.parent
T = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');"
TWO = T + (
    "CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t, tenant text NOT NULL);"
    "INSERT INTO u VALUES (1, 1, 'acme');"
)
HOSTILE = "'; DROP TABLE t; --"
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"

#: No DSN from the environment, no forced terminal, wide enough that tables never fold.
QUIET_ENV: dict[str, str | None] = {
    "AGENTCOW_DSN": None,
    "DATABASE_URL": None,
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "COLUMNS": "250",
}


async def cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """``agentcow ARGS`` in-process (stdout and stderr apart)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env={**QUIET_ENV, **(env or {})})


async def ok(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = await cli(*args, env=env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result


async def ok_json(*args: str) -> Any:
    return json.loads((await ok(*args, "--json")).stdout)


def one_line_error(result: Result, code: int, *words: str) -> str:
    """The command failed with ``code`` and said why in one line on standard error."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentcow: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


async def plain_table(conn: Any, name: str = "t") -> bool:
    return await relkind(conn, name) == "r" and name not in await registered(conn)


# ---------------------------------------------------------------------------------------
# deploy, status
# ---------------------------------------------------------------------------------------


async def test_deploy_installs_then_has_nothing_to_do(database: TestDatabase) -> None:
    dsn = database.owner_dsn
    said = (await ok("deploy", "--dsn", dsn)).stdout
    assert said.strip() == f"agentcow kit {KIT_VERSION} installed"
    again = await ok_json("deploy", "--dsn", dsn)
    assert again == {"installed_before": KIT_VERSION, "installed": KIT_VERSION, "changed": False}
    assert "nothing to do" in (await ok("deploy", "--dsn", dsn)).stdout


async def test_deploy_reads_the_dsn_from_the_environment(database: TestDatabase) -> None:
    for variable in ("AGENTCOW_DSN", "DATABASE_URL"):
        result = await cli("deploy", "--json", env={variable: database.owner_dsn})
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["installed"] == KIT_VERSION


async def test_status_without_kit_shows_it_and_exits_3(database: TestDatabase) -> None:
    result = await cli("status", "--dsn", database.owner_dsn, "--json")
    one_line_error(result, 3, "not deployed", "agentcow deploy")
    data = json.loads(result.stdout)
    assert data["kit_version"] is None and data["kit_current"] is False
    human = await cli("status", "--dsn", database.owner_dsn)
    assert human.exit_code == 3 and "agentcow kit: not deployed" in human.stdout


async def test_status_of_an_older_kit_says_deploy_upgrades_it(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await su.execute("UPDATE agentcow.kit SET version = '0.2.0'")
        result = await cli("status", "--dsn", database.owner_dsn)
    finally:
        await su.execute(f"UPDATE agentcow.kit SET version = '{KIT_VERSION}'")
        await su.close()
    one_line_error(result, 3, "0.2.0", "upgrade")


async def test_status_lists_tables_layouts_tenants_and_pending_sessions(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    await conn.execute(TWO)
    dsn = database.owner_dsn
    await ok("enable", "t", "--layout", LAYOUT, "--dsn", dsn)
    await ok("enable", "u", "--layout", LAYOUT, "--tenant-column", "tenant", "--dsn", dsn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'b'")
    data = await ok_json("status", "--dsn", dsn)
    assert data["kit_version"] == KIT_VERSION and data["kit_current"] is True
    assert data["history_retention_seconds"] == 30 * 86_400
    assert data["pending_sessions"] == [str(sid)]
    by_name = {table["table"]: table for table in data["tables"]}
    assert sorted(by_name) == ["t", "u"]
    t = by_name["t"]
    assert t == {
        "schema": "public",
        "table": "t",
        "layout": LAYOUT,
        "view": ".".join(view_name("t")),
        "base_table": ".".join(base_name("t")),
        "changes_table": f"{kit_schema()}.t_changes",
        "key_columns": ["id"],
        "tenant_column": None,
        "read_only_for_tenants": False,
        "deferrable_fks": [],
        "objects_version": t["objects_version"],
        "pending_sessions": 1,
    }
    assert by_name["u"]["tenant_column"] == "tenant" and by_name["u"]["pending_sessions"] == 0
    human = (await ok("status", "--dsn", dsn)).stdout
    assert f"agentcow kit: {KIT_VERSION}" in human and "history kept: 30d" in human
    assert "sessions holding changes: 1" in human
    assert f"{kit_schema()}.t_changes" in human and LAYOUT in human


# ---------------------------------------------------------------------------------------
# enable, disable
# ---------------------------------------------------------------------------------------


async def test_enable_tables_then_the_rest_of_the_schema(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    await conn.execute(TWO + "CREATE TABLE w (id int PRIMARY KEY)")
    dsn = database.owner_dsn
    data = await ok_json("enable", "t", "--layout", LAYOUT, "--dsn", dsn)
    assert [(d["table"], d["layout"]) for d in data] == [("t", LAYOUT)]
    assert await registered(conn) == ["t"]
    assert await relkind_at(conn, view_name("t")) == "v"
    human = (await ok("enable", "--layout", LAYOUT, "--exclude", "w", "--dsn", dsn)).stdout
    assert "COW enabled on 1 table(s) of public" in human and " u " in human
    assert await registered(conn) == ["t", "u"]
    # enabled already, as asked: nothing to do
    assert await ok_json("enable", "t", "u", "--layout", LAYOUT, "--dsn", dsn) == []
    assert "nothing to enable" in (await ok("enable", "t", "--layout", LAYOUT, "--dsn", dsn)).stdout
    # in the other layout: refused, nothing applied
    other = "rename" if OVERLAY else "overlay"
    refused = await cli("enable", "t", "--layout", other, "--dsn", dsn)
    one_line_error(refused, 4, "disable COW first")


async def test_enable_options_reach_the_registry(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    await conn.execute(
        TWO
        + "CREATE TABLE codes (a int NOT NULL, b int NOT NULL, note text, UNIQUE (a, b));"
        + "CREATE TABLE countries (code text PRIMARY KEY, tenant text NOT NULL);"
        + "CREATE TABLE events (n int NOT NULL UNIQUE, what text);"
    )
    dsn = database.owner_dsn
    common = ["--layout", LAYOUT, "--dsn", dsn]
    await ok("enable", "t", *common)
    await ok("enable", "u", "--tenant-column", "tenant", "--allow-deferred-fks", *common)
    await ok("enable", "codes", "--pk", "b,a", *common)
    await ok("enable", "events", "--pk", "", *common)  # append-only, though it has a key
    await ok("enable", "countries", "--tenant-column", "tenant", "--read-only-for-tenants", *common)
    rows = {
        r["table_name"]: r
        for r in await conn.fetch(
            "SELECT table_name::text, pk_cols::text[], deferrable_fks::text[], "
            "tenant_column::text, tenant_read_only FROM agentcow.cow_tables"
        )
    }
    assert rows["u"]["tenant_column"] == "tenant" and not rows["u"]["tenant_read_only"]
    assert rows["u"]["deferrable_fks"] == ["u_t_id_fkey"]
    assert sorted(rows["codes"]["pk_cols"]) == ["a", "b"]
    assert rows["events"]["pk_cols"] == []
    assert rows["countries"]["tenant_read_only"] is True
    assert await conn.fetchval(
        "SELECT condeferrable FROM pg_constraint WHERE conname = 'u_t_id_fkey'"
    )


async def test_enable_a_whole_schema_shows_progress_on_a_terminal_only(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    count = PROGRESS_FROM_TABLES + 2
    await conn.execute(";".join(f"CREATE TABLE p{i} (id int PRIMARY KEY)" for i in range(count)))
    dsn = database.owner_dsn
    terminal = {"FORCE_COLOR": "1", "TERM": "xterm"}
    # --json: no progress, even on a terminal
    result = await cli(
        "enable", "p0", "p1", "--layout", LAYOUT, "--json", "--dsn", dsn, env=terminal
    )
    assert result.exit_code == 0 and result.stderr == ""
    shown = await cli("enable", "--layout", LAYOUT, "--dsn", dsn, env=terminal)
    assert shown.exit_code == 0, shown.stderr
    assert f"enabling {count - 2} tables" in shown.stderr or "checked p" in shown.stderr
    assert len(await registered(conn)) == count
    # not a terminal: nothing on standard error
    await ok("disable", "--dsn", dsn)
    quiet = await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    assert quiet.stderr == ""


async def test_enable_refusals_are_one_line_with_their_code(
    conn: Any, database: TestDatabase
) -> None:
    dsn = database.owner_dsn
    await conn.execute(T + 'CREATE VIEW tv AS SELECT * FROM t; CREATE TABLE "[/x]" (id int)')
    one_line_error(await cli("enable", "t", "--dsn", dsn), 3, "not deployed")
    await deploy(conn)
    one_line_error(await cli("enable", HOSTILE, "--dsn", dsn), 5, "does not exist")
    one_line_error(await cli("enable", "nosuch", "t", "--dsn", dsn), 5, "nosuch")
    one_line_error(await cli("enable", "--schema", HOSTILE, "--dsn", dsn), 5, "schema")
    one_line_error(await cli("enable", "tv", "--dsn", dsn), 4, "plain tables only")
    one_line_error(await cli("enable", "t", "--tenant-column", "nope", "--dsn", dsn), 4, "nope")
    one_line_error(await cli("enable", "t", "--pk", "v", "--dsn", dsn), 4, "pk_cols")
    both = await cli("enable", "t", "tv", "--tenant-column", "nope", "--dsn", dsn)
    one_line_error(both, 4, "2 table(s)", "it has no column 'nope'", "public.tv: it is a view")
    one_line_error(await cli("enable", "t", "tv", "--pk", "id", "--dsn", dsn), 2, "--pk")
    one_line_error(await cli("enable", "--read-only-for-tenants", "--dsn", dsn), 2, "TABLE")
    one_line_error(await cli("enable", "t", "--exclude", "t", "--dsn", dsn), 2, "--exclude")
    one_line_error(await cli("enable", "t", "--tenant-column", "x" * 70, "--dsn", dsn), 2)
    assert await plain_table(conn) and await relkind(conn, "tv") == "v"
    one_line_error(await cli("enable", "t"), 2, "--dsn")
    one_line_error(await cli("enable", "t", "--dsn", UNREACHABLE), 3)
    one_line_error(await cli("enable", "t", "--dsn", dsn + "_nosuchdb"), 3, "3D000")
    # a name that reads as Rich markup is printed as it is
    result = await ok("enable", "[/x]", "--layout", LAYOUT, "--dsn", dsn)
    assert "[/x]" in result.stdout


async def test_disable_refuses_while_sessions_hold_changes(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    await conn.execute(TWO)
    dsn = database.owner_dsn
    await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (2, 'b')")
    refused = await cli("disable", "t", "--dsn", dsn)
    one_line_error(refused, 4, str(sid), "--discard-changes")
    assert await registered(conn) == ["t", "u"]
    data = await ok_json("disable", "t", "u", "--discard-changes", "--dsn", dsn)
    assert data == [{"schema": "public", "table": "t"}, {"schema": "public", "table": "u"}]
    assert await plain_table(conn, "t") and await plain_table(conn, "u")
    assert await conn.fetchval("SELECT count(*) FROM t") == 1  # the session's row is gone
    said = await ok("disable", "t", "--dsn", dsn)
    assert "nothing to disable" in said.stdout
    one_line_error(await cli("disable", HOSTILE, "--dsn", dsn), 5, "does not exist")
    one_line_error(await cli("disable", "--schema", "nosuch", "--dsn", dsn), 5, "nosuch")


async def test_disable_a_whole_schema(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    await conn.execute(TWO)
    dsn = database.owner_dsn
    await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    said = (await ok("disable", "--dsn", dsn)).stdout
    assert said.strip() == "COW disabled on 2 table(s): public.t, public.u"
    assert await registered(conn) == []


# ---------------------------------------------------------------------------------------
# sql enable|disable
# ---------------------------------------------------------------------------------------


async def apply_script(dsn: str, script: str) -> None:
    """Apply a printed script as a migration tool would: psql -f when it is installed."""
    psql = shutil.which("psql")
    if psql is None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(script)
        finally:
            await connection.close()
        return
    done = await asyncio.to_thread(
        subprocess.run,
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"psql failed: {done.stderr}")


async def test_sql_enable_prints_what_psql_applies_and_disable_reverts_it(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    await conn.execute(TWO)
    dsn = database.owner_dsn
    script = (await ok("sql", "enable", "t", "u", "--layout", LAYOUT, "--dsn", dsn)).stdout
    assert script.startswith("-- agentcow enable in schema public: t, u\n")
    assert await plain_table(conn, "t") and await plain_table(conn, "u")  # nothing changed
    data = await ok_json("sql", "enable", "t", "u", "--layout", LAYOUT, "--dsn", dsn)
    assert data["tables"] == ["t", "u"] and data["kit_included"] is False
    assert data["action"] == "enable" and data["sql"].startswith("-- agentcow enable")
    await apply_script(dsn, script)
    assert await registered(conn) == ["t", "u"]
    status = await ok_json("status", "--dsn", dsn)
    assert {table["layout"] for table in status["tables"]} == {LAYOUT}
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'session' WHERE id = 1")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "session"
    assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "a"
    assert await changes_count(conn, "t") == 1
    # disable's script refuses while a session holds changes, as disable does
    one_line_error(await cli("sql", "disable", "--dsn", dsn), 4, "--discard-changes")
    undo = (await ok("sql", "disable", "--discard-changes", "--dsn", dsn)).stdout
    assert await registered(conn) == ["t", "u"]
    await apply_script(dsn, undo)
    assert await plain_table(conn, "t") and await plain_table(conn, "u")
    assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "a"
    nothing = (await ok("sql", "disable", "--dsn", dsn)).stdout
    assert "none (nothing to do)" in nothing and "DO" not in nothing


async def test_sql_with_kit_on_a_database_without_it(conn: Any, database: TestDatabase) -> None:
    await conn.execute(T)
    dsn = database.owner_dsn
    one_line_error(await cli("sql", "enable", "t", "--dsn", dsn), 3, "--with-kit")
    script = (await ok("sql", "enable", "t", "--with-kit", "--layout", LAYOUT, "--dsn", dsn)).stdout
    kit = await conn.fetchval("SELECT to_regclass('agentcow.kit') IS NOT NULL")
    assert kit is False and await relkind(conn, "t") == "r"  # printing deployed nothing
    await apply_script(dsn, script)
    assert await conn.fetchval("SELECT version FROM agentcow.kit") == KIT_VERSION
    assert await registered(conn) == ["t"]


async def test_sql_script_refuses_a_database_with_another_kit(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    await conn.execute(T)
    dsn = database.owner_dsn
    script = (await ok("sql", "enable", "t", "--layout", LAYOUT, "--dsn", dsn)).stdout
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await su.execute("UPDATE agentcow.kit SET version = '0.0.1'")
        with pytest.raises((AssertionError, asyncpg.PostgresError), match="needs kit"):
            await apply_script(dsn, script)
    finally:
        await su.execute(f"UPDATE agentcow.kit SET version = '{KIT_VERSION}'")
        await su.close()
    assert await plain_table(conn)


async def test_sql_of_hostile_names_stays_inside_its_quotes(
    conn: Any, database: TestDatabase
) -> None:
    """A table whose name holds a line break and SQL: the header comment would end at the
    break; the script must still do nothing but enable it."""
    await deploy(conn)
    name = "x\nDROP TABLE keep; --"
    await conn.execute(
        "CREATE TABLE keep (id int PRIMARY KEY);"
        f'CREATE TABLE "{name}" (id int PRIMARY KEY, "it\'s" text)'
    )
    dsn = database.owner_dsn
    script = (await ok("sql", "enable", name, "--layout", LAYOUT, "--dsn", dsn)).stdout
    assert script.splitlines()[0] == "-- agentcow enable in schema public: x DROP TABLE keep; --"
    await apply_script(dsn, script)
    assert await registered(conn) == [name]
    assert await relkind(conn, "keep") == "r"
    one_line_error(await cli("sql", "enable", HOSTILE, "--dsn", dsn), 5, "does not exist")
    one_line_error(await cli("sql", "enable", "t", "--schema", HOSTILE, "--dsn", dsn), 5)


# ---------------------------------------------------------------------------------------
# sessions, gc
# ---------------------------------------------------------------------------------------


async def enter_and_write(conn: Any, sid: Any, sql: str, tenant: str | None = None) -> None:
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=tenant, label="cli")
        await conn.execute(sql)


async def age_session(database: TestDatabase, sid: Any, hours: int) -> None:
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await su.execute(
            "UPDATE agentcow.sessions SET last_active_at = now() - $2::interval "
            "WHERE session_id = $1",
            sid,
            timedelta(hours=hours),
        )
    finally:
        await su.close()


async def test_sessions_lists_and_filters(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    await conn.execute(TWO)
    dsn = database.owner_dsn
    await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    old, recent = new_id(), new_id()
    await enter_and_write(conn, old, "INSERT INTO t VALUES (2, 'old')", tenant="acme")
    await enter_and_write(conn, recent, "UPDATE t SET v = 'new' WHERE id = 1")
    await age_session(database, old, 3)
    listed = await ok_json("sessions", "--dsn", dsn)
    assert [s["session_id"] for s in listed] == [str(old), str(recent)]
    first = listed[0]
    assert first["state"] == "open" and first["tenant"] == "acme" and first["label"] == "cli"
    assert first["pending"] == {"t": 1} and first["registered"] is True
    assert set(first) >= {"created_at", "last_active_at", "committed_by", "undone_at"}
    only_old = await ok_json("sessions", "--older-than", "2h", "--dsn", dsn)
    assert [s["session_id"] for s in only_old] == [str(old)]
    by_tenant = await ok_json("sessions", "--tenant", "acme", "--dsn", dsn)
    assert [s["session_id"] for s in by_tenant] == [str(old)]
    assert await ok_json("sessions", "--state", "committed", "--dsn", dsn) == []
    both = await ok_json("sessions", "--state", "committed", "--state", "open", "--dsn", dsn)
    assert len(both) == 2
    human = (await ok("sessions", "--dsn", dsn)).stdout
    assert str(old) in human and "acme" in human and "t: 1" in human
    assert "no session matches" in (await ok("sessions", "--tenant", HOSTILE, "--dsn", dsn)).stdout
    one_line_error(await cli("sessions", "--older-than", "yesterday", "--dsn", dsn), 2, "30m")
    assert (await cli("sessions", "--state", "lost", "--dsn", dsn)).exit_code == 2


async def test_gc_discards_abandoned_sessions(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    await conn.execute(T)
    dsn = database.owner_dsn
    await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    old, recent = new_id(), new_id()
    await enter_and_write(conn, old, "INSERT INTO t VALUES (2, 'old')")
    await enter_and_write(conn, recent, "INSERT INTO t VALUES (3, 'new')")
    await age_session(database, old, 48)
    dry = await ok_json("gc", "--older-than", "1d", "--dry-run", "--dsn", dsn)
    assert dry["dry_run"] is True and dry["older_than_seconds"] == 86_400
    assert dry["sessions"] == [{"session_id": str(old), "versions": {"t": 1}}]
    assert await changes_count(conn, "t", old) == 1  # a dry run changes nothing
    human = (await ok("gc", "--older-than", "1d", "--dry-run", "--dsn", dsn)).stdout
    assert "would discard 1 session(s)" in human and str(old) in human
    done = await ok_json("gc", "--older-than", "1d", "--dsn", dsn)
    assert done["sessions"] == [{"session_id": str(old), "versions": {"t": 1}}]
    assert await changes_count(conn, "t", old) == 0
    assert await changes_count(conn, "t", recent) == 1
    said = (await ok("gc", "--older-than", "1d", "--dsn", dsn)).stdout
    assert "discarded 0 session(s)" in said


async def test_gc_sets_history_retention(conn: Any, database: TestDatabase) -> None:
    await deploy(conn)
    dsn = database.owner_dsn
    data = await ok_json("gc", "--older-than", "1d", "--history-retention", "7d", "--dsn", dsn)
    assert data["history_retention_seconds"] == 7 * 86_400
    forever = await ok_json(
        "gc", "--older-than", "1d", "--history-retention", "forever", "--dsn", dsn
    )
    assert forever["history_retention_seconds"] is None
    assert (await ok_json("status", "--dsn", dsn))["history_retention_seconds"] is None
    assert "history kept: forever" in (await ok("status", "--dsn", dsn)).stdout
    one_line_error(await cli("gc", "--dsn", dsn), 2, "--older-than")
    one_line_error(
        await cli("gc", "--older-than", "1d", "--dry-run", "--history-retention", "1d"), 2
    )
    one_line_error(await cli("gc", "--older-than", "1d", "--history-retention", "1y"), 2)
    one_line_error(await cli("gc", "--older-than", "1d", "--dsn", dsn, "--schema", HOSTILE), 5)


# ---------------------------------------------------------------------------------------
# harden
# ---------------------------------------------------------------------------------------


async def fresh_role(database: TestDatabase, role: str) -> None:
    await create_login_role(database, role)
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await on_shared_catalog(su, f'ALTER ROLE "{role}" RESET ALL')
    finally:
        await su.close()


async def test_harden_check_then_harden(conn: Any, database: TestDatabase) -> None:
    agent = f"cli_{LAYOUT}_agent"
    await fresh_role(database, agent)
    await deploy(conn)
    await conn.execute(T + f'GRANT ALL ON t TO "{agent}"')
    dsn = database.owner_dsn
    await ok("enable", "--layout", LAYOUT, "--dsn", dsn)
    check = await cli("harden", "--agent-role", agent, "--check", "--json", "--dsn", dsn)
    assert check.exit_code == 4, check.stderr
    findings = json.loads(check.stdout)
    assert findings and {f["role"] for f in findings} == {agent}
    assert set(findings[0]) == {
        "kind",
        "role",
        "object",
        "privilege",
        "via",
        "why",
        "fix",
        "grantee",
    }
    human = await cli("harden", "--agent-role", agent, "--check", "--dsn", dsn)
    assert human.exit_code == 4 and "privilege(s) beyond" in human.stdout
    report = await ok_json("harden", "--agent-role", agent, "--read-only", "t", "--dsn", dsn)
    assert report["ok"] is True and report["applied"] and report["remaining"] == []
    assert await ok_json("harden", "--agent-role", agent, "--check", "--dsn", dsn) == []
    said = (await ok("harden", "--agent-role", agent, "--dsn", dsn)).stdout
    assert "nothing left" in said
    # the reviewer must act as the tables' owner: only an administrator may grant that
    reviewer = f"cli_{LAYOUT}_reviewer"
    await fresh_role(database, reviewer)
    left = await cli("harden", "--agent-role", agent, "--reviewer-role", reviewer, "--dsn", dsn)
    assert left.exit_code == 4 and "reviewer_not_owner" in left.stdout


async def test_harden_refusals(conn: Any, database: TestDatabase) -> None:
    agent = f"cli_{LAYOUT}_agent"
    await fresh_role(database, agent)
    await deploy(conn)
    await conn.execute(T)
    dsn = database.owner_dsn
    one_line_error(await cli("harden", "--dsn", dsn), 2, "--agent-role")
    one_line_error(
        await cli("harden", "--agent-role", agent, "--reviewer-role", agent, "--dsn", dsn),
        2,
        "both",
    )
    one_line_error(await cli("harden", "--agent-role", HOSTILE, "--dsn", dsn), 5, "no such role")
    one_line_error(
        await cli("harden", "--agent-role", agent, "--read-only", "t", "--dsn", dsn),
        5,
        "not COW tables",
    )
    assert await plain_table(conn)


# ---------------------------------------------------------------------------------------
# What a shell sees
# ---------------------------------------------------------------------------------------


def shell(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENTCOW_DSN", "DATABASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "agentcow", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


async def test_a_shell_sees_one_line_and_a_traceback_only_with_debug(
    conn: Any, database: TestDatabase
) -> None:
    await deploy(conn)
    dsn = database.owner_dsn
    done = await asyncio.to_thread(shell, "enable", HOSTILE, "--dsn", dsn)
    assert done.returncode == 5 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("agentcow: error: table public.")
    unreachable = await asyncio.to_thread(shell, "status", "--dsn", UNREACHABLE)
    assert unreachable.returncode == 3 and unreachable.stderr.count("\n") == 1
    debug = await asyncio.to_thread(shell, "enable", HOSTILE, "--dsn", dsn, "--debug")
    assert debug.returncode == 5 and "Traceback" in debug.stderr
    assert "TableNotFoundError" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("agentcow: error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enable", "--layout", "sideways"), "Invalid value for '--layout'"),
        (("commit", "00000000-0000-0000-0000-000000000000", "--on-conflict", "x"), "--on-conflict"),
        (("no-such-command",), "No such command"),
        (("diff",), "Missing argument 'SESSION'"),
        (("status", "--no-such-option"), "No such option"),
        (("status", "--dsn", "host=localhost dbname=x"), "invalid DSN"),
    ],
)
def test_usage_errors_are_one_line_in_a_shell(args: tuple[str, ...], message: str) -> None:
    done = shell(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("agentcow: error: ")
    assert message in done.stderr


def test_groups_alone_show_their_help() -> None:
    for args in ((), ("sql",)):
        done = shell(*args)
        assert done.returncode == 0 and done.stderr == ""
        assert "Usage: agentcow" in done.stdout and "enable" in done.stdout
