"""The reviewer's commands (ops, deps, diff, conflicts, check, commit, discard, undo) run
in-process with Typer's CliRunner against the real server: what they print, human and
``--json``, what they change, and the one line and exit code of each refusal."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from click.testing import Result
from typer.testing import CliRunner

import agentcow as ac
from agentcow.cli import app
from agentcow.cli import commit_commands as commit_module
from tests.conftest import OWNER_ROLE, ServerInfo, TestDatabase
from tests.helpers import LAYOUT, ex, fetch, make_cow, new_id, session

SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int REFERENCES customers,
    total numeric(10, 2) NOT NULL,
    status text NOT NULL DEFAULT 'new'
);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');
INSERT INTO orders VALUES (10, 1, 5.00, 'new'), (11, 2, 7.50, 'paid');
"""
ORDERS = "SELECT id, customer_id, total, status FROM orders ORDER BY id"
CUSTOMERS = "SELECT id, name FROM customers ORDER BY id"
ANSI = re.compile(r"\x1b\[")

runner = CliRunner()
#: What makes Rich colour output that is not a terminal (or not colour one that is).
COLOUR_SETTINGS = ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")


async def cli(*args: str, input: str | None = None, **env: str | None) -> Result:
    """``agentcow ARGS`` in a thread (each command runs its own event loop), with no
    colour setting of the caller's environment (``env`` may give one)."""
    env = {**dict.fromkeys(COLOUR_SETTINGS), **env}
    return await asyncio.to_thread(
        runner.invoke, app, list(args), input=input, env=env, catch_exceptions=False
    )


def one_error_line(result: Result, code: int, *fragments: str) -> str:
    """The command failed with ``code`` and said why on one line of stderr."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentcow: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


class Shop:
    """A session of four operations: a new customer, an order for it (depends on the
    first), a changed total, a deleted order."""

    def __init__(self, conn: Any, dsn: str) -> None:
        self.conn = conn
        self.dsn = dsn
        self.session = new_id()
        self.ops: list[uuid.UUID] = []

    async def write(self, sql: str, operation: uuid.UUID | None = None) -> uuid.UUID:
        async with session(self.conn, self.session, operation or new_id()) as op:
            await self.conn.execute(sql)
        assert op is not None
        if op not in self.ops:
            self.ops.append(op)
        return op

    async def run(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        return await cli(*args, "--dsn", self.dsn, input=input, **env)

    async def fingerprint(self, *ops: uuid.UUID) -> str:
        picked = ["--ops", ",".join(map(str, ops))] if ops else []
        document = as_json(await self.run("diff", str(self.session), *picked, "--json"))
        return str(document["fingerprint"])


@pytest_asyncio.fixture(loop_scope="session")
async def shop(conn: Any, database: TestDatabase) -> Shop:
    await make_cow(conn, SHOP, "customers", "orders")
    shop = Shop(conn, database.owner_dsn)
    await shop.write("INSERT INTO customers VALUES (3, 'Cy')")
    await shop.write("INSERT INTO orders VALUES (12, 3, 1.25, 'new')")
    await shop.write("UPDATE orders SET total = 9.99 WHERE id = 10")
    await shop.write("DELETE FROM orders WHERE id = 11")
    return shop


@pytest_asyncio.fixture(loop_scope="session")
async def plain_copy(pg_server: ServerInfo, database: TestDatabase) -> AsyncIterator[Any]:
    """A database with the shop's tables as plain tables (no kit), for the SQL patch."""
    name = f"{database.name}_plain"
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE} TEMPLATE template0')
        plain = await asyncpg.connect(database.owner_dsn.replace(database.name, name))
        try:
            await plain.execute(SHOP)
            yield plain
        finally:
            await plain.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# ---------------------------------------------------------------------------------------
# ops, deps
# ---------------------------------------------------------------------------------------


async def test_ops_lists_operations_in_order(shop: Shop) -> None:
    listed = as_json(await shop.run("ops", str(shop.session), "--json"))
    assert [item["operation_id"] for item in listed] == [str(op) for op in shop.ops]
    assert [item["position"] for item in listed] == [1, 2, 3, 4]
    assert [(i["tables"], i["inserted"], i["updated"], i["deleted"]) for i in listed] == [
        (["customers"], 1, 0, 0),
        (["orders"], 1, 0, 0),
        (["orders"], 0, 1, 0),
        (["orders"], 0, 0, 1),
    ]
    human = ok(await shop.run("ops", str(shop.session))).stdout
    for op in shop.ops:
        assert str(op) in human  # whole ids: what --ops takes


