"""What the MCP server adds to an agent's statement: ``python -m benchmarks.mcp_calls [--dsn DSN]``.

A 10k-row COW table; the time from spawning ``python -m agentcow mcp`` to its first answer,
then a point read by key per call through the server (the SDK's client over stdio) against
the same read through a ``CowSession`` on a pool in this process (what the server does for
each call), and a ``diff`` of 100 pending rows. Medians (and minimums) of the calls. A
throwaway server unless ``--dsn`` (a superuser DSN) names one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from mcp import Client, StdioServerParameters

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import scratch_database
from tests.postgres_server import running_postgres

ROOT = Path(__file__).resolve().parent.parent
CALLS, SPAWNS = 200, 3

TABLE = """
CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, name text);
INSERT INTO items SELECT g, g % 100, 'item ' || g FROM generate_series(1, 10000) g;
ANALYZE items;
"""


def _server(dsn: str, session_id: uuid.UUID) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentcow", "mcp"],
        env={"PYTHONPATH": str(ROOT), "AGENTCOW_DSN": dsn, "AGENTCOW_SESSION_ID": str(session_id)},
    )


async def _times(call: Callable[[int], Awaitable[object]], count: int) -> list[float]:
    times = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - start)
    return times


def _line(what: str, times: list[float]) -> str:
    median, least = statistics.median(times) * 1e3, min(times) * 1e3
    return f"{what:<44} median {median:8.2f} ms   min {least:8.2f} ms"


async def measure(dsn: str) -> None:
    async with scratch_database(dsn, "agentcow_mcp_bench") as conn:
        db = AsyncpgExecutor(conn)
        await ac.deploy_cow_functions(db)
        await conn.execute(TABLE)
        await ac.enable_cow(db, "items")
        database_dsn = (
            dsn.rsplit("/", 1)[0] + "/" + await conn.fetchval("SELECT current_database()")
        )
        session_id = uuid.uuid4()

        async def spawn(_: int) -> None:
            async with Client(_server(database_dsn, session_id)) as client:
                await client.list_tools()

        print(_line("spawn to first answer (list_tools)", await _times(spawn, SPAWNS)))

        async with Client(_server(database_dsn, session_id), read_timeout_seconds=60) as client:

            async def through_server(i: int) -> None:
                sql = f"SELECT * FROM items WHERE id = {i + 1}"
                result = await client.call_tool("execute_sql", {"sql": sql})
                assert not result.is_error, result

            print(_line("point read via execute_sql (stdio)", await _times(through_server, CALLS)))
            sql = "UPDATE items SET qty = qty + 1 WHERE id <= 100"
            assert not (await client.call_tool("execute_sql", {"sql": sql})).is_error

            async def show_diff(_: int) -> None:
                assert not (await client.call_tool("diff")).is_error

            print(_line("diff of 100 pending rows (stdio)", await _times(show_diff, 20)))

        async with asyncpg.create_pool(database_dsn, min_size=1, max_size=1) as pool:
            session = ac.CowSession(pool, session_id=session_id)

            async def direct(i: int) -> None:
                await session.execute(f"SELECT * FROM items WHERE id = {i + 1}")

            print(_line("point read via CowSession (in process)", await _times(direct, CALLS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a superuser DSN (default: a throwaway server)")
    args = parser.parse_args()
    if args.dsn:
        asyncio.run(measure(args.dsn))
        return
    with running_postgres() as server:
        asyncio.run(measure(server.dsn))


if __name__ == "__main__":
    main()
