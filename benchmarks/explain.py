"""Plans of the COW view in a session: does a point read use the indexes?"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import agentcow as ac
from benchmarks.cases import Bench, transaction
from benchmarks.setup import COW, create_session

PRIMARY_KEY_INDEX = """
SELECT i.relname
FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid
WHERE c.contype = 'p' AND c.conrelid = $1::regclass
"""

#: The change table's index of a key's versions: (session_id, primary key..., _cow_seq).
KEY_INDEX = """
SELECT i.relname
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = $1::regclass
  AND pg_catalog.pg_get_indexdef(x.indexrelid) LIKE '%(session_id, id, _cow_seq)%'
"""


@dataclass(frozen=True)
class Plan:
    title: str
    sql: str
    text: str


@dataclass(frozen=True)
class IndexCheck:
    """Whether the in-session point-read plan scans each table through its key's index."""

    base_index: str
    changes_index: str
    base_used: bool
    changes_used: bool

    @property
    def ok(self) -> bool:
        return self.base_used and self.changes_used


async def explain_in_session(bench: Bench, sql: str, session_id: uuid.UUID | None = None) -> str:
    async with transaction(bench.conn, session_id or bench.session.session_id):
        rows = await bench.conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
    return "\n".join(row[0] for row in rows)


def _uses_index(plan: str, index: str) -> bool:
    """An ``Index Scan using X``, ``Index Only Scan using X`` or ``Bitmap Index Scan on X``."""
    return any(
        "Index" in line and (f"using {index} " in line or f"on {index} " in line)
        for line in (line + " " for line in plan.splitlines())
    )


async def _fresh_session_plan(bench: Bench, sql: str) -> str:
    """The plan in a session the planner's statistics do not know (made after ANALYZE)."""
    block = bench.blocks.next()
    session = await create_session(
        bench.conn, updated=block.update_range, inserted=block.insert_range
    )
    try:
        return await explain_in_session(bench, sql, session.session_id)
    finally:
        await ac.discard_cow_session(bench.executor, COW, session.session_id)


async def session_plans(bench: Bench) -> tuple[list[Plan], IndexCheck]:
    """EXPLAIN ANALYZE of an in-session point read (of a changed key) and full scan, and of
    an aggregate in a fresh session of the same size."""
    changed = bench.session.updated[0]
    point_sql = f"SELECT * FROM {COW} WHERE id = {changed}"
    scan_sql = f"SELECT * FROM {COW}"
    aggregate_sql = f"SELECT count(*), sum(amount) FROM {COW}"
    point = Plan("in-session point read", point_sql, await explain_in_session(bench, point_sql))
    scan = Plan("in-session full scan", scan_sql, await explain_in_session(bench, scan_sql))
    fresh = Plan(
        "aggregate in a fresh session (case 2c)",
        aggregate_sql,
        await _fresh_session_plan(bench, aggregate_sql),
    )
    base_index = await bench.conn.fetchval(PRIMARY_KEY_INDEX, f"{COW}_base")
    changes_index = await bench.conn.fetchval(KEY_INDEX, f"{COW}_changes")
    check = IndexCheck(
        base_index=base_index,
        changes_index=changes_index,
        base_used=_uses_index(point.text, base_index),
        changes_used=_uses_index(point.text, changes_index),
    )
    return [point, scan, fresh], check
