"""Evaluating a policy on a session of 10,000 changed rows: ``python -m benchmarks.policy``.

A table of 100k orders with an items table; a session updates 5k orders and inserts 2.5k
(each with an item). Timed, medians of ``--rounds``: the diff itself (for scale), then
``Policy.evaluate`` of that changeset with models only (Python), with two row rules (SQL, one
statement per table), with one check (an anti-join over the session's state), and with all
of it plus limits. ``--dsn`` uses an existing server (superuser DSN); otherwise a throwaway
one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Annotated

import asyncpg
from pydantic import Field

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.review import ChangeSet, ModelRegistry, Policy, SafeModel, diff
from benchmarks.setup import print_on_server, scratch_database

ROWS = 100_000
CHANGED = 10_000
SETUP = f"""
CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10, 2) NOT NULL, status text NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, qty int NOT NULL);
INSERT INTO orders SELECT g, g % 500, 'new' FROM generate_series(1, {ROWS}) g;
INSERT INTO items SELECT g, g, 1 FROM generate_series(1, {ROWS}) g;
"""
HALF, QUARTER = CHANGED // 2, CHANGED // 4
AGENT = f"""
UPDATE orders SET amount = amount - 10 WHERE id <= {HALF};
INSERT INTO orders SELECT {ROWS} + g, 20, 'new' FROM generate_series(1, {QUARTER}) g;
INSERT INTO items SELECT {ROWS} + g, {ROWS} + g, 2 FROM generate_series(1, {QUARTER}) g;
"""
RULES = {"orders": {"rules": ["new.amount >= -50", "old.status <> 'shipped'"]}}
CHECKS = [
    {
        "name": "no order without items",
        "query": "SELECT o.id FROM orders o "
        "WHERE NOT EXISTS (SELECT FROM items i WHERE i.order_id = o.id)",
    }
]
LIMITS = {"max_inserted": CHANGED, "max_updated": CHANGED, "max_deleted": 0}

Result = tuple[str, float]  # label, seconds (median)

registry = ModelRegistry()


class Order(SafeModel):
    __registry__ = registry
    __table_name__ = "orders"
    id: int
    amount: Annotated[Decimal, Field(ge=-50)]
    status: str


class Item(SafeModel):
    __registry__ = registry
    __table_name__ = "items"
    id: int
    order_id: int
    qty: Annotated[int, Field(gt=0)]


async def _median(rounds: int, run: Callable[[], Awaitable[object]]) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def _measure(conn: asyncpg.Connection, rounds: int) -> list[Result]:
    ex = AsyncpgExecutor(conn)
    await conn.execute(SETUP)
    await ac.deploy_cow_functions(ex)
    await ac.enable_cow_schema(ex)
    sid = uuid.uuid4()
    async with conn.transaction():
        await ac.apply_cow_variables(ex, sid, uuid.uuid4())
        await conn.execute(AGENT)
    await conn.execute("VACUUM ANALYZE")
    changes: ChangeSet = await diff(ex, sid)
    assert len(changes) == CHANGED, changes.summary
    policies = [
        ("models only", Policy()),
        ("two row rules on 7.5k orders", Policy.from_mapping({"tables": RULES})),
        ("one check (anti-join)", Policy.from_mapping({"checks": CHECKS})),
        (
            "rules, check, models and limits",
            Policy.from_mapping(
                {"tables": {"orders": {**RULES["orders"], **LIMITS}}, "checks": CHECKS}
            ),
        ),
    ]
    results = [
        (f"diff of {len(changes)} rows (for scale)", await _median(rounds, lambda: diff(ex, sid)))
    ]
    for label, policy in policies:
        report = await policy.evaluate(ex, changes, registry=registry)
        assert report.approved, report.reasons
        seconds = await _median(rounds, lambda p=policy: p.evaluate(ex, changes, registry=registry))
        results.append((f"evaluate: {label}", seconds))
    return results


async def measure(dsn: str, rounds: int) -> list[Result]:
    async with scratch_database(dsn, "policy") as conn:
        return await _measure(conn, rounds)


def report(results: Sequence[Result]) -> str:
    return "\n".join(f"{label:45}  {seconds * 1e3:9.1f} ms" for label, seconds in results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print_on_server(args.dsn, lambda dsn: report(asyncio.run(measure(dsn, args.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
