"""Plans that do not depend on statistics: reads through the view and the triggers' own
statements in the regimes where PostgreSQL's picture of a change table is wrong.

Regimes: a plan made while the change table was analyzed empty (autovacuum does this right
after a commit empties it) and reused in a session that holds thousands of rows (a prepared
statement, a generic plan); and statistics gathered while another session was large. The
read tests look at EXPLAIN ANALYZE: no plan node that reads change rows may run more than
once (a nested loop over the change table runs its inner side once per base row). The
trigger tests count the change-table rows PostgreSQL read (pg_stat_xact_*), since the plans
of PL/pgSQL statements are not visible to EXPLAIN: a write of n rows must read O(n) of them,
not O(n) per row. No timings.

SQL-level PREPARE shares the plan cache with protocol-level prepared statements (asyncpg
prepares every statement; psycopg after five runs), and EXPLAIN EXECUTE shows the plan used.
Statements prepared outside a session name the view by its schema: there, the table's bare
name is the table itself in the overlay layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.helpers import base_table, changes_table, cow_view, make_cow, new_id, session

BASE_ROWS = 50_000
SESSION_ROWS = 2_000

ITEMS = f"""
CREATE TABLE items (id bigint PRIMARY KEY, qty int NOT NULL, account int NOT NULL, name text);
CREATE INDEX ON items (account);
INSERT INTO items SELECT g, g % 100, g % 500, 'item ' || g FROM generate_series(1, {BASE_ROWS}) g;
"""

ITEMS_VIEW = cow_view("items")
READS = {
    "full scan": (f"SELECT sum(qty) FROM {ITEMS_VIEW}", ()),
    "filtered scan": (f"SELECT count(*) FROM {ITEMS_VIEW} WHERE qty = $1", (5,)),
    "index scan": (f"SELECT count(*) FROM {ITEMS_VIEW} WHERE account = $1", (7,)),
}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _reads_change_rows(node: dict[str, Any], tables: tuple[str, ...]) -> bool:
    """The node, or a node below it, scans a change table."""
    return any(n.get("Relation Name") in tables for n in _nodes(node))


def repeated_change_reads(
    plan: dict[str, Any], tables: tuple[str, ...] = ("items_changes",)
) -> list[str]:
    """Nodes that read change rows and ran more than once: each run reads the session's
    rows again (the shape of a nested loop over the change table)."""
    return [
        f"{n['Node Type']} x{n['Actual Loops']}"
        for n in _nodes(plan)
        if n.get("Actual Loops", 0) > 1 and _reads_change_rows(n, tables)
    ]


def change_table_access(plan: dict[str, Any]) -> set[str]:
    """How the plan reaches the change table: node types of its scans."""
    return {n["Node Type"] for n in _nodes(plan) if n.get("Relation Name") == "items_changes"}


async def explain(conn: Any, sql: str) -> dict[str, Any]:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    plan: dict[str, Any] = json.loads(rows[0][0])[0]["Plan"]
    return plan


async def items(conn: Any) -> None:
    await make_cow(conn, ITEMS, "items")
    await conn.execute(f"ALTER TABLE {changes_table('items')} SET (autovacuum_enabled = false)")
    # Parallel workers multiply loop counts; the shapes under test are the same without them.
    await conn.execute("SET max_parallel_workers_per_gather = 0")
    await conn.execute(f"VACUUM ANALYZE {base_table('items')}")


async def write_session(conn: Any, first: int, rows: int) -> Any:
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(
            "UPDATE items SET qty = qty + 1 WHERE id BETWEEN $1 AND $2", first, first + rows - 1
        )
    return sid


def execute(name: str, args: tuple[Any, ...]) -> str:
    return f"EXECUTE {name}" + (f"({', '.join(map(str, args))})" if args else "")


async def test_plans_made_while_change_table_was_analyzed_empty(conn: Any) -> None:
    await items(conn)
    await conn.execute(f"VACUUM ANALYZE {changes_table('items')}")
    for n, (sql, args) in enumerate(READS.values()):
        params = f"({', '.join('int' for _ in args)})" if args else ""
        await conn.execute(f"PREPARE r{n}{params} AS {sql}")
        await conn.execute(execute(f"r{n}", args))  # planned outside any session
    sid = await write_session(conn, 1, SESSION_ROWS)
    async with session(conn, sid):
        for n, (name, (_, args)) in enumerate(READS.items()):
            plan = await explain(conn, execute(f"r{n}", args))
            assert repeated_change_reads(plan) == [], name


async def test_generic_plans(conn: Any) -> None:
    await items(conn)
    await conn.execute(f"VACUUM ANALYZE {changes_table('items')}")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    for n, (sql, args) in enumerate(READS.values()):
        if args:
            await conn.execute(f"PREPARE g{n}(int) AS {sql}")
            await conn.execute(execute(f"g{n}", args))  # the generic plan, made outside a session
    await conn.execute(f"PREPARE point(bigint) AS SELECT * FROM {ITEMS_VIEW} WHERE id = $1")
    await conn.execute("EXECUTE point(3)")
    sid = await write_session(conn, 1, SESSION_ROWS)
    async with session(conn, sid):
        for n, (name, (_, args)) in enumerate(READS.items()):
            if args:
                plan = await explain(conn, execute(f"g{n}", args))
                assert repeated_change_reads(plan) == [], name
        plan = await explain(conn, "EXECUTE point(3)")
        assert repeated_change_reads(plan) == []


async def test_statistics_of_another_large_session(conn: Any) -> None:
    await items(conn)
    await write_session(conn, 1, SESSION_ROWS)
    await conn.execute(f"ANALYZE {changes_table('items')}")
    small = await write_session(conn, 40_001, 10)
    async with session(conn, small):
        for name, (sql, args) in READS.items():
            literal = sql.replace("$1", str(args[0])) if args else sql
            plan = await explain(conn, literal)
            assert repeated_change_reads(plan) == [], name
        point = await explain(conn, f"SELECT * FROM {ITEMS_VIEW} WHERE id = 40005")
        assert repeated_change_reads(point) == []
        assert change_table_access(point) <= {"Index Scan", "Index Only Scan"}


ORDERS = """
CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL);
INSERT INTO orders SELECT g, 'open' FROM generate_series(1, 10000) g;
CREATE TABLE lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, qty int);
CREATE INDEX ON lines (order_id);
INSERT INTO lines SELECT g, 1 + g % 10000, g % 7 FROM generate_series(1, 50000) g;
"""


async def test_join_between_cow_tables_planned_while_analyzed_empty(conn: Any) -> None:
    await make_cow(conn, ORDERS, "orders", "lines")
    await conn.execute("SET max_parallel_workers_per_gather = 0")
    for table in ("orders", "lines"):
        await conn.execute(f"ALTER TABLE {changes_table(table)} SET (autovacuum_enabled = false)")
        await conn.execute(f"VACUUM ANALYZE {base_table(table)}")
        await conn.execute(f"VACUUM ANALYZE {changes_table(table)}")
    orders, lines = cow_view("orders"), cow_view("lines")
    joins = {
        "all orders": f"SELECT sum(l.qty) FROM {orders} o JOIN {lines} l ON l.order_id = o.id",
        "open orders": f"SELECT count(*) FROM {orders} o JOIN {lines} l ON l.order_id = o.id "
        "WHERE o.status = 'open'",
    }
    for n, sql in enumerate(joins.values()):
        await conn.execute(f"PREPARE j{n} AS {sql}")
        await conn.execute(f"EXECUTE j{n}")  # planned outside any session
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE orders SET status = 'paid' WHERE id <= 500")
        await conn.execute("UPDATE lines SET qty = qty + 1 WHERE id <= 2000")
    async with session(conn, sid):
        for n, name in enumerate(joins):
            plan = await explain(conn, f"EXECUTE j{n}")
            assert repeated_change_reads(plan, ("orders_changes", "lines_changes")) == [], name


# ---------------------------------------------------------------------------------------
# The triggers' statements (PL/pgSQL caches their plans: made on the first write)
# ---------------------------------------------------------------------------------------

CHANGE_ROWS_READ = """
-- rows read by sequential scans, entries returned by index scans
SELECT sum(pg_stat_get_xact_tuples_returned(r.oid))
FROM pg_class r
WHERE r.relname LIKE '%\\_changes'
   OR r.oid IN (SELECT i.indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                WHERE t.relname LIKE '%\\_changes')
