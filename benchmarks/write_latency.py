"""Single-row write latency, COW session vs plain table: ``python -m benchmarks.write_latency``.

A table with NOT NULL and CHECK constraints (what the session write path checks in its
trigger; ``--unique`` adds a UNIQUE column), one row per statement, three ways:

* ``server``: a loop on the server (a DO block), no round trips: the statement's own cost;
* ``statement``: prepared statements from the client inside one open transaction;
* ``transaction``: each write its own transaction, entered with ``apply_cow_variables``
  (what an application does per agent request).

Rounds alternate between the plain table and the session, so load on the machine hits both
alike; ratios are of the medians. ``--dsn`` uses an existing server (superuser DSN);
otherwise a throwaway one is started.
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

TABLE = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY,
    account int NOT NULL,
    name text NOT NULL,
    qty int NOT NULL CHECK (qty > 0),
    lo int, hi int,
    code text{unique},
    CONSTRAINT {t}_range CHECK (lo <= hi)
)
"""


async def _time(run: Callable[[int], Awaitable[None]], first: int, count: int) -> list[float]:
    times = []
    for i in range(first, first + count):
        start = time.perf_counter()
        await run(i)
        times.append(time.perf_counter() - start)
    return times


async def measure(dsn: str, rounds: int, per_round: int, unique: bool) -> dict[str, float]:
    async with scratch_database(dsn, "write_latency") as conn:
        return await _measure(conn, rounds, per_round, unique)


async def _measure(
    conn: asyncpg.Connection, rounds: int, per_round: int, unique: bool
) -> dict[str, float]:
    ex = AsyncpgExecutor(conn)
    u = " UNIQUE" if unique else ""
    await conn.execute(
        TABLE.format(t="plain_orders", unique=u) + ";" + TABLE.format(t="orders", unique=u)
    )
    await ac.deploy_cow_functions(ex)
    await ac.enable_cow(ex, "orders")
    sid = uuid.uuid4()
    insert = (
        "INSERT INTO {t} (id, account, name, qty, lo, hi, code) "
        "VALUES ($1::bigint, 1, 'n', 5, 1, 2, $1::bigint::text)"
    )
    update = "UPDATE {t} SET qty = qty + 1 WHERE id = $1"
    delete = "DELETE FROM {t} WHERE id = $1"
    sql_of = {"insert": insert, "update": update, "delete": delete}
    stmts = {
        (kind, table): await conn.prepare(sql.format(t=table))
        for kind, sql in sql_of.items()
        for table in ("plain_orders", "orders")
    }
    # the rows each kind writes in each scope: inserts make them, the others reuse them
    # (every row deleted once: the server loop deletes what it inserted, and so on)
    rows_of = {
        "insert": lambda ids, more, loop: (loop, ids, more),
        "update": lambda ids, more, loop: ((ids[0], ids[-1]), ids, ids),
        "delete": lambda ids, more, loop: (loop, ids, more),
    }
    samples: dict[str, list[float]] = {}

    async def timed(label: str, run: Callable[[], Awaitable[object]]) -> None:
        start = time.perf_counter()
        await run()
        samples.setdefault(label, []).append(time.perf_counter() - start)

    next_id = 1
    for _ in range(rounds):
        ids = range(next_id, next_id + per_round)
        more = range(next_id + per_round, next_id + 2 * per_round)  # one transaction each
        loop = (next_id + 2 * per_round, next_id + 3 * per_round - 1)  # in a server-side loop
        next_id += 3 * per_round
        for kind in ("insert", "update", "delete"):
            server_rows, statement_rows, transaction_rows = rows_of[kind](ids, more, loop)
            # the statements run by a loop on the server: no client round trips, no parsing
            for table in ("plain_orders", "orders"):
                first, last = server_rows
                session = (
                    f"PERFORM set_config('app.session_id', '{sid}', true), "
                    f"set_config('app.operation_id', '{uuid.uuid4()}', true);"
                    if table == "orders"
                    else ""
                )
                body = sql_of[kind].format(t=table)
                body = body.replace("$1::bigint", "i").replace("$1", "i")
                block = (
                    f"DO $b$ BEGIN {session} FOR i IN {first}..{last} LOOP {body}; "
                    "END LOOP; END $b$"
                )
                start = time.perf_counter()
                await conn.execute(block)
                per_statement = (time.perf_counter() - start) / (last - first + 1)
                samples.setdefault(f"{kind} server {table}", []).append(per_statement)
            # statements inside one open transaction: the server-side cost of each write
            for table in ("plain_orders", "orders"):
                async with conn.transaction():
                    if table == "orders":
                        await ac.apply_cow_variables(ex, sid, uuid.uuid4())
                    stmt = stmts[(kind, table)]
                    for i in statement_rows:
                        await timed(f"{kind} statement {table}", lambda: stmt.fetch(i))  # noqa: B023
            # one transaction per write, the session's variables set in it
            for table in ("plain_orders", "orders"):
                stmt = stmts[(kind, table)]
                for i in transaction_rows:

                    async def write() -> None:
                        async with conn.transaction():
                            if table == "orders":  # noqa: B023
                                await ac.apply_cow_variables(ex, sid, uuid.uuid4())
                            await stmt.fetch(i)  # noqa: B023

                    await timed(f"{kind} transaction {table}", write)
    return {k: statistics.median(v) * 1e6 for k, v in samples.items()}


def report(result: dict[str, float]) -> str:
    lines = []
    for kind in ("insert", "update", "delete"):
        for scope in ("server", "statement", "transaction"):
            plain = result[f"{kind} {scope} plain_orders"]
            cow = result[f"{kind} {scope} orders"]
            lines.append(
                f"{kind} {scope:11}  plain {plain:7.1f} us  COW {cow:7.1f} us  "
                f"ratio {cow / plain:.2f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--unique", action="store_true", help="make column code UNIQUE")
    args = parser.parse_args(argv)

    print_on_server(
        args.dsn,
        lambda dsn: report(asyncio.run(measure(dsn, args.rounds, args.per_round, args.unique))),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
