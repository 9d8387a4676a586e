"""Production traffic and agent-shaped sessions under pgbench: ``python -m benchmarks.pgbench``.

Three databases on one server with the same ``pgbench -i`` data (the COW copies are made
from the plain one as a template): a plain copy; a copy with COW enabled on its schema in
the rename layout (every statement goes through the views); and one in the overlay layout
(the tables stay as they are, the views are in ``public_cow``, reached through the
search_path a session sets). ``pgbench_history`` has no key, so it is append-only in
sessions. Each workload runs on the three in turns of 2 s (a burst of other work on the
machine then falls on every copy alike), and reports transactions per second and the
transactions that failed after retries (``--max-tries``: serialization failures are
retried, as an application would):

* ``tpcb``, ``select-only``, ``simple-update``: pgbench's built-in scripts with no session,
  the application's own traffic, in the simple and the prepared protocol;
* ``agent``: each client its own session (entered, then a one-row UPDATE, a one-row SELECT
  and a one-row INSERT in one transaction), the shape of an agent's request. The session is
  entered by the statement ``apply_cow_variables`` sends (sql/enter_session.sql: the three
  settings and the session's search_path, computed by ``agentcow.session_search_path``).
  The plain copy, which has no kit, runs the same statement with that function's result
  replaced by the NULL it returns where no schema has an overlay: the same settings, the
  search_path set to what it was. So the ratio prices what the kit adds to a request: the
  function call, the views and the write triggers.
* ``agent-bound`` and ``tpcb-hardened``: the same, with an agent role registered on the COW
  copies (``add_agent_role``: the session functions read bindings, not settings). The
  agent's request logs in as that role and is bound by ``agentcow.bind_session`` with a
  binding key (sql/bind_session.sql) instead of the settings; tpcb is production's own
  traffic in such a database. The plain copy runs what it runs for ``agent`` and ``tpcb``.

Each pgbench run opens its connections anew: a COW copy's backends first compile the kit's
PL/pgSQL functions and plan each view statement five times before keeping a generic plan
(about 10 ms per connection), which costs the COW copies' sessions a few per cent of a 2 s
turn that a pooled connection would not pay.

``--statements`` prints, instead, the agent script's mean latency statement by statement
(``pgbench -r``, one client) on each copy: where a request's time goes.

pgbench comes from PostgreSQL 15's binaries (a client of any server version).
``--dsn`` uses an existing server (superuser DSN); otherwise a throwaway one is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.identifiers import quote_literal
from agentcow.templates import render
from benchmarks.setup import print_on_server
from tests.postgres_server import replace_dsn

PGBENCH = Path("/usr/lib/postgresql/15/bin/pgbench")
SCALE = 5
CLIENTS = 8

#: The copies, by name: the plain tables, then each layout.
COPIES = ("plain", "rename", "overlay")
LAYOUTS = ("rename", "overlay")

#: An agent's request: its session (one per client), then a write, a read and an append.
AGENT_SCRIPT = Path(__file__).with_name("pgbench_agent.sql")
#: The login role of the bound agent's requests (agent-bound), and its password.
BENCH_AGENT, BENCH_AGENT_PASSWORD = "agentcow_bench_agent", "agentcow-bench"

#: Stand-ins for the session's settings in the rendered entry, replaced by pgbench
#: expressions: a session per client, a new operation per request.
_SESSION, _OPERATION = (
    "00000000-0000-0000-0000-00000000000a",
    "00000000-0000-0000-0000-00000000000b",
)
_SESSION_EXPR = "md5('session ' || :client_id)::uuid::text"
_OPERATION_EXPR = "gen_random_uuid()::text"
#: The kit's part of entering a session, which the plain copy has not.
_KIT_PATH = "agentcow.session_search_path(pg_catalog.current_schemas(false))"
_KIT_REGISTER = (
    "agentcow.enter_session(NULLIF(pg_catalog.current_setting('app.session_id', true), '')"
    "::pg_catalog.uuid, "
    "NULL, NULL)"
)


def enter_session_sql(kit: bool) -> str:
    """The statement ``apply_cow_variables`` sends to enter a session (a transaction is
    open), with the session and operation ids as pgbench expressions; ``kit=False``: with
    the NULL ``agentcow.session_search_path`` gives where no schema has an overlay in place
    of its call, and no registry entry."""
    sql = render(
        "enter_session.sql",
        settings=[
            ("app.session_id", _SESSION),
            ("app.operation_id", _OPERATION),
            ("app.visible_operations", ""),
        ],
        tenant=None,
        label=None,
    )
    for old, new in (
        (f"'{_SESSION}'", _SESSION_EXPR),
        (f"'{_OPERATION}'", _OPERATION_EXPR),
        *(() if kit else ((_KIT_PATH, "NULL"), (_KIT_REGISTER, "NULL"))),
    ):
        if old not in sql:
            raise RuntimeError(f"sql/enter_session.sql changed: no {old} in {sql}")
        sql = sql.replace(old, new)
    return " ".join(sql.split())


def bind_session_sql(key: str) -> str:
    """The statement a CowSession with a binding key sends to bind its transaction, with the
    session and operation ids as pgbench expressions and the key as a literal (an
    application sends them as parameters)."""
    sql = render(
        "bind_session.sql",
        placeholders=[
            _SESSION_EXPR + "::uuid",
            _OPERATION_EXPR + "::uuid",
            quote_literal(key),
            "NULL",
            "NULL",
        ],
    )
    return " ".join(sql.split())


def agent_script(entry: str) -> str:
    """The agent-shaped pgbench script (:data:`AGENT_SCRIPT`) with its session entry."""
    return AGENT_SCRIPT.read_text().replace("{enter_session};", entry + ";")


@dataclass(frozen=True)
class Run:
    tps: float
    failed: int
    retried: int


@dataclass(frozen=True)
class Row:
    """One workload in one protocol: its runs on each copy (one per round, by copy name)."""

    workload: str
    protocol: str
    runs: dict[str, list[Run]]
    #: tps of each pgbench run on the plain copy: how much the machine moved meanwhile
    plain_slices: list[float] = field(default_factory=list)

    @property
    def noise(self) -> str:
        """Half the spread of the plain copy's runs, relative to their median ('-' for one)."""
        tps = self.plain_slices
        if len(tps) < 2:
            return "-"
        return f"{100 * (max(tps) - min(tps)) / 2 / statistics.median(tps):.0f}%"

    def ratios(self, layout: str) -> list[float]:
        """tps of the layout's copy / the plain copy's, round by round."""
        return [c.tps / p.tps for p, c in zip(self.runs["plain"], self.runs[layout], strict=True)]


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