async def test_deps_names_operations_by_place_and_short_id(shop: Shop) -> None:
    first, second = shop.ops[:2]
    arcs = as_json(await shop.run("deps", str(shop.session), "--json"))
    assert arcs == [
        {
            "operation_id": str(second),
            "position": 2,
            "depends_on": str(first),
            "depends_on_position": 1,
        }
    ]
    human = ok(await shop.run("deps", str(shop.session))).stdout
    assert f"#2 {str(second)[:8]}  depends on  #1 {str(first)[:8]}" in human


async def test_a_session_without_dependencies(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, SHOP, "customers", "orders")
    alone = Shop(conn, database.owner_dsn)
    await alone.write("UPDATE orders SET total = 1 WHERE id = 10")
    assert as_json(await alone.run("deps", str(alone.session), "--json")) == []
    assert (
        "no operation depends on another" in ok(await alone.run("deps", str(alone.session))).stdout
    )


# ---------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------


async def test_diff_json_is_the_changesets_document(shop: Shop) -> None:
    document = as_json(await shop.run("diff", str(shop.session), "--format", "json"))
    same = as_json(await shop.run("diff", str(shop.session), "--json"))
    assert document == same
    expected = await ac.diff(ex(shop.conn), shop.session)
    assert document == json.loads(expected.to_json())
    assert document["summary"] == {"INSERT": 2, "UPDATE": 1, "DELETE": 1}


async def test_diff_plain_and_terminal(shop: Shop) -> None:
    fingerprint = await shop.fingerprint()
    plain = ok(await shop.run("diff", str(shop.session), "--format", "plain")).stdout
    assert not ANSI.search(plain)
    assert f"fingerprint {fingerprint}" in plain
    assert "~ id=10  total: 5.00 → 9.99" in plain
    assert "- id=11" in plain
    hint = f"agentcow commit {shop.session} --schema public --expect {fingerprint}"
    assert hint in plain
    # Not a terminal under the runner: the default is plain text.
    assert ok(await shop.run("diff", str(shop.session))).stdout == plain
    coloured = ok(await shop.run("diff", str(shop.session), "--format", "terminal")).stdout
    assert ANSI.search(coloured)
    assert fingerprint in coloured


async def test_diff_limit_shortens_inserts_never_deletes(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, SHOP, "customers", "orders")
    many = Shop(conn, database.owner_dsn)
    await many.write("INSERT INTO orders SELECT g, 1, 1, 'new' FROM generate_series(100, 104) g")
    await many.write("DELETE FROM orders WHERE id IN (10, 11)")
    shown = ok(await many.run("diff", str(many.session), "--limit", "2")).stdout
    assert shown.count("\n  + ") == 2 and "… 3 more insert(s) of orders" in shown
    assert shown.count("\n  - ") == 2


async def test_diff_sql_applied_to_a_plain_copy_gives_what_the_commit_gives(
    shop: Shop, plain_copy: Any
) -> None:
    fingerprint = await shop.fingerprint()
    patch = ok(await shop.run("diff", str(shop.session), "--format", "sql")).stdout
    assert f"fingerprint '{fingerprint}'" in patch
    await plain_copy.execute(patch)
    ok(await shop.run("commit", str(shop.session), "--expect", fingerprint))
    assert await fetch(plain_copy, ORDERS) == await fetch(shop.conn, ORDERS)
    assert await fetch(plain_copy, CUSTOMERS) == await fetch(shop.conn, CUSTOMERS)


async def test_diff_of_chosen_operations_adds_what_they_depend_on(shop: Shop) -> None:
    first, second = shop.ops[:2]
    document = as_json(await shop.run("diff", str(shop.session), "--op", str(second), "--json"))
    assert set(document["operation_ids"]) == {str(first), str(second)}
    assert document["summary"] == {"INSERT": 2, "UPDATE": 0, "DELETE": 0}
    plain = ok(await shop.run("diff", str(shop.session), "--ops", str(second))).stdout
    assert f"--ops {second} --expect {document['fingerprint']}" in plain


