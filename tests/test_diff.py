"""Row diffs of a session: what a commit would apply, typed as PostgreSQL types them."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

import agentcow as ac
from agentcow.review import DiffType, Policy, diff
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
    await conn.execute("CREATE SCHEMA plain_only; CREATE TABLE plain_only.t (id int PRIMARY KEY)")
    for schema in ("plain_only", "no_such_schema", 'we"ird'):
        with pytest.raises(ac.TableNotFoundError, match="COW is not enabled on"):
            await diff(executor, new_id(), schema=schema)
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


CASCADING = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY,
                     customer_id int REFERENCES customers ON DELETE CASCADE, total int);
CREATE TABLE notes (id int PRIMARY KEY,
                    customer_id int REFERENCES customers ON DELETE SET NULL, body text);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');
INSERT INTO orders VALUES (10, 1, 5), (11, 2, 6);
"""


async def test_a_commit_that_would_cascade_to_unseen_rows_is_refused(conn: Any) -> None:
    executor = await make_cow(conn, CASCADING, "customers", "orders")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("DELETE FROM customers WHERE id = 1")
    reviewed = await diff(executor, sid)
    # The session's delete cascaded to the order it could see: the diff shows it.
    assert sorted((d.table, d.diff_type.value) for d in reviewed.diffs) == [
        ("customers", "DELETE"),
        ("orders", "DELETE"),
    ]
    # Production adds an order (and a note, in a table without COW) under that customer.
    await conn.execute("INSERT INTO orders VALUES (12, 1, 7)")
    await conn.execute("INSERT INTO notes VALUES (50, 1, 'call back')")
    with pytest.raises(ac.CascadeConflictError) as refused:
        await ac.commit_cow_session_schema(executor, sid, expected=reviewed.fingerprint)
    found = sorted(
        (c.table, c.constraint, c.parent_table, str(c.key)) for c in refused.value.cascades
    )
    assert found == [
        ("notes", "notes_customer_id_fkey", "customers", "None"),
        ("orders", "orders_customer_id_fkey", "customers", "{'id': 12}"),
    ]
    assert {c.table: c.row["id"] for c in refused.value.cascades} == {"notes": 50, "orders": 12}
    assert isinstance(refused.value, ac.CommitConflictError)
    assert await fetch(conn, "SELECT id FROM orders ORDER BY id") == [(10,), (11,), (12,)]
    assert await fetch(conn, "SELECT customer_id FROM notes") == [(1,)]
    # Allowed once seen: the base's own keys write them.
    await ac.commit_cow_session_schema(
        executor, sid, expected=reviewed.fingerprint, allow_cascades=True
    )
    assert await fetch(conn, "SELECT id FROM orders ORDER BY id") == [(11,)]
    assert await fetch(conn, "SELECT customer_id FROM notes") == [(None,)]


async def test_cascades_the_diff_shows_are_not_refused(conn: Any) -> None:
    executor = await make_cow(conn, CASCADING, "customers", "orders")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("DELETE FROM customers WHERE id = 2")
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id FROM orders ORDER BY id") == [(10,)]


async def _mixed_session(conn: Any) -> uuid.UUID:
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO customers VALUES (3, 'O''Brien \"quoted\"')")
        await conn.execute(
            "INSERT INTO orders (id, customer_id, total, meta, tags, blob, ratio) VALUES"
            " (12, 3, 1.25, '{\"k\": [1, 2.5]}', '{a,\"b c\",NULL}', '\\x00ff', 'NaN')"
        )
        await conn.execute("UPDATE orders SET total = 9.99, tags = NULL WHERE id = 10")
        await conn.execute("DELETE FROM orders WHERE id = 11")
    return sid


async def test_json_form(conn: Any) -> None:
    executor = await shop(conn)
    sid = await _mixed_session(conn)
    changes = await diff(executor, sid)
    document = json.loads(changes.to_json())
    assert document["format"] == "agentcow.changeset/1"
    assert document["session_id"] == str(sid)
    assert document["fingerprint"] == changes.fingerprint
    assert document["summary"] == {"INSERT": 2, "UPDATE": 1, "DELETE": 1}
    assert document["tables"]["orders"] == {"INSERT": 1, "UPDATE": 1, "DELETE": 1}
    rows = {(d["table"], d["type"]): d for d in document["diffs"]}
    inserted = rows[("orders", "INSERT")]["new"]
    assert inserted["total"] == "1.25"
    assert inserted["meta"] == {"k": [1, 2.5]}
    assert inserted["tags"] == ["a", "b c", None]
    assert inserted["blob"] == "\\x00ff"
    assert inserted["ratio"] == "NaN"
    assert inserted["placed_at"] == "2026-01-02T03:04:05+00:00"
    update = rows[("orders", "UPDATE")]
    assert update["pk"] == {"id": 10}
    assert update["changed_columns"] == ["total", "tags"]
    assert rows[("orders", "DELETE")]["new"] is None