def _database(copy: str) -> str:
    return f"pgbench_{copy}"


async def _prepare(dsn: str) -> dict[str, str]:
    """The plain copy by ``pgbench -i``, the others from it as a template, then COW enabled
    on each layout's copy, and every copy vacuumed and analyzed alike. The bound agent's
    login role may use the COW copies' views; returns each COW copy's binding key."""
    plain = _database("plain")
    keys = {}
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            f"DO $$ BEGIN CREATE ROLE {BENCH_AGENT} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        await admin.execute(f"ALTER ROLE {BENCH_AGENT} PASSWORD '{BENCH_AGENT_PASSWORD}'")
        await admin.execute(f'CREATE DATABASE "{plain}"')
        subprocess.run(
            [str(PGBENCH), "-i", "-q", "-s", str(SCALE), replace_dsn(dsn, database=plain)],
            capture_output=True,
            check=True,
            timeout=600,
        )
        for layout in LAYOUTS:
            await admin.execute(f'CREATE DATABASE "{_database(layout)}" TEMPLATE "{plain}"')
    finally:
        await admin.close()
    for copy in COPIES:
        conn = await asyncpg.connect(replace_dsn(dsn, database=_database(copy)))
        try:
            if copy in LAYOUTS:
                ex = AsyncpgExecutor(conn)
                await ac.deploy_cow_functions(ex)
                await ac.enable_cow_schema(ex, layout=copy)
                views = "public_cow" if copy == "overlay" else "public"
                await conn.execute(
                    f"GRANT USAGE ON SCHEMA {views} TO {BENCH_AGENT}; "
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {views} "
                    f"TO {BENCH_AGENT}"
                )
                keys[copy] = await ac.create_binding_key(ex, label="bench")
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    return keys


async def _register_agent(dsn: str, registered: bool) -> None:
    """Register the bound agent's role as an agent role on the COW copies, or remove it."""
    for copy in LAYOUTS:
        conn = await asyncpg.connect(replace_dsn(dsn, database=_database(copy)))
        try:
            change = ac.add_agent_role if registered else ac.remove_agent_role
            await change(AsyncpgExecutor(conn), BENCH_AGENT)
        finally:
            await conn.close()


