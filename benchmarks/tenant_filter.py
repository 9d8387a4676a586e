"""What tenant isolation costs: ``python -m benchmarks.tenant_filter [--dsn DSN]``.

Two copies of a 200k-row table (20 tenants of 10k rows, an index on ``tenant_id``), both
COW-enabled: ``isolated`` with ``tenant_column="tenant_id"``, ``shared`` without (the engine
as it was). Through the view, in a session bound to tenant 1 and in a session bound to none:
a point read by primary key (prepared, one statement per round trip) and an UPDATE of 1k rows
of tenant 1 (rolled back after each run). Rounds alternate between the cases, so load on the
machine hits them alike; medians and minimums of the rounds (the minimum is the better
estimate on a loaded machine). A throwaway server unless ``--dsn`` (a
superuser DSN) names one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import Connection, scratch_database
from tests.postgres_server import running_postgres

ROWS, TENANTS, READS, ROUNDS = 200_000, 20, 500, 15

TABLE = """
CREATE TABLE {t} (id bigint PRIMARY KEY, tenant_id int NOT NULL, qty int NOT NULL, name text);
CREATE INDEX ON {t} (tenant_id);
INSERT INTO {t} SELECT g, g % {tenants}, g % 100, 'row ' || g FROM generate_series(1, {rows}) g;
ANALYZE {t};
"""

#: 1k ids of tenant 1, and point reads of tenant 1's rows.
UPDATE_IDS = [1 + TENANTS * i for i in range(1_000)]
READ_IDS = [1 + TENANTS * i for i in range(0, 5_000, 10)]


async def _point_reads(conn: Connection, table: str) -> float:
    statement = await conn.prepare(f"SELECT * FROM {table} WHERE id = $1")
    start = time.perf_counter()
    for key in READ_IDS[:READS]:
        await statement.fetchrow(key)
    return (time.perf_counter() - start) / READS


async def _update(conn: Connection, table: str) -> float:
    start = time.perf_counter()
    await conn.execute(f"UPDATE {table} SET qty = qty + 1 WHERE id = ANY($1::bigint[])", UPDATE_IDS)
    return time.perf_counter() - start


async def _in_session(
    conn: Connection, tenant: int | None, work: Callable[[], Awaitable[float]]
) -> float:
    """``work`` in a fresh session (bound to ``tenant``), rolled back afterwards."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await ac.apply_cow_variables(
            AsyncpgExecutor(conn), uuid.uuid4(), uuid.uuid4(), tenant_id=tenant
        )
        return await work()
    finally:
        await transaction.rollback()


async def run(conn: Connection) -> None:
    executor = AsyncpgExecutor(conn)
    await ac.deploy_cow_functions(executor)
    for table in ("isolated", "shared"):
        await conn.execute(TABLE.format(t=table, tenants=TENANTS, rows=ROWS))
    await ac.enable_cow(executor, "isolated", tenant_column="tenant_id")
    await ac.enable_cow(executor, "shared")
    cases = {
        f"{kind} {table}, {'tenant 1' if tenant else 'no tenant'}": (table, tenant, kind)
        for kind in ("point read", "1k-row UPDATE")
        for table in ("isolated", "shared")
        for tenant in (1, None)
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, (table, tenant, kind) in cases.items():

            async def work(table: str = table, kind: str = kind) -> float:
                if kind == "point read":
                    return await _point_reads(conn, table)
                return await _update(conn, table)

            samples[name].append(await _in_session(conn, tenant, work))
    for name, values in samples.items():
        print(
            f"{name:36} median {statistics.median(values) * 1e3:8.3f} ms, "
            f"min {min(values) * 1e3:8.3f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    args = parser.parse_args()
    if args.dsn:
        async with scratch_database(args.dsn, "agentcow_tenant_bench") as conn:
            await run(conn)
        return
    with running_postgres() as server:
        async with scratch_database(server.dsn, "agentcow_tenant_bench") as conn:
            await run(conn)


if __name__ == "__main__":
    asyncio.run(main())
