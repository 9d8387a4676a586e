"""Policies: limits, forbidden deletes, tables that need a person, row rules in SQL over old
and new, checks run in the session's state, models, and the decision that refuses a commit."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import pytest
from pydantic import Field

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.review import (
    Decision,
    DiffType,
    ModelRegistry,
    Policy,
    SafeModel,
    diff,
    require_approved,
)
from tests.conftest import TestDatabase
from tests.helpers import fetch, make_cow, new_id, session

SHOP = """
CREATE TABLE orders (
    id int PRIMARY KEY,
    amount numeric(10, 2),
    status text NOT NULL DEFAULT 'new'
);
CREATE TABLE items (
    id int PRIMARY KEY,
    order_id int NOT NULL REFERENCES orders ON DELETE CASCADE,
    qty int NOT NULL
);
INSERT INTO orders VALUES (1, 10, 'new'), (2, 20, 'shipped'), (3, 30, 'new');
INSERT INTO items VALUES (1, 1, 1), (2, 2, 1), (3, 3, 1);
"""

NO_ORDER_WITHOUT_ITEMS = (
    "SELECT o.id FROM orders o WHERE NOT EXISTS (SELECT FROM items i WHERE i.order_id = o.id)"
)


async def shop(conn: Any) -> Any:
    return await make_cow(conn, SHOP, "orders", "items")


async def write(conn: Any, sid: uuid.UUID, *statements: str) -> uuid.UUID:
    """Run ``statements`` as one operation of session ``sid``; its id."""
    async with session(conn, sid) as op:
        for statement in statements:
            await conn.execute(statement)
    assert op is not None
    return op


async def base_orders(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, "SELECT id, amount::text, status FROM orders ORDER BY id")


# ---------------------------------------------------------------------------------------
# Row rules
# ---------------------------------------------------------------------------------------


async def test_row_rules_pass_and_fail_per_row(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(
        conn,
        sid,
        "INSERT INTO orders VALUES (4, -10, 'new')",  # passes new.amount >= -50
        "UPDATE orders SET amount = -100 WHERE id = 1",  # fails it
        "UPDATE orders SET status = 'lost' WHERE id = 2",  # fails old.status <> 'shipped'
        "DELETE FROM items WHERE order_id = 3",
        "DELETE FROM orders WHERE id = 3",  # passes it
    )
    policy = Policy.from_mapping(
        {"tables": {"orders": {"rules": ["new.amount >= -50", "old.status <> 'shipped'"]}}}
    )
    changes = await diff(executor, sid)
    before = await base_orders(conn)
    report = await policy.evaluate(executor, changes)
    results = {(r.pk["id"], r.diff_type, r.rule): r.passed for r in report.rules}
    assert results == {
        # new.amount applies to inserts and updates, old.status to updates and deletes
        (4, DiffType.INSERT, "new.amount >= -50"): True,
        (1, DiffType.UPDATE, "new.amount >= -50"): False,
        (1, DiffType.UPDATE, "old.status <> 'shipped'"): True,
        (2, DiffType.UPDATE, "new.amount >= -50"): True,
        (2, DiffType.UPDATE, "old.status <> 'shipped'"): False,
        (3, DiffType.DELETE, "old.status <> 'shipped'"): True,
    }
    assert report.decision is Decision.BLOCK
    assert report.reasons == [
        "orders: 1 row(s) fail rule 'new.amount >= -50'",
        "orders: 1 row(s) fail rule \"old.status <> 'shipped'\"",
    ]
    with pytest.raises(ac.PolicyViolationError, match="refused") as refused:
        require_approved(report)
    assert refused.value.report is report
    assert await base_orders(conn) == before
    # The evaluation left nothing behind: the session is as it was, and commits.
    assert (await diff(executor, sid)).fingerprint == changes.fingerprint


async def test_old_and_new_are_the_stored_and_the_session_rows(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(
        conn,
        sid,
        "UPDATE orders SET amount = amount + 5 WHERE id = 1",
        "UPDATE orders SET amount = amount - 5 WHERE id = 2",
        "UPDATE orders SET amount = NULL WHERE id = 3",
    )
    policy = Policy.from_mapping(
        {
            "tables": {
                "orders": {
                    "rules": [{"name": "no discount", "predicate": "new.amount >= old.amount"}]
                }
            }
        }
    )
    report = await policy.evaluate(executor, await diff(executor, sid))
    # NULL is no pass: a rule holds only when its predicate is true
    assert {r.pk["id"]: r.passed for r in report.rules} == {1: True, 2: False, 3: False}
    assert {r.rule for r in report.rules} == {"no discount"}
    assert {r.diff_type for r in report.rules} == {DiffType.UPDATE}


async def test_a_rule_applies_to_the_kinds_it_names(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(
        conn,
        sid,
        "INSERT INTO orders VALUES (5, 1, 'new')",
        "UPDATE orders SET status = 'paid' WHERE id = 1",
    )
    policy = Policy.from_mapping(
        {"tables": {"orders": {"rules": [{"predicate": "new.status = 'new'", "on": ["INSERT"]}]}}}
    )
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert [(r.pk, r.passed) for r in report.rules] == [({"id": 5}, True)]
    assert report.decision is Decision.APPROVE
    require_approved(report)


async def test_rules_on_keys_of_every_type_and_append_only_tables(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE events (source text, at timestamptz, ref uuid, n numeric,"
        " PRIMARY KEY (source, at, ref)); "
        "CREATE TABLE log (line text NOT NULL, level int)",
        "events",
        "log",
    )
    ref = uuid.UUID("6f1c1e2a-0000-4000-8000-000000000001")
    await conn.execute(
        "INSERT INTO events VALUES ('a', '2026-01-01 00:00:00.000001+00', $1, 1)", ref
    )
    sid = new_id()
    await write(
        conn,
        sid,
        "UPDATE events SET n = 7",
        "INSERT INTO events VALUES ('b''x', '2026-01-02 12:00+05', gen_random_uuid(), 0.5)",
        "INSERT INTO log VALUES ('ok', 1), ('bad', 9), ('also ok', 2)",
    )
    policy = Policy.from_mapping(
        {
            "tables": {
                "events": {"rules": ["new.n > 1"]},
                "log": {"rules": ["new.level < 5", "old IS NULL"]},
            }
        }
    )
    report = await policy.evaluate(executor, await diff(executor, sid))
    events = [(r.pk["source"], r.passed) for r in report.rules if r.table == "events"]
    assert sorted(events) == [("a", True), ("b'x", False)]
    (updated,) = [r for r in report.rules if r.table == "events" and r.pk["source"] == "a"]
    assert updated.pk == {
        "source": "a",
        "at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        "ref": ref,
    }
    # rows of a table without a key, in write order; "old" is no row
    log = [(r.rule, r.passed) for r in report.rules if r.table == "log"]
    assert log == [
        ("new.level < 5", True),
        ("new.level < 5", False),
        ("new.level < 5", True),
    ]  # "old IS NULL" names old only: it applies to no insert


# ---------------------------------------------------------------------------------------
# Limits, deletes, people, and the decision
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "statement"),
    [
        ("max_inserted", "INSERT INTO orders VALUES (10 + {n}, 1, 'new')"),
        ("max_updated", "UPDATE orders SET amount = 0 WHERE id = {n}"),
        ("max_deleted", "DELETE FROM orders WHERE id = {n}"),
    ],
)
async def test_limits_at_the_boundary(conn: Any, limit: str, statement: str) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, *(statement.format(n=n) for n in (1, 2)))
    at_limit = Policy.from_mapping({"tables": {"orders": {limit: 2}}})
    report = await at_limit.evaluate(executor, await diff(executor, sid, table="orders"))
    assert report.decision is Decision.APPROVE
    assert [(r.count, r.limit, r.passed) for r in report.limits] == [(2, 2, True)]
    await write(conn, sid, statement.format(n=3))
    report = await at_limit.evaluate(executor, await diff(executor, sid, table="orders"))
    assert report.decision is Decision.BLOCK
    assert [(r.count, r.limit, r.passed) for r in report.limits] == [(3, 2, False)]
    assert len(report.reasons) == 1 and "the limit is 2" in report.reasons[0]


async def test_deletes_forbidden(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    policy = Policy.from_mapping({"tables": {"orders": {"forbid_deletes": True}}})
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.decision is Decision.APPROVE and report.forbidden_deletes == []
    await write(conn, sid, "DELETE FROM orders WHERE id = 2")  # its items cascade
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.decision is Decision.BLOCK
    assert [row.pk for row in report.forbidden_deletes] == [{"id": 2}]
    assert report.reasons == ["orders: deletes are forbidden (1 row(s))"]


async def test_tables_that_need_a_person(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    policy = Policy.from_mapping({"tables": {"orders": {"needs_person": True}}})
    await write(conn, sid, "UPDATE items SET qty = 2 WHERE id = 1")
    assert (await policy.evaluate(executor, await diff(executor, sid))).approved
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.decision is Decision.NEEDS_REVIEW
    assert report.needs_person == ["orders"]
    with pytest.raises(ac.PersonRequiredError, match="needs a person"):
        require_approved(report)
    require_approved(report, person_approved=True)


@pytest.mark.parametrize(
    ("tables", "decision"),
    [
        ({}, Decision.APPROVE),
        ({"orders": {"needs_person": True}}, Decision.NEEDS_REVIEW),
        ({"orders": {"needs_person": True}, "items": {"max_updated": 0}}, Decision.BLOCK),
        ({"orders": {"needs_person": True, "rules": ["new.amount < 0"]}}, Decision.BLOCK),
        ({"items": {"needs_person": True, "rules": ["new.qty > 0"]}}, Decision.NEEDS_REVIEW),
    ],
)
async def test_block_beats_needs_review_beats_approve(
    conn: Any, tables: dict[str, Any], decision: Decision
) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(
        conn,
        sid,
        "UPDATE orders SET amount = 1 WHERE id = 1",
        "UPDATE items SET qty = 5 WHERE id = 1",
    )
    report = await Policy.from_mapping({"tables": tables}).evaluate(
        executor, await diff(executor, sid)
    )
    assert report.decision is decision
    if decision is Decision.BLOCK:
        with pytest.raises(ac.PolicyViolationError) as refused:
            require_approved(report, person_approved=True)
        assert not isinstance(refused.value, ac.PersonRequiredError)


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


async def test_checks_see_the_session_and_only_the_chosen_operations(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    order = await write(conn, sid, "INSERT INTO orders VALUES (7, 70, 'new')")
    await write(conn, sid, "INSERT INTO items VALUES (7, 7, 3)")
    await write(conn, sid, "DELETE FROM items WHERE id = 1")
    policy = Policy.from_mapping(
        {"checks": [{"name": "no order without items", "query": NO_ORDER_WITHOUT_ITEMS}]}
    )
    # The whole session: order 7 has its item, order 1 lost its only one.
    report = await policy.evaluate(executor, await diff(executor, sid))
    (check,) = report.checks
    assert (check.name, check.rows, check.row_count) == ("no order without items", [{"id": 1}], 1)
    assert report.decision is Decision.BLOCK
    assert report.reasons == ["check 'no order without items' returned 1 row(s)"]
    # The first operation alone: order 7 has no item yet, order 1 still has its own.
    report = await policy.evaluate(executor, await diff(executor, sid, operation_ids=[order]))
    assert [c.rows for c in report.checks] == [[{"id": 7}]]
    # Production itself is fine.
    assert await fetch(conn, NO_ORDER_WITHOUT_ITEMS) == []


async def test_a_check_shows_its_first_rows_and_counts_them_all(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "DELETE FROM items")
    policy = Policy.from_mapping(
        {"checks": [{"name": "items", "query": NO_ORDER_WITHOUT_ITEMS + " ORDER BY 1;", "show": 2}]}
    )
    (check,) = (await policy.evaluate(executor, await diff(executor, sid))).checks
    assert (check.rows, check.row_count, check.passed) == ([{"id": 1}, {"id": 2}], 3, False)


async def test_checks_cannot_write(conn: Any) -> None:
    """A check runs read-only and rolled back: a function it calls cannot write."""
    executor = await shop(conn)
    await conn.execute(
        "CREATE TABLE marks (n int); CREATE FUNCTION mark() RETURNS int LANGUAGE sql "
        "AS 'INSERT INTO marks VALUES (1) RETURNING n'"
    )
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    policy = Policy.from_mapping({"checks": [{"name": "sneaky", "query": "SELECT mark()"}]})
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await policy.evaluate(executor, await diff(executor, sid))
    assert await fetch(conn, "SELECT count(*) FROM marks") == [(0,)]
    assert not conn.is_in_transaction()


async def test_inside_the_callers_transaction(conn: Any) -> None:
    """In the caller's transaction the evaluation takes a savepoint and gives it back as it
    was: writable, out of the session."""
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "DELETE FROM items WHERE id = 1")
    changes = await diff(executor, sid)
    policy = Policy.from_mapping(
        {"checks": [{"name": "items", "query": NO_ORDER_WITHOUT_ITEMS}]},
    )
    async with conn.transaction():
        report = await policy.evaluate(executor, changes)
        assert [c.rows for c in report.checks] == [[{"id": 1}]]
        assert await conn.fetchval("SHOW transaction_read_only") == "off"
        assert await conn.fetchval("SELECT current_setting('app.session_id', true)") in (None, "")
        assert await fetch(conn, NO_ORDER_WITHOUT_ITEMS) == []
        await conn.execute("UPDATE orders SET status = 'seen' WHERE id = 3")
    assert (await base_orders(conn))[2] == (3, "30.00", "seen")
    # A failing check inside the caller's transaction leaves it usable too.
    failing = Policy.from_mapping({"checks": [{"name": "boom", "query": "SELECT 1 / 0"}]})
    async with conn.transaction():
        with pytest.raises(asyncpg.DivisionByZeroError):
            await failing.evaluate(executor, changes)
        assert await conn.fetchval("SELECT 1") == 1


# ---------------------------------------------------------------------------------------
# Races, models, and what a policy may say
# ---------------------------------------------------------------------------------------


async def test_a_write_after_the_diff_is_not_judged_as_reviewed(conn: Any) -> None:
    """An agent racing the reviewer cannot have the rules judge other rows than the diff
    shows: the evaluation refuses once the chosen versions changed."""
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = -100 WHERE id = 1")
    reviewed = await diff(executor, sid)
    await write(conn, sid, "UPDATE orders SET amount = 10 WHERE id = 1")
    policy = Policy.from_mapping({"tables": {"orders": {"rules": ["new.amount >= 0"]}}})
    with pytest.raises(ac.ReviewChangedError, match="diff again"):
        await policy.evaluate(executor, reviewed)
    # Limits and models need no database: a policy without rules or checks judges the
    # changeset as it is.
    report = await Policy.from_mapping({"tables": {"orders": {"max_updated": 1}}}).evaluate(
        executor, reviewed
    )
    assert report.approved and report.fingerprint == reviewed.fingerprint


async def test_models_are_part_of_the_policy(conn: Any) -> None:
    executor = await shop(conn)
    registry = ModelRegistry()

    class Order(SafeModel):
        __registry__ = registry
        __table_name__ = "orders"
        id: int
        amount: Annotated[Decimal, Field(ge=0)] | None
        status: str

    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = -1 WHERE id = 1")
    changes = await diff(executor, sid)
    report = await Policy().evaluate(executor, changes, registry=registry)
    assert report.decision is Decision.BLOCK
    assert [(bad.row.pk, bad.result.errors[0]["loc"]) for bad in report.invalid_rows] == [
        ({"id": 1}, ("amount",))
    ]
    assert report.reasons == ["orders: 1 row(s) fail its model"]
    unchecked = Policy(validate_models=False)
    assert (await unchecked.evaluate(executor, changes, registry=registry)).approved


@pytest.mark.parametrize(
    "predicate",
    [
        "new.amount > 0); DROP TABLE orders; --",
        "true) OR (true",
        "new.amount > 0; SELECT 1",
        "1 FROM orders",
        "new.amount AS a",
        "new.amount, old.amount",
        "(SELECT 1) UNION SELECT 2",
        "EXISTS (WITH d AS (DELETE FROM orders RETURNING id) SELECT FROM d)",
        "",
    ],
)
def test_a_rule_that_is_not_one_expression_is_refused(predicate: str) -> None:
    with pytest.raises(ac.InvalidPolicyError, match=r"tables\.orders\.rules"):
        Policy.from_mapping({"tables": {"orders": {"rules": [predicate]}}})


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM orders",
        "WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d",
        "SELECT * INTO stolen FROM orders",
        "SELECT 1; DROP TABLE orders",
        "SELECT id FROM orders FOR UPDATE",
        "SELECT 1) AS q; DROP TABLE orders; SELECT (1",
        "new.amount > 0",
    ],
)
def test_a_check_that_is_not_one_query_is_refused(query: str) -> None:
    with pytest.raises(ac.InvalidPolicyError, match=r"checks\.0"):
        Policy.from_mapping({"checks": [{"name": "c", "query": query}]})


async def test_a_policy_for_tables_that_are_not_there_is_refused(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    policy = Policy.from_mapping({"tables": {"order": {"forbid_deletes": True}}})
    with pytest.raises(ac.PolicyError, match="order"):
        await policy.evaluate(executor, await diff(executor, sid))


def test_loading_a_policy() -> None:
    policy = Policy.from_toml(
        '''
        [tables.orders]
        max_deleted = 0
        needs_person = true
        rules = [
            "new.amount >= -50",
            { name = "shipped stays", predicate = "old.status <> 'shipped'", on = ["UPDATE"] },
        ]

        [[checks]]
        name = "no order without items"
        query = """
            SELECT o.id FROM orders o  -- every order has an item
            WHERE NOT EXISTS (SELECT FROM items i WHERE i.order_id = o.id)
        """
        '''
    )
    orders = policy.table("orders")
    assert (orders.max_deleted, orders.needs_person, orders.forbid_deletes) == (0, True, False)
    assert [(r.name, r.on) for r in orders.rules] == [
        ("new.amount >= -50", (DiffType.INSERT, DiffType.UPDATE)),
        ("shipped stays", (DiffType.UPDATE,)),
    ]
    assert [c.name for c in policy.checks] == ["no order without items"]
    assert policy.table("items") == policy.table("anything")  # no rules of its own
    for bad, where in [
        ({"tables": {"orders": {"max_deleted": -1}}}, "max_deleted"),
        ({"tables": {"orders": {"max_delete": 1}}}, "max_delete"),
        ({"tables": {"orders": {"rules": [{"predicate": "true", "on": []}]}}}, "on"),
        ({"tables": {"orders": {"rules": [{"predicate": "true", "on": ["UPSERT"]}]}}}, "on"),
        ({"checks": [{"query": "SELECT 1"}]}, "name"),
        ({"rules": []}, "rules"),
    ]:
        with pytest.raises(ac.InvalidPolicyError, match=where):
            Policy.from_mapping(bad)
    with pytest.raises(ac.InvalidPolicyError, match="TOML"):
        Policy.from_toml("tables = [")


def test_loading_a_policy_file(tmp_path: Path) -> None:
    as_dict = {"tables": {"orders": {"forbid_deletes": True, "rules": ["new.amount > 0"]}}}
    (tmp_path / "policy.json").write_text(json.dumps(as_dict))
    (tmp_path / "policy.toml").write_text(
        '[tables.orders]\nforbid_deletes = true\nrules = ["new.amount > 0"]\n'
    )
    expected = Policy.from_mapping(as_dict)
    assert Policy.from_file(tmp_path / "policy.json") == expected
    assert Policy.from_file(str(tmp_path / "policy.toml")) == expected
    (tmp_path / "policy.yaml").write_text("tables: {}")
    with pytest.raises(ac.InvalidPolicyError, match=r"\.toml or \.json"):
        Policy.from_file(tmp_path / "policy.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ac.InvalidPolicyError, match="JSON"):
        Policy.from_file(tmp_path / "broken.json")


async def test_rules_use_pg_catalog_operators_only(conn: Any) -> None:
    """An operator closer to a rule's operands than pg_catalog's, created in a schema on the
    reviewer's search_path (by an agent that may create there), is never called."""
    executor = await shop(conn)
    await conn.execute(
        "CREATE FUNCTION public.hijack(numeric, int) RETURNS boolean LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'hijacked'; END $$; "
        "CREATE OPERATOR public.>= (LEFTARG = numeric, RIGHTARG = int, FUNCTION = public.hijack)"
    )
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    with pytest.raises(asyncpg.RaiseError, match="hijacked"):
        await fetch(conn, "SELECT amount >= -50 FROM orders")
    policy = Policy.from_mapping({"tables": {"orders": {"rules": ["new.amount >= -50"]}}})
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert [r.passed for r in report.rules] == [True]


