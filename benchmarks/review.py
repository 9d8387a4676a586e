"""Reviewing a large session: ``python -m benchmarks.review``.

A session changes ``--rows`` rows of a shop-like table (a third each inserted, updated and
deleted; numeric, timestamptz, jsonb and array columns), then the review runs as a reviewer's
process would: ``diff`` (one statement, values decoded), the dashboard rendered as plain text
and as a terminal's colours, ``to_json`` and ``to_sql``. The change table is analyzed empty
before the session writes (what autovacuum leaves after a commit). Medians of ``--rounds``;
each figure is also given per 1,000 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from rich.console import Console

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import print_on_server, scratch_database

ROWS = 10_000
TABLE = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, total numeric(12, 2) NOT NULL,
                     placed_at timestamptz NOT NULL DEFAULT now(), meta jsonb, tags text[]);
INSERT INTO orders SELECT g, g % 500, g * 1.25, now(), jsonb_build_object('n', g), ARRAY['a', 'b']
FROM generate_series(1, {rows}) g
"""

Timings = dict[str, float]


async def measure(dsn: str, rounds: int, rows: int = ROWS) -> Timings:
    """Median seconds per step for a session of ``rows`` changed rows."""
    third = rows // 3
    async with scratch_database(dsn, "bench_review") as conn:
        executor = AsyncpgExecutor(conn)
        await ac.deploy_cow_functions(executor)
        await conn.execute(TABLE.format(rows=2 * rows))
        await ac.enable_cow(executor, "orders")
        await conn.execute("VACUUM ANALYZE orders_changes")
        sid = uuid.uuid4()
        async with conn.transaction():
            await ac.apply_cow_variables(executor, sid, uuid.uuid4())
            await conn.execute(f"UPDATE orders SET total = total + 1 WHERE id <= {third}")
            await conn.execute(f"DELETE FROM orders WHERE id > {third} AND id <= {2 * third}")
            first, last = 2 * rows + 1, 3 * rows - 2 * third
            await conn.execute(
                "INSERT INTO orders (id, customer, total, meta, tags) SELECT g, 1, 2.50, "
                f"'{{}}', NULL FROM generate_series({first}, {last}) g"
            )
        changes = await ac.diff(executor, sid)
        assert len(changes) == rows, len(changes)

        async def diff() -> None:
            await ac.diff(executor, sid)

        async def plain() -> None:
            changes.print(io.StringIO())

        async def terminal() -> None:
            changes.render(Console(file=io.StringIO(), force_terminal=True, width=160))

        async def to_json() -> None:
            changes.to_json()

        async def to_sql() -> None:
            changes.to_sql()

        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "diff (read and decode)": diff,
            "render, plain text": plain,
            "render, terminal colours": terminal,
            "to_json": to_json,
            "to_sql": to_sql,
        }
        return {name: await _median(step, rounds) for name, step in steps.items()}


async def _median(step: Callable[[], Awaitable[None]], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report(timings: Timings, rows: int = ROWS) -> str:
    lines = [f"{'step':<28}{'seconds':>10}{'ms per 1k rows':>17}"]
    for name, seconds in timings.items():
        lines.append(f"{name:<28}{seconds:>10.3f}{seconds * 1000 / (rows / 1000):>17.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args(argv)
    print_on_server(
        args.dsn,
        lambda dsn: report(asyncio.run(measure(dsn, args.rounds, args.rows)), args.rows),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