async def test_sql_patch_does_what_the_commit_does(conn: Any) -> None:
    executor = await shop(conn)
    sid = await _mixed_session(conn)
    patch = (await diff(executor, sid)).to_sql()
    assert patch.startswith("-- agentcow patch")
    # Run the patch on production, outside any session, and roll it back.
    statements = [s for s in patch.split(";\n") if s.strip() and not s.startswith("COMMIT")]
    snapshot = "SELECT to_jsonb(o) FROM orders o ORDER BY id"
    customers = "SELECT to_jsonb(c) FROM customers c ORDER BY id"
    tx = conn.transaction()
    await tx.start()
    for statement in statements:
        await conn.execute(
            statement.replace("BEGIN", "SELECT 1", 1) if "BEGIN" in statement else statement
        )
    patched = (await fetch(conn, snapshot), await fetch(conn, customers))
    await tx.rollback()
    await ac.commit_cow_session_schema(executor, sid)
    assert patched == (await fetch(conn, snapshot), await fetch(conn, customers))


async def test_plain_text_and_terminal_renderings(conn: Any) -> None:
    executor = await shop(conn)
    sid = await _mixed_session(conn)
    changes = await diff(executor, sid)
    out = io.StringIO()  # not a terminal: plain text
    changes.print(out, limit=0)
    text = out.getvalue()
    assert "\x1b[" not in text
    assert "SAFE" in text and str(sid) in text
    # limit=0 hides inserts and updates, never deletes.
    assert "- id=11" in text and "1 more insert(s) of orders" in text
    assert "+ id=12" not in text
    # Standard output is not a terminal under pytest: display() is plain text too.
    assert "\x1b[" not in changes.display() and "+ id=12" in changes.display()
    out = io.StringIO()
    changes.render(Console(file=out, force_terminal=True, width=200))
    coloured = out.getvalue()
    assert "\x1b[" in coloured and "total: " in coloured


class _RejectDeletes:
    def row_findings(self, row: Any) -> list[str]:
        return ["deletes need a person"] if row.diff_type is DiffType.DELETE else []

    @property
    def blocking_reasons(self) -> list[str]:
        return []


async def test_a_judgement_marks_rows_and_blocks(conn: Any) -> None:
    executor = await shop(conn)
    sid = await _mixed_session(conn)
    text = (await diff(executor, sid)).display(judgement=_RejectDeletes())
    assert "BLOCKED" in text and "SAFE" not in text
    assert "FAIL id=11" in text and "PASS id=12" in text
    assert "orders id=11: deletes need a person" in text


async def test_tables_referencing_each_other_in_a_cycle(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE a (id int PRIMARY KEY, b_id int);"
        "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);"
        "ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;",
        "a",
        "b",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO a VALUES (1, NULL)")
        await conn.execute("INSERT INTO b VALUES (1, 1)")
    changes = await diff(executor, sid)
    assert set(changes.tables) == {"a", "b"}
    assert "INSERT INTO" in changes.to_sql()
    assert changes.summary == {"INSERT": 2, "UPDATE": 0, "DELETE": 0}


#: Every alias the kit's review and commit statements give their relations.
ALIASES = ("b", "c", "d", "e", "f", "k", "l", "m", "o", "p", "q", "r", "v", "cur", "merged")


async def test_columns_named_like_the_kits_aliases(conn: Any) -> None:
    """A column named ``b`` once made the diff's whole-row reference of its base alias
    ambiguous (42702); the same held for a child's ``r`` in the commit's cascade check and
    a check query's ``q``."""
    columns = ", ".join(f"{name} int" for name in ALIASES)
    values = ", ".join(str(i) for i, _ in enumerate(ALIASES))
    kid_columns = ", ".join(f"{name} int" for name in ALIASES if name != "r")
    executor = await make_cow(
        conn,
        f"""
        CREATE TABLE pair (id int PRIMARY KEY, {columns});
        CREATE TABLE kid (id int PRIMARY KEY, r int REFERENCES pair ON DELETE CASCADE,
                          {kid_columns});
        INSERT INTO pair VALUES (1, {values}), (2, {values});
        INSERT INTO kid (id, r) VALUES (1, 1);
        """,
        "pair",
        "kid",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE pair SET b = 100, q = 101 WHERE id = 1")
        await conn.execute(f"INSERT INTO pair VALUES (3, {values})")
        await conn.execute("DELETE FROM pair WHERE id = 2")
    changes = await diff(executor, sid)
    assert changes.summary == {"INSERT": 1, "UPDATE": 1, "DELETE": 1}
    (update,) = [d for d in changes.diffs if d.diff_type is DiffType.UPDATE]
    assert update.changed_columns() == ["b", "q"] and update.new["b"] == 100
    policy = Policy.from_mapping({"checks": [{"name": "q", "query": "SELECT q FROM pair"}]})
    (check,) = (await policy.evaluate(executor, changes)).checks
    assert sorted(row["q"] for row in check.rows) == [10, 101]
    # production adds a child of the row the session deletes: the commit names the cascade
    await conn.execute("INSERT INTO kid (id, r) VALUES (2, 2)")
    with pytest.raises(ac.CascadeConflictError) as caught:
        await ac.commit_cow_session(executor, "pair", sid)
    assert [c.row["r"] for c in caught.value.cascades] == [2]
    await ac.commit_cow_session(executor, "pair", sid, allow_cascades=True)
    assert await fetch(conn, "SELECT id, b, q FROM pair ORDER BY id") == [
        (1, 100, 101),
        (3, 0, 10),
    ]