"""

PARENTS = """
CREATE TABLE parents (id bigint PRIMARY KEY, code text UNIQUE, qty int);
INSERT INTO parents SELECT g, 'c' || g, 1 FROM generate_series(1, 20000) g;
CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents, n int);
"""


async def _parents(conn: Any) -> None:
    await make_cow(conn, PARENTS, "parents", "children")
    changes = [changes_table("parents"), changes_table("children")]
    for table in changes:
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    for table in (base_table("parents"), base_table("children"), *changes):
        await conn.execute(f"VACUUM ANALYZE {table}")


async def test_trigger_unique_check_reads_by_key(conn: Any) -> None:
    await _parents(conn)
    rows = 1_000
    async with session(conn, new_id()):
        # the first write makes the trigger's plans, while the change table is empty
        await conn.execute("INSERT INTO parents VALUES (100000, 'first', 1)")
        await conn.execute(
            "INSERT INTO parents SELECT g, 'c' || g, 1 FROM generate_series(100001, $1) g",
            100_000 + rows,
        )
        read = await conn.fetchval(CHANGE_ROWS_READ)
    # a few probes per row; reading the session's rows for every row would be ~rows**2 / 2
    assert read < 20 * rows, read


async def test_statement_check_probes_parents_by_key(conn: Any) -> None:
    await _parents(conn)
    rows = 1_000
    async with session(conn, new_id()):
        await conn.execute("INSERT INTO parents VALUES (100000, 'first', 1)")
        await conn.execute("INSERT INTO children VALUES (1, 100000, 0)")
        await conn.execute(
            "INSERT INTO parents SELECT g, 'c' || g, 1 FROM generate_series(100001, $1) g",
            100_000 + rows,
        )
        before = await conn.fetchval(CHANGE_ROWS_READ)
        await conn.execute(
            "INSERT INTO children SELECT g, 100000 + g, 0 FROM generate_series(1 + 1, $1) g",
            rows,
        )
        read = await conn.fetchval(CHANGE_ROWS_READ) - before
    assert read < 20 * rows, read
