"""Upserts through a session vs the plain table: ``python -m benchmarks.upserts``.

A table of 20k rows with a primary key, a UNIQUE column, NOT NULL and CHECK constraints. One
``INSERT ... ON CONFLICT`` of 1, 100 or 1,000 rows (half of them conflicting with stored
rows, half new), ``DO UPDATE SET qty = t.qty + excluded.qty`` or ``DO NOTHING``, prepared
once and run with parameters: on the plain table, and in a session on the COW view as
:class:`agentcow.CowSession` sends it (the rewrite of ``agentcow.agent.upserts``, made once,
as a prepared statement is). Each run is a transaction rolled back, so every run starts
from the same rows; rounds alternate between the two. Also timed: ``rewrite_for`` itself
(parsing the statement and one catalog read), which ``CowSession`` pays per call. Ratios are
of the medians. Each run prepares its statement (both sides), as ``CowSession`` does for
every call: custom plans. ``--reused`` prepares each statement once and runs it six times
before timing, so PostgreSQL may use a generic plan, as for a statement an application
prepares and keeps: there the ``DO UPDATE`` reads the view once per updated row (quadratic:
about 0.6 s for 1,000 rows). ``--dsn`` uses an existing server (superuser DSN); otherwise a
throwaway one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.agent.upserts import rewrite_for
from benchmarks.setup import scratch_database

TABLE = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY,
    code text UNIQUE,
    qty int NOT NULL DEFAULT 1 CHECK (qty > 0),
    note text
);
INSERT INTO {t} SELECT i, 'c' || i, 1, 'stored' FROM generate_series(1, 20000) i;
ANALYZE {t};
"""

UPSERT = (
    "INSERT INTO {t} AS t (id, code, qty) SELECT i, 'c' || i, 2 FROM unnest($1::bigint[]) AS u(i) "
    "ON CONFLICT (id) {action}"
)
ACTIONS = {
    "DO UPDATE": "DO UPDATE SET qty = t.qty + excluded.qty",
    "DO NOTHING": "DO NOTHING",
}
SIZES = (1, 100, 1000)
#: The same rows written by an UPDATE and an INSERT of the session (no upsert): what the
#: view's write triggers cost for them, the floor of any upsert through the view.
WRITES = (
    "WITH u AS (UPDATE {t} AS t SET qty = t.qty + 2 WHERE t.id = ANY ($1::bigint[]) RETURNING 1) "
    "INSERT INTO {t} (id, code, qty) SELECT i, 'c' || i, 2 FROM unnest($1::bigint[]) AS u(i) "
    "WHERE i >= 100000"
)


async def measure(dsn: str, rounds: int, reused: bool = False) -> dict[str, float]:
    async with scratch_database(dsn, "upserts") as conn:
        ex = AsyncpgExecutor(conn)
        await conn.execute(TABLE.format(t="plain_items") + TABLE.format(t="items"))
        await ac.deploy_cow_functions(ex)
        await ac.enable_cow(ex, "items")
        session = uuid.uuid4()
        samples: dict[str, list[float]] = {}
        for action, clause in ACTIONS.items():
            plain_sql = UPSERT.format(t="plain_items", action=clause)
            cow_sql = UPSERT.format(t="items", action=clause)
            async with conn.transaction():
                await ac.apply_cow_variables(ex, session, uuid.uuid4())
                rewrite = await rewrite_for(ex, cow_sql)
                assert rewrite is not None
                start = time.perf_counter()
                for _ in range(20):
                    await rewrite_for(ex, cow_sql)
                samples.setdefault("rewrite_for", []).append((time.perf_counter() - start) / 20)
            texts = {"plain": plain_sql, "cow": rewrite.sql, "writes": WRITES.format(t="items")}
            kept = {side: await conn.prepare(text) for side, text in texts.items()}
            for size in SIZES:
                # half stored (conflicting), half new
                ids = [
                    *range(1, size // 2 + 1),
                    *range(100_000, 100_000 + size - size // 2),
                ]
                sides = ["plain", "cow"] + (["writes"] if action == "DO UPDATE" else [])
                for run in range(rounds + (6 if reused else 0)):
                    for side in sides:
                        tx = conn.transaction()
                        await tx.start()
                        try:
                            if side != "plain":
                                await ac.apply_cow_variables(ex, session, uuid.uuid4())
                            start = time.perf_counter()
                            if reused:
                                await kept[side].fetch(ids)
                            else:
                                await (await conn.prepare(texts[side])).fetch(ids)
                            elapsed = time.perf_counter() - start
                        finally:
                            await tx.rollback()
                        if run >= (6 if reused else 0):
                            samples.setdefault(f"{action} {size} {side}", []).append(elapsed)
        return {label: statistics.median(values) for label, values in samples.items()}


def report(medians: dict[str, float]) -> str:
    lines = [
        f"{'statement':<24}{'plain ms':>10}{'session ms':>12}{'ratio':>8}"
        f"{'session UPDATE+INSERT ms':>26}"
    ]
    for action in ACTIONS:
        for size in SIZES:
            plain = medians[f"{action} {size} plain"]
            cow = medians[f"{action} {size} cow"]
            writes = medians.get(f"{action} {size} writes")
            label = f"{action} {size} rows"
            floor = f"{writes * 1e3:>26.2f}" if writes is not None else ""
            lines.append(
                f"{label:<24}{plain * 1e3:>10.2f}{cow * 1e3:>12.2f}{cow / plain:>8.1f}{floor}"
            )
    lines.append(f"rewrite_for (per call): {medians['rewrite_for'] * 1e3:.2f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reused", action="store_true", help="statements prepared once")
    args = parser.parse_args()
    if args.dsn:
        medians = asyncio.run(measure(args.dsn, args.rounds, args.reused))
    else:
        from tests.postgres_server import running_postgres

        with running_postgres() as server:
            medians = asyncio.run(measure(server.dsn, args.rounds, args.reused))
    print(report(medians))


if __name__ == "__main__":
    main()
