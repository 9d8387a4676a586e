"""Production traffic and agent-shaped sessions under pgbench: ``python -m benchmarks.pgbench``.

Two databases on one server, both ``pgbench -i`` at the same scale: a plain copy, and a copy
with COW enabled on its schema (the rename layout: every statement goes through the views;
``pgbench_history`` has no key, so it is append-only in sessions). Each workload runs on
both, alternating, and reports transactions per second and the transactions that failed
after retries (``--max-tries``: serialization failures are retried, as an application
would):

* ``tpcb``, ``select-only``, ``simple-update``: pgbench's built-in scripts with no session,
  the application's own traffic, in the simple and the prepared protocol;
* ``agent``: each client its own session (settings, then a one-row UPDATE, a one-row SELECT
  and a one-row INSERT in one transaction), the shape of an agent's request; on the plain
  copy the settings are set and ignored.

pgbench comes from PostgreSQL 15's binaries (a client of any server version).
``--dsn`` uses an existing server (superuser DSN); otherwise a throwaway one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import print_on_server
from tests.postgres_server import replace_dsn

PGBENCH = Path("/usr/lib/postgresql/15/bin/pgbench")
SCALE = 5
CLIENTS = 8

#: An agent's request: its session (one per client), then a write, a read and an append.
AGENT_SCRIPT = Path(__file__).with_name("pgbench_agent.sql")


@dataclass(frozen=True)
class Run:
    tps: float
    failed: int
    retried: int


@dataclass(frozen=True)
class Row:
    workload: str
    protocol: str
    plain: Run
    cow: Run


def _pgbench(dsn: str, args: Sequence[str]) -> Run:
    done = subprocess.run(
        [str(PGBENCH), *args, dsn], capture_output=True, text=True, timeout=600, check=False
    )
    out = done.stdout + done.stderr
    tps = re.search(r"tps = ([0-9.]+)", out)
    if done.returncode not in (0, 2) or tps is None:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{out[-2000:]}")
    failed = re.search(r"number of failed transactions: (\d+)", out)
    retried = re.search(r"number of transactions retried: (\d+)", out)
    return Run(
        float(tps.group(1)),
        int(failed.group(1)) if failed else 0,
        int(retried.group(1)) if retried else 0,
    )


async def _prepare(dsn: str, plain: str, cow: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for name in (plain, cow):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    for name in (plain, cow):
        subprocess.run(
            [str(PGBENCH), "-i", "-q", "-s", str(SCALE), replace_dsn(dsn, database=name)],
            capture_output=True,
            check=True,
            timeout=600,
        )
    conn = await asyncpg.connect(replace_dsn(dsn, database=cow))
    try:
        ex = AsyncpgExecutor(conn)
        await ac.deploy_cow_functions(ex)
        await ac.enable_cow_schema(ex)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _drop(dsn: str, names: Sequence[str]) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


#: The workloads: pgbench's built-in scripts (no session), and an agent's request.
WORKLOADS = (
    ("tpcb", ("-b", "tpcb-like")),
    ("select-only", ("-b", "select-only")),
    ("simple-update", ("-b", "simple-update")),
    ("agent", ("-f", str(AGENT_SCRIPT))),
)


def measure(dsn: str, seconds: int) -> list[Row]:
    plain, cow = "pgbench_plain", "pgbench_cow"
    asyncio.run(_drop(dsn, (plain, cow)))
    try:
        asyncio.run(_prepare(dsn, plain, cow))
        common = ["-n", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "--max-tries=10"]
        rows = []
        for workload, script in WORKLOADS:
            for protocol in ("simple", "prepared"):
                args = [*common, "-M", protocol, *script]
                runs = {
                    name: _pgbench(replace_dsn(dsn, database=name), args) for name in (plain, cow)
                }
                rows.append(Row(workload, protocol, runs[plain], runs[cow]))
        return rows
    finally:
        asyncio.run(_drop(dsn, (plain, cow)))


def report(rows: Sequence[Row]) -> str:
    lines = [
        f"pgbench, scale {SCALE}, {CLIENTS} clients; tps plain / COW (rename layout), "
        "failed after retries plain / COW"
    ]
    for r in rows:
        lines.append(
            f"{r.workload:14} {r.protocol:9} {r.plain.tps:9.0f} / {r.cow.tps:9.0f} tps  "
            f"ratio {r.cow.tps / r.plain.tps:5.2f}  failed {r.plain.failed} / {r.cow.failed}  "
            f"retried {r.plain.retried} / {r.cow.retried}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--seconds", type=int, default=10, help="per workload and copy")
    args = parser.parse_args(argv)
    print_on_server(args.dsn, lambda dsn: report(measure(dsn, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
