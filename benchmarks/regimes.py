"""Case 9: reads in a session under the planner's regimes — how the plan was made and what
the change table's statistics said then.

Its own schema :data:`SCHEMA` holds a COW table ``regimes.r`` and a plain twin
``regimes.plain_r`` of ``bench.rows`` rows (the read tables' shape). A session updates
:data:`BATCH` rows and inserts :data:`BATCH`; three statements are timed in it, on the COW
view and on the plain table (same statement, same run), as prepared statements (asyncpg
prepares and caches every statement):

* point reads by primary key (keys alternating between rows the session updated and not);
* ``count(*), sum(amount)`` over the whole table;
* ``count(*), sum(amount) WHERE account = $1`` (an index scan of ``account``, ~40 rows).

Regimes, in the order they run:

a. *analyzed empty, prepared outside*: the change table was ``VACUUM ANALYZE``d empty
   (what autovacuum does right after a commit empties it) and the statements were prepared
   and run outside any session before the session wrote;
b. *generic plans*: ``plan_cache_mode = force_generic_plan``, statements prepared in the
   session, statistics as in a;
c. *fresh statistics*: the change table analyzed with the session in it, statements prepared
   in the session;
d. *another large session analyzed*: a session of :data:`LARGE` rows is analyzed; a new
   session of :data:`BATCH` + :data:`BATCH` rows reads, statements prepared in it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.cases import TARGET_POINT_READ, TARGET_SCAN_SESSION, Bench, transaction
from benchmarks.setup import BATCH, CREATE_TABLE, Block, Connection, insert_sql, update_sql
from benchmarks.timing import Result, Trial, compare

SCHEMA = "regimes"
COW = f"{SCHEMA}.r"
PLAIN = f"{SCHEMA}.plain_r"
TABLES = (PLAIN, f"{COW}_base", f"{COW}_changes")
LARGE = 20_000
ACCOUNT = 7

REGIMES = {
    "a": "analyzed empty, prepared outside",
    "b": "generic plans",
    "c": "fresh statistics",
    "d": "another large session analyzed",
}

REGIMES_LEGEND = f"""\
9    Reads in a session ({BATCH} updated + {BATCH} inserted rows) on tables of their own \
(schema {SCHEMA}),
     as prepared statements: point = SELECT * WHERE id = $1 (alternating changed and \
unchanged keys),
     scan = count(*), sum(amount), account = the same WHERE account = $1 (index, ~40 rows). \
Regimes:
     a = change table VACUUM ANALYZEd empty, statements prepared and run outside any session \
before the session wrote;
     b = plan_cache_mode = force_generic_plan (statistics as in a); c = change table analyzed \
