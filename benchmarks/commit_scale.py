"""Session writes and commit by session size, against the same writes made directly:
``python -m benchmarks.commit_scale``.

For each size n, a session updates n rows and inserts n rows of a 200k-row table, in one
transaction (timed: "write"); then ``commit_cow_session`` applies it (in a transaction of
its own, as a reviewer's call runs: "commit"). The plain twin table gets the same two
statements in one transaction ("direct").
The change table is analyzed empty first (what autovacuum leaves after a commit), and each
size also runs while another session holds 50k versions of the same table: the commit of one
session must not depend on what others hold. Ratios are of the medians of ``--rounds``.
``--dsn`` uses an existing server (superuser DSN); otherwise a throwaway one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import print_on_server, scratch_database

ROWS = 200_000
SIZES = (1, 100, 1_000, 10_000, 100_000)
OTHER_SESSION = 50_000
TABLE = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, account int NOT NULL, name text NOT NULL, "
    "qty int NOT NULL CHECK (qty > 0), note text);"
    "INSERT INTO {t} SELECT g, g % 1000, 'name ' || g, 1 + g % 50, NULL "
    f"FROM generate_series(1, {ROWS}) g"
)


def _writes(table: str, size: int, fresh: int) -> list[str]:
    """n updated rows and n inserted rows (ids from ``fresh`` on, never used before)."""
    return [
        f"UPDATE {table} SET qty = qty + 1, note = 'x' WHERE id BETWEEN 1 AND {size}",
        f"INSERT INTO {table} SELECT g, 7, 'new ' || g, 3, NULL "
        f"FROM generate_series({fresh}, {fresh + size - 1}) g",
    ]


async def _session(conn: asyncpg.Connection, sid: uuid.UUID, statements: list[str]) -> float:
    """Seconds the statements took in the session."""
    start = time.perf_counter()
    async with conn.transaction():
        await conn.execute(
            f"SELECT set_config('app.session_id', '{sid}', true), "
            f"set_config('app.operation_id', '{uuid.uuid4()}', true)"
        )
        for sql in statements:
            await conn.execute(sql)
    return time.perf_counter() - start


Result = tuple[str, float, float, float]  # label, direct, write, commit (seconds)


async def _measure(conn: asyncpg.Connection, rounds: int, sizes: Sequence[int]) -> list[Result]:
    ex = AsyncpgExecutor(conn)
    await conn.execute(TABLE.format(t="plain_orders") + ";" + TABLE.format(t="orders"))
    await ac.deploy_cow_functions(ex)
    await ac.enable_cow(ex, "orders")
    results: list[Result] = []
    fresh = 10 * ROWS
    for other in (0, OTHER_SESSION):
        if other:
            await _session(conn, uuid.uuid4(), [_writes("orders", other, 100 * ROWS)[1]])
        for size in sizes:
            plain_times, write_times, cow_times = [], [], []
            for _ in range(rounds):
                await conn.execute("VACUUM ANALYZE orders_changes")
                statements = _writes("plain_orders", size, fresh)
                start = time.perf_counter()
                async with conn.transaction():
                    for sql in statements:
                        await conn.execute(sql)
                plain_times.append(time.perf_counter() - start)
                sid = uuid.uuid4()
                write_times.append(await _session(conn, sid, _writes("orders", size, fresh)))
                start = time.perf_counter()
                await ac.commit_cow_session(ex, "orders", sid)
                cow_times.append(time.perf_counter() - start)
                fresh += size
            label = f"{size} upd + {size} ins" + (f", other session {other}" if other else "")
            direct, write, commit = (
                statistics.median(t) for t in (plain_times, write_times, cow_times)
            )
            results.append((label, direct, write, commit))
    return results


async def measure(dsn: str, rounds: int, sizes: Sequence[int] = SIZES) -> list[Result]:
    async with scratch_database(dsn, "commit_scale") as conn:
        return await _measure(conn, rounds, sizes)


def report(results: list[Result]) -> str:
    return "\n".join(
        f"{label:46}  direct {plain * 1e3:9.2f} ms  "
        f"write {write * 1e3:9.2f} ms ({write / plain:5.2f}x)  "
        f"commit {commit * 1e3:9.2f} ms ({commit / plain:5.2f}x)"
        for label, plain, write, commit in results
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print_on_server(args.dsn, lambda dsn: report(asyncio.run(measure(dsn, args.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
