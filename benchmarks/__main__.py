"""``python -m benchmarks``: time COW against plain tables on one throwaway server."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

import asyncpg

from benchmarks import (
    append_only,
    commit_scale,
    pgbench,
    policy,
    review,
    upserts,
    write_latency,
)
from benchmarks.cases import Bench, Repeats, check_session_view, run_all
from benchmarks.explain import session_plans
from benchmarks.operations import operations
from benchmarks.regimes import regimes
from benchmarks.report import Report, print_report
from benchmarks.setup import (
    BATCH,
    BlockAllocator,
    Connection,
    bench_database,
    create_read_session,
    load_tables,
    vacuum_analyze,
)
from tests.postgres_server import ServerInfo, running_postgres

DEFAULT_ROWS = 200_000
#: Session sizes of the by-size cases (commit_scale goes on to 100k when run alone).
SIZES = (1, 1_000, 10_000)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def _settings(conn: Connection) -> str:
    names = ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather")
    values = [f"{name}={await conn.fetchval(f'SHOW {name}')}" for name in names]
    return ", ".join(values)


async def run(server: ServerInfo, rows: int, repeats: Repeats, started: float) -> Report:
    async with bench_database(server) as dsn:
        conn: Connection = await asyncpg.connect(dsn)
        try:
            version = await conn.fetchval("SHOW server_version")
            progress(f"PostgreSQL {version} ({server.kind}): loading 2 x {rows} rows")
            await load_tables(conn, rows)
            session = await create_read_session(conn, rows)
            await vacuum_analyze(conn)
            bench = Bench(conn, session, rows, repeats, BlockAllocator(rows))
            await check_session_view(bench)
            progress("EXPLAIN in session")
            plans, index_check = await session_plans(bench)
            results = await run_all(bench, progress)
            progress("operations: review, cherry-pick and commit of a session")
            results += await operations(bench)
            progress("reads in a session under the planner's regimes")
            results += await regimes(bench, progress)
            settings = await _settings(conn)
        finally:
            await conn.close()
    return Report(
        server=f"PostgreSQL {version} ({server.kind})",
        settings=(
            f"{rows} rows per table; read session holds {BATCH} updated + {BATCH} inserted rows; "
            f"{settings}"
        ),
        results=results,
        plans=plans,
        index_check=index_check,
        elapsed=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help=f"rows per table (default {DEFAULT_ROWS})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="few repetitions: a smoke test, not a measurement"
    )
    args = parser.parse_args(argv)
    if args.rows < 4 * BATCH:
        parser.error(f"--rows must be at least {4 * BATCH}")
    repeats = Repeats.quick() if args.quick else Repeats()
    started = time.monotonic()
    with running_postgres() as server:
        report = asyncio.run(run(server, args.rows, repeats, started))
        progress("writes and commits by session size (change table analyzed empty)")
        by_size = asyncio.run(commit_scale.measure(server.dsn, 1 if args.quick else 3, SIZES))
        progress("single-row writes")
        rounds = 1 if args.quick else 4
        single = asyncio.run(write_latency.measure(server.dsn, rounds, 100, unique=False))
        progress("a table without a key (append-only in sessions)")
        keyless = asyncio.run(append_only.measure(server.dsn, 3 if args.quick else 7))
        progress("reviewing a session of 10k changed rows")
        reviewing = asyncio.run(review.measure(server.dsn, 1 if args.quick else 3))
        progress("policy evaluation on a session of 10k changed rows")
        policies = asyncio.run(policy.measure(server.dsn, 1 if args.quick else 5))
        progress("upserts through a session")
        upserting = asyncio.run(upserts.measure(server.dsn, 1 if args.quick else 5))
        traffic = None
        if pgbench.PGBENCH.exists():
            progress("pgbench: production traffic and agent-shaped sessions")
            traffic = pgbench.measure(server.dsn, 2 if args.quick else 6)
    print_report(report)
    print(
        f"\nWrites and commit by session size (python -m benchmarks.commit_scale, n up to "
        f"{SIZES[-1]}; the module alone goes to {commit_scale.SIZES[-1]}):"
    )
    print(commit_scale.report(by_size))
    print("\nSingle-row writes (python -m benchmarks.write_latency), medians:")
    print(write_latency.report(single))
    print("\nA table without a key, 100k rows (python -m benchmarks.append_only), medians:")
    print(append_only.report(keyless))
    print(
        f"\nReviewing a session of {review.ROWS} changed rows (python -m benchmarks.review), "
        "medians:"
    )
    print(review.report(reviewing))
    print(
        "\nPolicy evaluation, a session of 10k changed rows (python -m benchmarks.policy), medians:"
    )
    print(policy.report(policies))
    print(
        "\nUpserts of n rows, half conflicting, prepared per call as CowSession sends them "
        "(python -m benchmarks.upserts), medians:"
    )
    print(upserts.report(upserting))
    print()
    print(pgbench.report(traffic) if traffic else f"pgbench: {pgbench.PGBENCH} not found, skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
