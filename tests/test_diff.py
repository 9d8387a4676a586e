"""Row diffs of a session: what a commit would apply, typed as PostgreSQL types them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import agentcow as ac
from agentcow.review import DiffType, diff
from tests.helpers import fetch, make_cow, new_id, session

SHOP = """
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN money_amount AS numeric(10, 2);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int REFERENCES customers,
    total money_amount NOT NULL,
    status status NOT NULL DEFAULT 'new',
    placed_at timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00',
    due date,
    meta jsonb,
    tags text[],
    blob bytea,
    ref uuid,
    ratio double precision
);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');
INSERT INTO orders (id, customer_id, total, meta, tags) VALUES
    (10, 1, 5.00, '{"a": 1}', '{x}'), (11, 2, 7.50, NULL, NULL);
"""


async def shop(conn: Any) -> Any:
    return await make_cow(conn, SHOP, "customers", "orders")


async def test_kinds_and_values(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid) as op:
        await conn.execute("INSERT INTO customers VALUES (3, 'Cy')")
        await conn.execute(
            "INSERT INTO orders (id, customer_id, total, status, meta, tags, blob, ref, ratio, due)"
            " VALUES (12, 3, 1.25, 'paid', '{\"k\": [1, 2.5]}', '{a,b}', '\\x0102',"
            " '6f1c1e2a-0000-4000-8000-000000000001', 0.5, '2026-03-04')"
        )
        await conn.execute("UPDATE orders SET total = 9.99 WHERE id = 10")
        await conn.execute("DELETE FROM orders WHERE id = 11")
    changes = await diff(executor, sid)
    assert changes.summary == {"INSERT": 2, "UPDATE": 1, "DELETE": 1}
    assert not changes.is_empty
    by_key = {(d.table, tuple(d.pk.values())): d for d in changes.diffs}
    inserted = by_key[("orders", (12,))]
    assert inserted.diff_type is DiffType.INSERT and inserted.old is None
    assert inserted.operations == (op,)
    assert inserted.new == {
        "id": 12,
        "customer_id": 3,
        "total": Decimal("1.25"),
        "status": "paid",
        "placed_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "due": date(2026, 3, 4),
        "meta": {"k": [1, 2.5]},
        "tags": ["a", "b"],
        "blob": b"\x01\x02",
        "ref": uuid.UUID("6f1c1e2a-0000-4000-8000-000000000001"),
        "ratio": 0.5,
    }
    updated = by_key[("orders", (10,))]
    assert updated.diff_type is DiffType.UPDATE
    assert updated.changed_columns() == ["total"]
    assert updated.old is not None and updated.old["total"] == Decimal("5.00")
    assert updated.new is not None and updated.new["total"] == Decimal("9.99")
    assert updated.old["placed_at"].utcoffset() == timedelta(0)
    deleted = by_key[("orders", (11,))]
    assert deleted.diff_type is DiffType.DELETE and deleted.new is None
    assert deleted.old is not None and deleted.old["total"] == Decimal("7.50")
    # Every row the commit writes is in the diff, and only those.
    await ac.commit_cow_session_schema(executor, sid, expected=changes.fingerprint)
    assert await fetch(conn, "SELECT id, total FROM orders ORDER BY id") == [
        (10, Decimal("9.99")),
        (12, Decimal("1.25")),
    ]


async def test_no_change_is_no_diff(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO customers VALUES (5, 'gone')")
        await conn.execute("DELETE FROM customers WHERE id = 5")
        await conn.execute("UPDATE orders SET total = 6 WHERE id = 10")
        await conn.execute("UPDATE orders SET total = 5.00 WHERE id = 10")
    changes = await diff(executor, sid)
    assert changes.is_empty
    assert changes.summary == {"INSERT": 0, "UPDATE": 0, "DELETE": 0}
    assert changes.fingerprint


async def test_a_subset_shows_what_its_commit_applies(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid) as first:
        await conn.execute("INSERT INTO customers VALUES (3, 'Cy')")
    async with session(conn, sid) as second:
        await conn.execute("INSERT INTO orders (id, customer_id, total) VALUES (13, 3, 2)")
    async with session(conn, sid) as third:
        await conn.execute("UPDATE customers SET name = 'Ada L.' WHERE id = 1")
    assert first and second and third
    changes = await diff(executor, sid, operation_ids=[second])
    # The order needs its customer: the choice is closed over dependencies.
    assert set(changes.operation_ids or ()) == {first, second}
    assert sorted((d.table, d.diff_type.value) for d in changes.diffs) == [
        ("customers", "INSERT"),
        ("orders", "INSERT"),
    ]
    await ac.commit_cow_operations_schema(
        executor, sid, [second], include_dependencies=True, expected=changes.fingerprint
    )
    assert await fetch(conn, "SELECT id, name FROM customers ORDER BY id") == [
        (1, "Ada"),
        (2, "Bob"),
        (3, "Cy"),
    ]


async def test_bad_input(conn: Any) -> None:
    executor = await shop(conn)
    with pytest.raises(ac.InvalidIdError):
        await diff(executor, "not-a-uuid")
    with pytest.raises(ac.TableNotFoundError):
        await diff(executor, new_id(), table="nope")
    with pytest.raises(ac.OperationNotFoundError):
        await diff(executor, new_id(), operation_ids=[new_id()])


async def test_time_zone_of_the_reader_does_not_change_values(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET placed_at = '2026-05-06 07:08:09+02' WHERE id = 10")
    await conn.execute("SET TIME ZONE 'America/New_York'")
    changes = await diff(executor, sid)
    (row,) = changes.diffs
    assert row.new is not None
    assert row.new["placed_at"] == datetime(2026, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert row.new["placed_at"].utcoffset() == timezone(timedelta(hours=-4)).utcoffset(None)


async def base_rows(conn: Any) -> list[Any]:
    return await fetch(conn, "SELECT id, total::text FROM orders ORDER BY id")


async def test_a_write_after_the_review_refuses_the_commit(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET total = 1 WHERE id = 10")
    reviewed = await diff(executor, sid)
    async with session(conn, sid):
        await conn.execute("DELETE FROM orders WHERE id = 11")
    before = await base_rows(conn)
    with pytest.raises(ac.ReviewChangedError, match="review the session again"):
        await ac.commit_cow_session_schema(executor, sid, expected=reviewed.fingerprint)
    assert await base_rows(conn) == before
    # Reviewed again, it commits.
    again = await diff(executor, sid)
    assert again.fingerprint != reviewed.fingerprint
    await ac.commit_cow_session_schema(executor, sid, expected=again.fingerprint)
    assert await base_rows(conn) == [(10, "1.00")]


async def test_a_write_under_an_approved_operation_refuses_its_commit(conn: Any) -> None:
    """A later request reusing an approved operation id (it is only a setting) widens what
    that operation holds: the commit of the approved operation refuses."""
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid) as approved:
        await conn.execute("UPDATE orders SET total = 1 WHERE id = 10")
    assert approved
    reviewed = await diff(executor, sid, operation_ids=[approved])
    async with session(conn, sid, approved):
        await conn.execute("DELETE FROM orders WHERE id = 11")
    before = await base_rows(conn)
    with pytest.raises(ac.ReviewChangedError):
        await ac.commit_cow_operations_schema(
            executor, sid, [approved], expected=reviewed.fingerprint
        )
    assert await base_rows(conn) == before


async def test_writes_outside_the_choice_do_not_void_the_approval(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid) as approved:
        await conn.execute("UPDATE orders SET total = 1 WHERE id = 10")
    assert approved
    reviewed = await diff(executor, sid, operation_ids=[approved])
    async with session(conn, sid):
        await conn.execute("UPDATE customers SET name = 'later' WHERE id = 2")
    await ac.commit_cow_operations_schema(executor, sid, [approved], expected=reviewed.fingerprint)
    assert await base_rows(conn) == [(10, "1.00"), (11, "7.50")]
    assert (await diff(executor, sid)).summary == {"INSERT": 0, "UPDATE": 1, "DELETE": 0}


async def test_one_table_commit_takes_the_fingerprint_of_its_table(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET total = 2 WHERE id = 10")
        await conn.execute("UPDATE customers SET name = 'x' WHERE id = 1")
    whole = await diff(executor, sid)
    orders = await diff(executor, sid, table="orders")
    assert [d.table for d in orders.diffs] == ["orders"]
    with pytest.raises(ac.ReviewChangedError):
        await ac.commit_cow_session(executor, "orders", sid, expected=whole.fingerprint)
    await ac.commit_cow_session(executor, "orders", sid, expected=orders.fingerprint)
    assert await base_rows(conn) == [(10, "2.00"), (11, "7.50")]


async def test_an_approval_of_changes_since_discarded_refuses(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET total = 3 WHERE id = 10")
    reviewed = await diff(executor, sid)
    await ac.discard_cow_session_schema(executor, sid)
    with pytest.raises(ac.ReviewChangedError):
        await ac.commit_cow_session_schema(executor, sid, expected=reviewed.fingerprint)
    # An empty review approves an empty commit.
    empty = await diff(executor, sid)
    assert empty.is_empty
    assert await ac.commit_cow_session_schema(executor, sid, expected=empty.fingerprint) == []


async def test_a_forged_fingerprint_is_refused_inside_a_transaction(conn: Any) -> None:
    executor = await shop(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET total = 4 WHERE id = 10")
    with pytest.raises(ac.ReviewChangedError):
        async with conn.transaction():
            await ac.commit_cow_session_schema(executor, sid, expected="0" * 64)
    assert await base_rows(conn) == [(10, "5.00"), (11, "7.50")]
