"""What per-session limits cost a session's writes: ``python -m benchmarks.session_limits
[--dsn DSN]``.

Three copies of a 100k-row table, all COW-enabled: ``bare`` without the row-limit trigger
(the engine before limits), ``unlimited`` with it and no limit set (what every session
pays), ``limited`` with it, written in sessions that have a row limit and time limits. In a
fresh session per transaction (rolled back afterwards): a 1-row UPDATE, and an UPDATE of 1k
rows; only the statement is timed, not entering the session. Then, timed by the server, a
loop of 2k 1-row UPDATEs in one transaction of a session, per statement: ``none`` before any
limit is set anywhere, ``loop`` once limits are in use. Rounds alternate between the cases,
so load on the machine hits them alike; medians and minimums of the rounds. A throwaway
server unless ``--dsn`` (a superuser DSN) names one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import timedelta

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.limits import set_session_limits
from benchmarks.setup import Connection, scratch_database
from tests.postgres_server import running_postgres

ROWS, ONE_ROW_RUNS, ROUNDS = 100_000, 100, 15
TABLE = """
CREATE TABLE {t} (id bigint PRIMARY KEY, qty int NOT NULL, name text);
INSERT INTO {t} SELECT g, g % 100, 'row ' || g FROM generate_series(1, {rows}) g;
ANALYZE {t};
"""
TABLES = ("bare", "unlimited", "limited")
LOOP_RUNS = 2_000
LOOP = """
CREATE FUNCTION {t}_loop() RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..{runs} LOOP UPDATE {t} SET qty = qty + 1 WHERE id = i; END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - started);
END $$
"""


async def _statement(conn: Connection, table: str, sql: str, *args: object) -> float:
    """One statement in a fresh session (limited for ``limited``), rolled back."""
    session = uuid.uuid4()
    executor = AsyncpgExecutor(conn)
    if table == "limited":
        await set_session_limits(
            executor,
            session,
            max_rows=1_000_000,
            statement_timeout=timedelta(seconds=30),
            lock_timeout=timedelta(seconds=5),
        )
    transaction = conn.transaction()
    await transaction.start()
    try:
        await ac.apply_cow_variables(executor, session, uuid.uuid4())
        start = time.perf_counter()
        await conn.execute(sql, *args)
        return time.perf_counter() - start
    finally:
        await transaction.rollback()


async def _loop(conn: Connection, table: str) -> float:
    """Per statement, of LOOP_RUNS 1-row UPDATEs run by the server in one session."""
    session = uuid.uuid4()
    executor = AsyncpgExecutor(conn)
    if table == "limited":
        await set_session_limits(executor, session, max_rows=1_000_000)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await ac.apply_cow_variables(executor, session, uuid.uuid4())
        seconds = await conn.fetchval(f"SELECT {table}_loop()")
        return float(seconds) / LOOP_RUNS
    finally:
        await transaction.rollback()


async def run(conn: Connection) -> None:
    executor = AsyncpgExecutor(conn)
    await ac.deploy_cow_functions(executor)
    for table in TABLES:
        await conn.execute(TABLE.format(t=table, rows=ROWS))
        await ac.enable_cow(executor, table)
        await conn.execute(LOOP.format(t=table, runs=LOOP_RUNS))
    await conn.execute("DROP TRIGGER agentcow_row_limit ON bare")
    ids = list(range(1, 2_001, 2))
    samples: dict[str, list[float]] = {f"{k} {t}": [] for k in ("1-row", "1k-row") for t in TABLES}
    # before any limit is set: the trigger reads agentcow.settings and stops there
    for _ in range(3):
        for table in ("bare", "unlimited"):
            samples.setdefault(f"none {table}", []).append(await _loop(conn, table))
    for _ in range(ROUNDS):
        for table in TABLES:
            one = [
                await _statement(conn, table, f"UPDATE {table} SET qty = qty + 1 WHERE id = $1", i)
                for i in range(1, ONE_ROW_RUNS + 1)
            ]
            samples[f"1-row {table}"].append(statistics.median(one))
            samples[f"1k-row {table}"].append(
                await _statement(
                    conn,
                    table,
                    f"UPDATE {table} SET qty = qty + 1 WHERE id = ANY($1::bigint[])",
                    ids,
                )
            )
    for table in TABLES:  # server-side: a loop of 1-row UPDATEs in one transaction
        samples[f"loop {table}"] = [await _loop(conn, table) for _ in range(3)]
    for name, values in samples.items():
        kind = name.split()[0]
        median = statistics.median(values)
        ratio = median / statistics.median(samples[f"{kind} bare"])
        print(
            f"{name:18} median {median * 1e3:8.3f} ms, "
            f"min {min(values) * 1e3:8.3f} ms, ratio to bare {ratio:5.2f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    args = parser.parse_args()
    if args.dsn:
        async with scratch_database(args.dsn, "agentcow_limits_bench") as conn:
            await run(conn)
        return
    with running_postgres() as server:
        async with scratch_database(server.dsn, "agentcow_limits_bench") as conn:
            await run(conn)


if __name__ == "__main__":
    asyncio.run(main())