async def test_a_session_bound_to_a_tenant_is_entered_with_it(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(executor, sid, new_id(), tenant_id=7)
        await conn.execute("DELETE FROM items WHERE id = 1")
    changes = await diff(executor, sid)
    policy = Policy.from_mapping({"checks": [{"name": "items", "query": NO_ORDER_WITHOUT_ITEMS}]})
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="bound to"):
        await policy.evaluate(executor, changes)
    report = await policy.evaluate(executor, changes, tenant_id=7)
    assert [c.rows for c in report.checks] == [[{"id": 1}]]


async def test_a_pool_cannot_hold_the_evaluation(conn: Any, database: TestDatabase) -> None:
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "DELETE FROM items WHERE id = 1")
    changes = await diff(executor, sid)
    policy = Policy.from_mapping({"checks": [{"name": "items", "query": NO_ORDER_WITHOUT_ITEMS}]})
    async with asyncpg.create_pool(database.owner_dsn, min_size=1, max_size=2) as pool:
        with pytest.raises(ac.PolicyError, match="pool"):
            await policy.evaluate(AsyncpgExecutor(pool), changes)


async def test_the_readme_policy(conn: Any) -> None:
    """The README's policy file loads and judges as the README says."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (toml,) = re.findall(r"^```toml\n(.*?)^```", readme, flags=re.DOTALL | re.M)
    policy = Policy.from_toml(toml)
    executor = await make_cow(
        conn,
        "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, total numeric);"
        "CREATE TABLE order_items (id int PRIMARY KEY, order_id int REFERENCES orders);"
        "INSERT INTO orders VALUES (1, 'shipped', 5); INSERT INTO order_items VALUES (1, 1)",
        "orders",
        "order_items",
    )
    sid = new_id()
    await write(conn, sid, "INSERT INTO orders VALUES (2, 'new', -60)")
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.reasons == [
        "orders: 1 row(s) fail rule 'new.total >= -50'",
        "check 'no order without items' returned 1 row(s)",
    ]
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET total = 6 WHERE id = 1")
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.reasons == ["orders: 1 row(s) fail rule 'shipped stays shipped'"]
    sid = new_id()
    await write(conn, sid, "DELETE FROM order_items")
    report = await policy.evaluate(executor, await diff(executor, sid))
    assert report.reasons == [
        "check 'no order without items' returned 1 row(s)",
        "order_items: deletes are forbidden (1 row(s))",
    ]


async def test_a_report_marks_the_rows_of_a_rendering(conn: Any) -> None:
    executor = await shop(conn)
    registry = ModelRegistry()

    class Item(SafeModel):
        __registry__ = registry
        __table_name__ = "items"
        id: int
        order_id: int
        qty: Annotated[int, Field(le=10)]

    sid = new_id()
    await write(
        conn,
        sid,
        "UPDATE orders SET amount = -100 WHERE id = 1",
        "UPDATE orders SET amount = 25 WHERE id = 2",
        "UPDATE items SET qty = 50 WHERE id = 3",
        "INSERT INTO orders VALUES (9, 1, 'new')",
    )
    changes = await diff(executor, sid)
    policy = Policy.from_mapping({"tables": {"orders": {"rules": ["new.amount >= old.amount"]}}})
    report = await policy.evaluate(executor, changes, registry=registry)
    text = changes.display(judgement=report)
    assert "FAIL id=1" in text and "PASS id=2" in text and "FAIL id=3" in text
    assert "PASS id=9" not in text and "FAIL id=9" not in text  # no rule applies to it
    assert "orders id=1: rule 'new.amount >= old.amount'" in text
    assert "items id=3: qty: Input should be less than or equal to 10" in text
    assert "BLOCKED" in text and "SAFE" not in text
    # Needing a person holds the commit back too; an approved report is SAFE.
    person = Policy.from_mapping({"tables": {"items": {"needs_person": True}}})
    text = changes.display(judgement=await person.evaluate(executor, changes))
    assert "BLOCKED" in text and "items: changes always need a person" in text
    text = changes.display(judgement=await Policy().evaluate(executor, changes))
    assert "SAFE" in text and "BLOCKED" not in text


async def test_a_write_during_the_evaluation_voids_it(conn: Any, second_conn: Any) -> None:
    """The fingerprint is read again after the rules and checks ran: an agent that writes
    while they run (here during a slow check) does not get a report of rows it changed."""
    executor = await shop(conn)
    sid = new_id()
    await write(conn, sid, "UPDATE orders SET amount = 0 WHERE id = 1")
    changes = await diff(executor, sid)
    slow = Policy.from_mapping(
        {"checks": [{"name": "slow", "query": "SELECT 1 WHERE pg_sleep(1)::text = 'x'"}]}
    )
    evaluation = asyncio.ensure_future(slow.evaluate(executor, changes))
    await asyncio.sleep(0.3)
    assert not evaluation.done()
    await write(second_conn, sid, "UPDATE orders SET amount = -100 WHERE id = 1")
    with pytest.raises(ac.ReviewChangedError):
        await evaluation