async def test_diff_usage_errors(shop: Shop) -> None:
    one_error_line(
        await shop.run("diff", str(shop.session), "--json", "--format", "sql"), 2, "contradict"
    )
    one_error_line(await shop.run("diff", str(shop.session), "--ops", ","), 2, "no operation")


async def test_progress_on_a_terminal_only_and_never_with_json(shop: Shop) -> None:
    shown = ok(await shop.run("diff", str(shop.session), TTY_COMPATIBLE="1"))
    assert "reading the session's changes" in shown.stderr
    quiet = ok(await shop.run("diff", str(shop.session), "--json", TTY_COMPATIBLE="1"))
    assert quiet.stderr == ""
    json.loads(quiet.stdout)
    assert ok(await shop.run("diff", str(shop.session))).stderr == ""


# ---------------------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------------------


async def test_commit_expect_applies_what_was_reviewed(shop: Shop) -> None:
    fingerprint = await shop.fingerprint()
    done = as_json(await shop.run("commit", str(shop.session), "--expect", fingerprint, "--json"))
    assert done == {
        "session_id": str(shop.session),
        "operation_ids": None,
        "fingerprint": fingerprint,
        "rows": {"customers": 1, "orders": 3},
    }
    assert await fetch(shop.conn, ORDERS) == [
        (10, 1, Decimal("9.99"), "new"),
        (12, 3, Decimal("1.25"), "new"),
    ]
    assert as_json(await shop.run("ops", str(shop.session), "--json")) == []
    again = ok(await shop.run("commit", str(shop.session), "--yes"))
    assert "nothing to commit" in again.stdout


async def test_commit_human_output_reports_rows_per_table(shop: Shop) -> None:
    shown = ok(await shop.run("commit", str(shop.session), "--yes")).stdout
    assert "committed session" in shown and "4 row(s)" in shown
    assert re.search(r"customers\s*│\s*1", shown) and re.search(r"orders\s*│\s*3", shown)


async def test_commit_refuses_a_stale_fingerprint(shop: Shop) -> None:
    fingerprint = await shop.fingerprint()
    await shop.write("UPDATE orders SET total = 0 WHERE id = 12")  # after the review
    before = await fetch(shop.conn, ORDERS)
    one_error_line(
        await shop.run("commit", str(shop.session), "--expect", fingerprint),
        4,
        "differ from those reviewed",
        "nothing was applied",
    )
    refused = await shop.run("commit", str(shop.session), "--expect", fingerprint, "--json")
    assert refused.exit_code == 4 and refused.stdout == ""  # no half document for a parser
    assert await fetch(shop.conn, ORDERS) == before
    pasted = (await shop.fingerprint()).upper()  # as someone may copy it
    ok(await shop.run("commit", str(shop.session), "--expect", pasted))
    assert (12, 3, 0, "new") in await fetch(shop.conn, ORDERS)


async def test_a_write_under_a_reviewed_operation_refuses_its_commit(shop: Shop) -> None:
    third = shop.ops[2]
    fingerprint = await shop.fingerprint(third)
    await shop.write("UPDATE orders SET status = 'x' WHERE id = 10", third)
    one_error_line(
        await shop.run("commit", str(shop.session), "--ops", str(third), "--expect", fingerprint),
        4,
    )


