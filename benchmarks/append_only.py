"""A table without a key (append-only in sessions), against its plain twin:
``python -m benchmarks.append_only``.

A pgbench_history-like table of 100k rows with an index on its timestamp, twice: plain and
under COW. Cases, each a ratio of the medians of ``--rounds``: INSERT of 1k rows in a session
and without one (rolled back), a range read of 1k rows through the index and a full
``count(*), sum()`` (in a session holding 5k appended rows, and without one), and the commit
of a session of 5k appended rows against the same INSERT made directly.
``--dsn`` uses an existing server (superuser DSN); otherwise a throwaway one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import print_on_server, scratch_database

ROWS = 100_000
TABLE = (
    "CREATE TABLE {t} (tid int, aid int NOT NULL, delta int, mtime timestamptz NOT NULL);"
    "CREATE INDEX ON {t} (mtime);"
    "INSERT INTO {t} SELECT g % 10, g, g % 100, timestamptz '2026-01-01' + g * interval '1 s' "
    f"FROM generate_series(1, {ROWS}) g"
)
INSERT = (
    "INSERT INTO {t} SELECT g % 10, g, 1, timestamptz '2027-01-01' + g * interval '1 s' "
    "FROM generate_series(1, {n}) g"
)
RANGE = (
    "SELECT count(*), sum(delta) FROM {t} "
    "WHERE mtime >= timestamptz '2026-01-01' + 50000 * interval '1 s' "
    "AND mtime < timestamptz '2026-01-01' + 51000 * interval '1 s'"
)
SCAN = "SELECT count(*), sum(delta) FROM {t}"

Result = tuple[str, float, float]  # label, plain, COW (seconds)


async def _rolled_back(conn: asyncpg.Connection, sid: uuid.UUID | None, sql: str) -> float:
    """Seconds of one statement in a transaction (in the session when ``sid``), rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        if sid is not None:
            await ac.apply_cow_variables(AsyncpgExecutor(conn), sid, uuid.uuid4())
        start = time.perf_counter()
        await conn.execute(sql)
        return time.perf_counter() - start
    finally:
        await tx.rollback()


async def _median(rounds: int, run: Callable[[], Awaitable[float]]) -> float:
    return statistics.median([await run() for _ in range(rounds)])


async def _measure(conn: asyncpg.Connection, rounds: int) -> list[Result]:
    ex = AsyncpgExecutor(conn)
    await conn.execute(TABLE.format(t="plain_log") + ";" + TABLE.format(t="log"))
    await ac.deploy_cow_functions(ex)
    await ac.enable_cow(ex, "log")
    await conn.execute("VACUUM ANALYZE")
    holding = uuid.uuid4()  # a session holding 5k appended rows, for the reads
    async with conn.transaction():
        await ac.apply_cow_variables(ex, holding, uuid.uuid4())
        await conn.execute(INSERT.format(t="log", n=5000))
    results: list[Result] = []
    cases: list[tuple[str, str, uuid.UUID | None]] = [
        ("INSERT 1k rows, session", INSERT.format(t="{t}", n=1000), uuid.uuid4()),
        ("INSERT 1k rows, no session", INSERT.format(t="{t}", n=1000), None),
        ("range read of 1k rows, no session", RANGE, None),
        ("range read of 1k rows, session of 5k", RANGE, holding),
        ("scan count+sum, no session", SCAN, None),
        ("scan count+sum, session of 5k", SCAN, holding),
    ]
    for label, sql, sid in cases:
        plain_sql, cow_sql = sql.format(t="plain_log"), sql.format(t="log")
        plain = await _median(rounds, lambda q=plain_sql: _rolled_back(conn, None, q))
        cow = await _median(rounds, lambda q=cow_sql, s=sid: _rolled_back(conn, s, q))
        results.append((label, plain, cow))

    async def direct() -> float:
        start = time.perf_counter()
        await conn.execute(INSERT.format(t="plain_log", n=5000))
        return time.perf_counter() - start

    async def commit() -> float:
        sid = uuid.uuid4()
        async with conn.transaction():
            await ac.apply_cow_variables(ex, sid, uuid.uuid4())
            await conn.execute(INSERT.format(t="log", n=5000))
        start = time.perf_counter()
        await ac.commit_cow_session(ex, "log", sid)
        return time.perf_counter() - start

    plain_commit = await _median(rounds, direct)
    results.append(("commit of 5k appended rows", plain_commit, await _median(rounds, commit)))
    return results


async def measure(dsn: str, rounds: int) -> list[Result]:
    async with scratch_database(dsn, "append_only") as conn:
        return await _measure(conn, rounds)


def report(results: Sequence[Result]) -> str:
    return "\n".join(
        f"{label:40}  plain {plain * 1e3:8.2f} ms  COW {cow * 1e3:8.2f} ms  "
        f"ratio {cow / plain:5.2f}"
        for label, plain, cow in results
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    print_on_server(args.dsn, lambda dsn: report(asyncio.run(measure(dsn, args.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