async def _drop(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for copy in COPIES:
            await admin.execute(f'DROP DATABASE IF EXISTS "{_database(copy)}" WITH (FORCE)')
    finally:
        await admin.close()


#: The workloads: name, and pgbench's built-in script (no session) or None (an agent's request).
PROTOCOLS = ("simple", "prepared")
WORKLOADS = (
    ("tpcb", "tpcb-like"),
    ("select-only", "select-only"),
    ("simple-update", "simple-update"),
    ("agent", None),
    ("agent-bound", None),
    ("tpcb-hardened", "tpcb-like"),
)
#: The workloads run with the bound agent's role registered as an agent role.
HARDENED = frozenset({"agent-bound", "tpcb-hardened"})
#: The overlay layout's targets, tps ratio to the plain copy: the application's traffic (no
#: session) as on its tables; an agent's request.
TARGETS = {"agent": 0.8, "agent-bound": 0.8}
PRODUCTION_TARGET = 0.97


def _combined(runs: Sequence[Run]) -> Run:
    """Runs of equal length as one: mean tps, failures and retries summed."""
    return Run(
        statistics.fmean(r.tps for r in runs),
        sum(r.failed for r in runs),
        sum(r.retried for r in runs),
    )


@contextlib.contextmanager
def _copies(dsn: str) -> Iterator[dict[tuple[str, str], Path]]:
    """The three copies for the ``with`` block (dropped afterwards), and the agent script's
    files by (workload, copy): ``agent`` enters its session with settings (the kit's entry
    on the COW copies, the plain one's on the plain copy); ``agent-bound`` binds it on the
    COW copies with each copy's key."""
    asyncio.run(_drop(dsn))
    try:
        keys = asyncio.run(_prepare(dsn))
        with tempfile.TemporaryDirectory(prefix="agentcow-pgbench-") as folder:
            scripts = {}
            for workload in ("agent", "agent-bound"):
                for copy in COPIES:
                    if copy == "plain":
                        entry = enter_session_sql(False)
                    elif workload == "agent":
                        entry = enter_session_sql(True)
                    else:
                        entry = bind_session_sql(keys[copy])
                    path = Path(folder) / f"{workload}_{copy}.sql"
                    path.write_text(agent_script(entry))
                    scripts[workload, copy] = path
            yield scripts
    finally:
        asyncio.run(_drop(dsn))


def _login(dsn: str, workload: str, copy: str) -> str:
    """Where a run of ``workload`` on ``copy`` connects: the bound agent's role for its
    requests on the COW copies, else the superuser."""
    dsn = replace_dsn(dsn, database=_database(copy))
    if workload == "agent-bound" and copy in LAYOUTS:
        return replace_dsn(dsn, user=BENCH_AGENT, password=BENCH_AGENT_PASSWORD)
    return dsn


def measure(dsn: str, seconds: int, rounds: int = 1, slice_seconds: int = 2) -> list[Row]:
    """Every workload in both protocols on the three copies, ``rounds`` times over. A copy's
    ``seconds`` of a workload are pgbench runs of ``slice_seconds``, taking turns with the
    other copies' (the order turning at each slice), so that a burst of other work on the
    machine falls on every copy alike."""
    slices = max(1, seconds // slice_seconds)
    common = ["-n", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds // slices)]
    common.append("--max-tries=10")
    rows = {
        (w, p): Row(w, p, {copy: [] for copy in COPIES}) for w, _ in WORKLOADS for p in PROTOCOLS
    }
    builtin = dict(WORKLOADS)
    turn = 0
    registered = False
    with _copies(dsn) as scripts:
        for _ in range(rounds):
            for (workload, protocol), row in rows.items():
                if (workload in HARDENED) != registered:
                    registered = workload in HARDENED
                    asyncio.run(_register_agent(dsn, registered))
                name = builtin[workload]
                script = ["-b", name] if name else None
                runs: dict[str, list[Run]] = {copy: [] for copy in COPIES}
                for _ in range(slices):
                    turn += 1
                    for copy in COPIES[turn % 3 :] + COPIES[: turn % 3]:
                        args = [*common, "-M", protocol]
                        args += script or ["-f", str(scripts[workload, copy])]
                        runs[copy].append(_pgbench(_login(dsn, workload, copy), args))
                for copy in COPIES:
                    row.runs[copy].append(_combined(runs[copy]))
                row.plain_slices.extend(r.tps for r in runs["plain"])
    return list(rows.values())


#: The agent script's statements, by how their text begins.
STATEMENTS = (
    ("BEGIN", "BEGIN"),
    ("enter session", "SELECT pg_catalog.set_config"),
    ("UPDATE", "UPDATE"),
    ("SELECT", "SELECT abalance"),
    ("INSERT", "INSERT"),
    ("END (commit)", "END"),
)


def statement_latencies(dsn: str, seconds: int) -> dict[tuple[str, str], dict[str, float]]:
    """The agent script's mean latency per statement in ms (pgbench -r), one client, by
    (protocol, copy): where an agent's request spends its time on each copy."""
    latencies: dict[tuple[str, str], dict[str, float]] = {}
    with _copies(dsn) as scripts:
        for protocol in PROTOCOLS:
            for copy in COPIES:
                args = ["-n", "-c", "1", "-T", str(seconds), "-r", "-M", protocol]
                args += ["-f", str(scripts["agent", copy])]
                done = subprocess.run(
                    [str(PGBENCH), *args, replace_dsn(dsn, database=_database(copy))],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                found = {}
                for ms, command in re.findall(
                    r"^\s+([0-9.]+)\s+[0-9 ]*?\s(\S.*)$", done.stdout, re.M
                ):
                    for label, start in STATEMENTS:
                        if command.startswith(start):
                            found[label] = float(ms)
                            break
                latencies[protocol, copy] = found
    return latencies


def report_statements(latencies: dict[tuple[str, str], dict[str, float]]) -> str:
    lines = [
        "The agent script statement by statement (pgbench -r, one client): mean latency in ms "
        "on the plain / rename / overlay copies, and what each layout adds"
    ]
    for protocol in PROTOCOLS:
        for label, _ in (*STATEMENTS, ("total", "")):
            ms = [
                sum(latencies[protocol, c].values())
                if label == "total"
                else latencies[protocol, c].get(label, float("nan"))
                for c in COPIES
            ]
            lines.append(
                f"{protocol:9} {label:14} " + " / ".join(f"{m:6.3f}" for m in ms) + "  "
                f"{ms[1] - ms[0]:+.3f} / {ms[2] - ms[0]:+.3f}"
            )
    return "\n".join(lines)


def _range(values: Sequence[float]) -> str:
    low, high = f"{min(values):.2f}", f"{max(values):.2f}"
    return low if low == high else f"{low}-{high}"


def report(rows: Sequence[Row]) -> str:
    rounds = len(rows[0].runs["plain"]) if rows else 0
    lines = [
        f"pgbench, scale {SCALE}, {CLIENTS} clients, {rounds} round(s): median tps of the plain / "
        "rename / overlay copies; tps ratios layout / plain (the range over rounds); the overlay "
        "layout's target (on the median ratio); transactions failed after retries and "
        "retried, summed over rounds, plain / rename / overlay; noise: half the spread of the "
        f"plain copy's own {CLIENTS}-client runs, relative to their median"
    ]
    for r in rows:
        tps = " / ".join(f"{statistics.median(x.tps for x in r.runs[c]):6.0f}" for c in COPIES)
        failed = " / ".join(str(sum(x.failed for x in r.runs[c])) for c in COPIES)
        retried = " / ".join(str(sum(x.retried for x in r.runs[c])) for c in COPIES)
        target = TARGETS.get(r.workload, PRODUCTION_TARGET)
        met = statistics.median(r.ratios("overlay")) >= target and (
            sum(x.failed for x in r.runs["overlay"]) <= sum(x.failed for x in r.runs["plain"])
        )
        lines.append(
            f"{r.workload:14} {r.protocol:9} {tps} tps  rename {_range(r.ratios('rename')):9}  "
            f"overlay {_range(r.ratios('overlay')):9}  >= {target:.2f} {'met' if met else 'MISSED'}"
            f"  failed {failed}  retried {retried}  noise {r.noise}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="superuser DSN of an existing server")
    parser.add_argument("--seconds", type=int, default=6, help="per workload and copy")
    parser.add_argument("--rounds", type=int, default=1, help="times every run is repeated")
    parser.add_argument(
        "--slice", type=int, default=2, help="seconds of each pgbench run (copies take turns)"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="instead: the agent script statement by statement, one client (pgbench -r)",
    )
    args = parser.parse_args(argv)
    if args.statements:
        print_on_server(
            args.dsn, lambda dsn: report_statements(statement_latencies(dsn, args.seconds))
        )
    else:
        print_on_server(
            args.dsn, lambda dsn: report(measure(dsn, args.seconds, args.rounds, args.slice))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