async def test_commit_without_a_review_needs_yes_or_a_person(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await fetch(shop.conn, ORDERS)
    one_error_line(await shop.run("commit", str(shop.session)), 2, "--expect", "--yes")
    one_error_line(await shop.run("commit", str(shop.session), "--json"), 2, "--expect")
    monkeypatch.setattr(commit_module, "interactive", lambda: True)
    said_no = await shop.run("commit", str(shop.session), input="n\n")
    assert "fingerprint " + await shop.fingerprint() in said_no.stderr
    assert "Commit these changes?" in said_no.stderr
    assert said_no.exit_code == 4
    assert said_no.stderr.endswith("agentcow: error: not confirmed: nothing was committed\n")
    assert await fetch(shop.conn, ORDERS) == before
    said_yes = ok(await shop.run("commit", str(shop.session), input="y\n"))
    assert "orders" in said_yes.stdout
    assert await fetch(shop.conn, ORDERS) != before


async def test_commit_of_chosen_operations_takes_their_dependencies(shop: Shop) -> None:
    first, second, third, fourth = shop.ops
    fingerprint = await shop.fingerprint(second)
    done = as_json(
        await shop.run(
            "commit", str(shop.session), "--ops", str(second), "--expect", fingerprint, "--json"
        )
    )
    assert set(done["operation_ids"]) == {str(first), str(second)}
    assert done["rows"] == {"customers": 1, "orders": 1}
    assert (3, "Cy") in await fetch(shop.conn, CUSTOMERS)
    assert await fetch(shop.conn, ORDERS) == [
        (10, 1, Decimal("5.00"), "new"),
        (11, 2, Decimal("7.50"), "paid"),
        (12, 3, Decimal("1.25"), "new"),
    ]
    left = as_json(await shop.run("ops", str(shop.session), "--json"))
    assert [item["operation_id"] for item in left] == [str(third), str(fourth)]


# ---------------------------------------------------------------------------------------
# conflicts
# ---------------------------------------------------------------------------------------


async def test_conflicts_exit_4_and_commit_policies(shop: Shop) -> None:
    assert "no conflicts" in ok(await shop.run("conflicts", str(shop.session))).stdout
    assert as_json(await shop.run("conflicts", str(shop.session), "--json")) == []
    await shop.conn.execute("UPDATE orders SET status = 'shipped' WHERE id = 10")  # production
    found = await shop.run("conflicts", str(shop.session), "--json")
    assert found.exit_code == 4
    [conflict] = json.loads(found.stdout)
    assert conflict["table"] == "orders" and conflict["key"] == {"id": 10}
    assert conflict["kind"] == "updated" and conflict["mergeable"] is True
    human = await shop.run("conflicts", str(shop.session))
    assert human.exit_code == 4 and "1 conflict(s)" in human.stdout
    # Only the operations asked about
    fourth = shop.ops[3]
    assert (
        as_json(await shop.run("conflicts", str(shop.session), "--ops", str(fourth), "--json"))
        == []
    )

    fingerprint = await shop.fingerprint()
    before = await fetch(shop.conn, ORDERS)
    one_error_line(
        await shop.run("commit", str(shop.session), "--expect", fingerprint), 4, "orders"
    )
    assert await fetch(shop.conn, ORDERS) == before
    ok(
        await shop.run(
            "commit", str(shop.session), "--expect", fingerprint, "--on-conflict", "merge"
        )
    )
    assert (10, 1, Decimal("9.99"), "shipped") in await fetch(shop.conn, ORDERS)


# ---------------------------------------------------------------------------------------
# check, and commit under a policy
# ---------------------------------------------------------------------------------------


def policy_file(tmp_path: Path, text: str, name: str = "policy.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_check_blocks_and_commit_under_the_policy_is_refused(
    shop: Shop, tmp_path: Path
) -> None:
    policy = policy_file(
        tmp_path,
        '[tables.orders]\nmax_deleted = 0\nrules = ["new.total >= 2"]\n[[checks]]\n'
        'name = "no customer Cy"\nquery = "SELECT id FROM customers WHERE name = \'Cy\'"\n',
    )
    blocked = await shop.run("check", str(shop.session), "--policy", policy, "--json")
    assert blocked.exit_code == 4
    report = json.loads(blocked.stdout)
    assert report["decision"] == "block"
    assert report["fingerprint"] == await shop.fingerprint()
    assert report["limits"] == [
        {"table": "orders", "type": "DELETE", "limit": 0, "count": 1, "passed": False}
    ]
    assert [r["pk"] for r in report["failed_rules"]] == [{"id": 12}]
    assert report["checks"][0]["passed"] is False and report["checks"][0]["row_count"] == 1
    human = await shop.run("check", str(shop.session), "--policy", policy)
    assert human.exit_code == 4 and "BLOCK" in human.stdout
    assert "orders: 1 row(s) deleted, the limit is 0" in human.stdout

    before = await fetch(shop.conn, ORDERS)
    one_error_line(
        await shop.run(
            "commit", str(shop.session), "--yes", "--policy", policy, "--person-approved"
        ),
        4,
        "refused",
    )
    assert await fetch(shop.conn, ORDERS) == before
    # The third operation alone passes it.
    third = shop.ops[2]
    fine = await shop.run("check", str(shop.session), "--ops", str(third), "--policy", policy)
    assert ok(fine).stdout.startswith(" APPROVE ")


async def test_a_table_that_needs_a_person(shop: Shop, tmp_path: Path) -> None:
    policy = policy_file(tmp_path, '{"tables": {"customers": {"needs_person": true}}}', "p.json")
    held = await shop.run("check", str(shop.session), "--policy", policy, "--json")
    assert held.exit_code == 4 and json.loads(held.stdout)["decision"] == "needs_review"
    fingerprint = await shop.fingerprint()
    one_error_line(
        await shop.run("commit", str(shop.session), "--expect", fingerprint, "--policy", policy),
        4,
        "person",
    )
    ok(
        await shop.run(
            "commit",
            str(shop.session),
            "--expect",
            fingerprint,
            "--policy",
            policy,
            "--person-approved",
        )
    )
    assert (3, "Cy") in await fetch(shop.conn, CUSTOMERS)


async def test_bad_policy_files(shop: Shop, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    one_error_line(await shop.run("check", str(shop.session), "--policy", missing), 2, "nope.toml")
    bad = policy_file(tmp_path, "[tables.orders]\nmax_deletes = 1\n")
    one_error_line(await shop.run("check", str(shop.session), "--policy", bad), 2, "max_deletes")
    unknown = policy_file(tmp_path, "[tables.nosuch]\nmax_deleted = 1\n", "unknown.toml")
    one_error_line(await shop.run("check", str(shop.session), "--policy", unknown), 2, "nosuch")
    one_error_line(
        await shop.run("commit", str(shop.session), "--yes", "--policy", missing), 2, "nope.toml"
    )


# ---------------------------------------------------------------------------------------
# discard, undo
# ---------------------------------------------------------------------------------------


async def test_discard(shop: Shop) -> None:
    first, second, third, fourth = shop.ops
    one_error_line(await shop.run("discard", str(shop.session)), 2, "--yes")
    one_error_line(
        await shop.run("discard", str(shop.session), "--ops", str(first), "--yes"),
        4,
        str(second),
        "include_dependents",
    )
    done = as_json(
        await shop.run(
            "discard",
            str(shop.session),
            "--ops",
            str(first),
            "--include-dependents",
            "--yes",
            "--json",
        )
    )
    assert done["rows"] == {"customers": 1, "orders": 1}
    left = as_json(await shop.run("ops", str(shop.session), "--json"))
    assert [item["operation_id"] for item in left] == [str(third), str(fourth)]
    shown = ok(await shop.run("discard", str(shop.session), "--yes")).stdout
    assert "discarded from session" in shown and "2 row(s)" in shown
    assert as_json(await shop.run("ops", str(shop.session), "--json")) == []


async def test_discard_asks_on_a_terminal(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_module, "interactive", lambda: True)
    kept = await shop.run("discard", str(shop.session), input="n\n")
    assert kept.exit_code == 4 and "not confirmed" in kept.stderr
    assert len(as_json(await shop.run("ops", str(shop.session), "--json"))) == 4
    ok(await shop.run("discard", str(shop.session), input="y\n"))
    assert as_json(await shop.run("ops", str(shop.session), "--json")) == []


async def test_undo_after_commit_and_redo(shop: Shop) -> None:
    original = await fetch(shop.conn, ORDERS)
    ok(await shop.run("commit", str(shop.session), "--expect", await shop.fingerprint()))
    first, second = shop.ops[:2]
    one_error_line(await shop.run("undo", str(shop.session), "--ops", str(first)), 4, str(second))
    undone = as_json(
        await shop.run(
            "undo", str(shop.session), "--ops", str(first), "--include-dependents", "--json"
        )
    )
    assert set(undone["operation_ids"]) == {str(first), str(second)}
    assert undone["rows"] == {"customers": 1, "orders": 1}
    assert (3, "Cy") not in await fetch(shop.conn, CUSTOMERS)
    shown = ok(await shop.run("undo", str(shop.session))).stdout
    assert "undid 2 operation(s)" in shown
    assert await fetch(shop.conn, ORDERS) == original
    one_error_line(await shop.run("undo", str(shop.session)), 4, "undone already")
    redo = as_json(await shop.run("undo", undone["undo_session_id"], "--json"))
    assert redo["session_id"] == undone["undo_session_id"]
    assert await fetch(shop.conn, ORDERS) == [*original, (12, 3, Decimal("1.25"), "new")]


async def test_undo_conflicts(shop: Shop) -> None:
    ok(await shop.run("commit", str(shop.session), "--yes"))
    await shop.conn.execute("UPDATE orders SET total = 50 WHERE id = 10")
    one_error_line(await shop.run("undo", str(shop.session)), 4, "changed since the commit")
    ok(await shop.run("undo", str(shop.session), "--on-conflict", "overwrite"))
    assert (10, 1, Decimal("5.00"), "new") in await fetch(shop.conn, ORDERS)


# ---------------------------------------------------------------------------------------
# Refusals: one line, the documented exit code
# ---------------------------------------------------------------------------------------

READING: Sequence[Sequence[str]] = (
    ("ops",),
    ("deps",),
    ("diff",),
    ("conflicts",),
    ("commit", "--yes"),
    ("discard", "--yes"),
    ("undo",),
)


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
async def test_bad_and_unknown_ids(shop: Shop, command: Sequence[str]) -> None:
    name, *rest = command
    for hostile in ("not-a-uuid", "'; DROP TABLE orders; --", ""):
        one_error_line(await shop.run(name, hostile, *rest), 2, "session id")
    unknown = str(new_id())
    one_error_line(await shop.run(name, unknown, *rest), 5, unknown)
    if name in ("ops", "deps"):
        return
    one_error_line(
        await shop.run(name, str(shop.session), *rest, "--ops", "1,2"), 2, "operation id"
    )
    never = str(new_id())
    said = str(shop.session) if name == "undo" else never  # undo: nothing committed yet
    one_error_line(await shop.run(name, str(shop.session), *rest, "--op", never), 5, said)
    assert len(await fetch(shop.conn, ORDERS)) == 2


async def test_a_schema_without_cow_tables(shop: Shop) -> None:
    for schema in ("nosuch", "'; DROP TABLE orders; --", 'pub"lic'):
        one_error_line(
            await shop.run("diff", str(shop.session), "--schema", schema), 5, "no COW tables"
        )
    assert len(await fetch(shop.conn, ORDERS)) == 2


async def test_malformed_fingerprint(shop: Shop) -> None:
    for bad in ("abc", "x" * 64, (await shop.fingerprint()).upper() + "'"):
        one_error_line(await shop.run("commit", str(shop.session), "--expect", bad), 2, "64 hex")


async def test_check_of_an_unknown_session(shop: Shop, tmp_path: Path) -> None:
    policy = policy_file(tmp_path, "[tables.orders]\nmax_deleted = 5\n")
    one_error_line(await shop.run("check", str(new_id()), "--policy", policy), 5, "no session")


async def test_a_committed_session_is_known_but_empty(shop: Shop) -> None:
    ok(await shop.run("commit", str(shop.session), "--yes"))
    assert "no pending operations" in ok(await shop.run("ops", str(shop.session))).stdout
    assert as_json(await shop.run("diff", str(shop.session), "--json"))["diffs"] == []


async def test_no_database(shop: Shop, database: TestDatabase) -> None:
    session_id = str(shop.session)
    one_error_line(await cli("ops", session_id, AGENTCOW_DSN=None, DATABASE_URL=None), 2, "--dsn")
    via_env = await cli("ops", session_id, "--json", AGENTCOW_DSN=None, DATABASE_URL=shop.dsn)
    assert len(as_json(via_env)) == 4
    unreachable = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    one_error_line(await cli("diff", session_id, "--dsn", unreachable), 3)
    no_such_db = database.owner_dsn.replace(database.name, database.name + "_missing")
    one_error_line(await cli("diff", session_id, "--dsn", no_such_db), 3)


async def test_a_database_without_the_kit(pg_server: ServerInfo, database: TestDatabase) -> None:
    one_error_line(await cli("ops", str(new_id()), "--dsn", database.owner_dsn), 3, "deploy")


async def test_debug_shows_the_traceback(shop: Shop) -> None:
    unknown = str(new_id())
    shown = await shop.run("diff", unknown, "--debug")
    assert shown.exit_code == 5
    assert "Traceback" in shown.stderr and shown.stderr.rstrip().splitlines()[-1].startswith(
        "agentcow: error: "
    )


# ---------------------------------------------------------------------------------------
# Tenants, cascades
# ---------------------------------------------------------------------------------------


async def test_check_and_commit_of_a_tenant_bound_session(
    conn: Any, database: TestDatabase, tmp_path: Path
) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE notes (id int PRIMARY KEY, tenant_id int NOT NULL, body text);"
        "INSERT INTO notes VALUES (1, 7, 'a'), (2, 8, 'b');",
    )
    await ac.enable_cow(executor, "notes", tenant_column="tenant_id", layout=LAYOUT)
    bound = Shop(conn, database.owner_dsn)
    async with conn.transaction():
        await ac.apply_cow_variables(executor, bound.session, new_id(), tenant_id=7)
        await conn.execute("UPDATE notes SET body = 'z'")  # the tenant's rows only
    policy = policy_file(
        tmp_path, '[[checks]]\nname = "one body"\nquery = "SELECT FROM notes WHERE body = \'a\'"\n'
    )
    without = await bound.run("check", str(bound.session), "--policy", policy)
    line = one_error_line(without, 1, "bound to another tenant")
    assert line.startswith("agentcow: error: session ")  # the kit's prefix said once
    judged = await bound.run("check", str(bound.session), "--policy", policy, "--tenant", "7")
    assert (
        as_json(
            await bound.run(
                "check", str(bound.session), "--policy", policy, "--tenant", "7", "--json"
            )
        )["decision"]
        == "approve"
    )
    assert ok(judged).stdout.startswith(" APPROVE ")
    fingerprint = await bound.fingerprint()
    ok(
        await bound.run(
            "commit",
            str(bound.session),
            "--expect",
            fingerprint,
            "--policy",
            policy,
            "--tenant",
            "7",
        )
    )
    assert await fetch(conn, "SELECT id, body FROM notes ORDER BY id") == [(1, "z"), (2, "b")]


CASCADING = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY,
                     customer_id int NOT NULL REFERENCES customers ON DELETE CASCADE);