with the session;
     d = a session of {LARGE} rows analyzed, then a new session of the same size as above reads."""

SQL = {
    "point": "SELECT * FROM {t} WHERE id = $1",
    "scan": "SELECT count(*), sum(amount) FROM {t}",
    "account": "SELECT count(*), sum(amount) FROM {t} WHERE account = $1",
}


@dataclass
class _Reads:
    """Prepared statements on one table (asyncpg keeps each plan on the server)."""

    point: object
    scan: object
    account: object


async def _prepare(conn: Connection, table: str, session_id: uuid.UUID | None) -> _Reads:
    """Prepare (and run once, so the plan is made) the three reads, in ``session_id`` or
    outside any session."""
    statements = {}
    async with transaction(conn, session_id):
        for name, sql in SQL.items():
            # a comment makes each preparation a new statement (asyncpg caches by text)
            stmt = await conn.prepare(f"{sql.format(t=table)} -- {uuid.uuid4()}")
            args = (1,) if name == "point" else (ACCOUNT,) if name == "account" else ()
            await stmt.fetch(*args)
            statements[name] = stmt
    return _Reads(**statements)


async def _setup(conn: Connection, rows: int) -> None:
    await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in (PLAIN, COW):
        ddl = CREATE_TABLE.format(table=table).replace(f"INDEX {table}_account_idx", "INDEX")
        await conn.execute(ddl)
        await conn.execute(insert_sql(table), 1, rows)
    await ac.enable_cow(AsyncpgExecutor(conn), "r", schema=SCHEMA)
    for table in TABLES:
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await conn.execute(f"VACUUM ANALYZE {table}")


async def _write(
    conn: Connection, updated: tuple[int, int], inserted: tuple[int, int]
) -> uuid.UUID:
    session_id = uuid.uuid4()
    async with transaction(conn, session_id, uuid.uuid4()):
        await conn.execute(update_sql(COW), *updated)
        await conn.execute(insert_sql(COW), *inserted)
    return session_id


def _point_trial(
    conn: Connection, stmt: object, keys: list[int], session_id: uuid.UUID | None
) -> Trial:
    async def run(_: Block) -> float:
        async with transaction(conn, session_id):
            start = time.perf_counter()
            for key in keys:
                await stmt.fetchrow(key)  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - start
        return elapsed / len(keys)

    return run


def _once_trial(
    conn: Connection, stmt: object, args: tuple[int, ...], session_id: uuid.UUID | None
) -> Trial:
    async def run(_: Block) -> float:
        async with transaction(conn, session_id):
            start = time.perf_counter()
            await stmt.fetch(*args)  # type: ignore[attr-defined]
            return time.perf_counter() - start

    return run


async def _measure(
    bench: Bench,
    regime: str,
    plain: _Reads,
    cow: _Reads,
    session_id: uuid.UUID,
    updated: tuple[int, int],
) -> list[Result]:
    rng = random.Random(20_240_603)
    half = bench.repeats.point_read_keys // 4
    keys = [
        k
        for pair in zip(
            rng.sample(range(updated[0], updated[1] + 1), half),
            rng.sample(range(LARGE + 1, bench.rows + 1), half),
            strict=True,
        )
        for k in pair
    ]
    conn = bench.conn
    repeat = max(3, bench.repeats.point_read // 3)
    cases: list[tuple[str, Callable[[object, uuid.UUID | None], Trial], float]] = [
        ("point read", lambda s, sid: _point_trial(conn, s, keys, sid), TARGET_POINT_READ),
        ("scan count+sum", lambda s, sid: _once_trial(conn, s, (), sid), TARGET_SCAN_SESSION),
        ("account = $1", lambda s, sid: _once_trial(conn, s, (ACCOUNT,), sid), TARGET_SCAN_SESSION),
    ]
    statements = {
        "point read": ("point", plain.point, cow.point),
        "scan count+sum": ("scan", plain.scan, cow.scan),
        "account = $1": ("account", plain.account, cow.account),
    }
    results = []
    for name, trial, target in cases:
        _, plain_stmt, cow_stmt = statements[name]
        results.append(
            await compare(
                f"9{regime}. {name}, {REGIMES[regime]}",
                trial(plain_stmt, None),
                trial(cow_stmt, session_id),
                repeat=repeat,
                target=target,
                blocks=bench.blocks,
                unit="read" if name == "point read" else "scan",
            )
        )
    return results


async def regimes(bench: Bench, progress: Callable[[str], None]) -> list[Result]:
    """Case 9 in every regime; see the module docstring."""
    conn, rows = bench.conn, bench.rows
    await _setup(conn, rows)
    updated, inserted = (1, BATCH), (rows + 1, rows + BATCH)
    results: list[Result] = []

    async def run(regime: str, prepare: Callable[[], Awaitable[tuple[_Reads, _Reads]]]) -> None:
        progress(f"regime {regime}: {REGIMES[regime]}")
        plain, cow = await prepare()
        results.extend(await _measure(bench, regime, plain, cow, session_id, updated))

    # a: prepared outside any session while the change table was analyzed empty
    outside = (await _prepare(conn, PLAIN, None), await _prepare(conn, COW, None))
    session_id = await _write(conn, updated, inserted)

    async def prepared_outside() -> tuple[_Reads, _Reads]:
        return outside

    await run("a", prepared_outside)

    async def in_session() -> tuple[_Reads, _Reads]:
        return await _prepare(conn, PLAIN, None), await _prepare(conn, COW, session_id)

    # b: generic plans, same statistics
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    try:
        await run("b", in_session)
    finally:
        await conn.execute("RESET plan_cache_mode")
    # c: fresh statistics
    await conn.execute(f"ANALYZE {COW}_changes")
    await run("c", in_session)
    # d: another, large session analyzed; a new session of the same size reads
    await ac.discard_cow_session(bench.executor, "r", session_id, schema=SCHEMA)
    await _write(conn, (BATCH + 1, LARGE), (2 * rows + 1, 2 * rows + BATCH))
    await conn.execute(f"ANALYZE {COW}_changes")
    session_id = await _write(conn, updated, inserted)
    await run("d", in_session)
    return results