INSERT INTO customers VALUES (1, 'Ada');
"""


async def test_cascades_to_unseen_rows_need_allow_cascades(
    conn: Any, database: TestDatabase
) -> None:
    await make_cow(conn, CASCADING, "customers", "orders")
    cascade = Shop(conn, database.owner_dsn)
    await cascade.write("DELETE FROM customers WHERE id = 1")
    await conn.execute("INSERT INTO orders VALUES (100, 1)")  # production, meanwhile
    fingerprint = await cascade.fingerprint()
    one_error_line(
        await cascade.run("commit", str(cascade.session), "--expect", fingerprint),
        4,
        "cascade",
    )
    assert await fetch(conn, "SELECT id FROM orders") == [(100,)]
    ok(
        await cascade.run(
            "commit", str(cascade.session), "--expect", fingerprint, "--allow-cascades"
        )
    )
    assert await fetch(conn, "SELECT id FROM orders") == []


async def test_an_undo_that_would_cascade_needs_allow_cascades(
    conn: Any, database: TestDatabase
) -> None:
    await make_cow(conn, CASCADING, "customers", "orders")
    added = Shop(conn, database.owner_dsn)
    await added.write("INSERT INTO customers VALUES (2, 'Bob')")
    ok(await added.run("commit", str(added.session), "--yes"))
    await conn.execute("INSERT INTO orders VALUES (200, 2)")  # production uses the new row
    one_error_line(await added.run("undo", str(added.session)), 4, "cascade")
    ok(await added.run("undo", str(added.session), "--allow-cascades"))
    assert await fetch(conn, "SELECT id FROM customers") == [(1,)]
    assert await fetch(conn, "SELECT id FROM orders") == []


async def test_as_a_process(shop: Shop) -> None:
    """``python -m agentcow``: the one line and exit code reach a real process's stderr,
    and a real pipe gets the plain dashboard."""
    root = str(Path(__file__).resolve().parent.parent)

    async def agentcow(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agentcow",
            *args,
            "--dsn",
            shop.dsn,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **{k: v for k, v in os.environ.items() if k not in COLOUR_SETTINGS},
                "PYTHONPATH": root,
            },
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    unknown = str(new_id())
    code, out, err = await agentcow("diff", unknown)
    assert (code, out) == (5, "")
    assert (
        err == f"agentcow: error: no session {unknown}: it holds no changes in schema "
        "public and the registry has no record of it that you may read\n"
    )
    code, out, err = await agentcow("diff", str(shop.session))
    assert code == 0 and err == "" and not ANSI.search(out)
    assert f"--expect {await shop.fingerprint()}" in out
