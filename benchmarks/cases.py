"""The cases: the same work on ``plain_items`` and through the ``items`` COW view.

Every trial returns seconds per unit of work (a point read, a statement, a commit) and does
its untimed setup and teardown itself. Writes that are not commits are rolled back; every
round writes fresh key ranges (see :class:`benchmarks.setup.BlockAllocator`).
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.setup import (
    BATCH,
    COW,
    PLAIN,
    Block,
    BlockAllocator,
    Connection,
    ReadSession,
    create_session,
    delete_sql,
    insert_sql,
    update_sql,
    vacuum_analyze,
)
from benchmarks.timing import Result, Trial, compare

#: Targets for the COW/plain ratio of the medians (None: reported, not judged).
TARGET_POINT_READ = 1.5
TARGET_SCAN_SESSION = 1.3
TARGET_SCAN_NO_SESSION = 1.1
TARGET_WRITE = 3.0
TARGET_COMMIT = 2.0


@dataclass(frozen=True)
class Repeats:
    """Timed rounds per case (each after one untimed warm-up round)."""

    point_read_keys: int = 200
    point_read: int = 21
    fetch_scan: int = 9
    aggregate_scan: int = 21
    fresh_session_scan: int = 5
    write: int = 21
    commit: int = 11
    operations: int = 6

    @classmethod
    def quick(cls) -> Repeats:
        return cls(
            point_read_keys=50,
            point_read=3,
            fetch_scan=3,
            aggregate_scan=3,
            fresh_session_scan=1,
            write=3,
            commit=3,
            operations=2,
        )


@dataclass(frozen=True)
class Bench:
    conn: Connection
    session: ReadSession
    rows: int
    repeats: Repeats
    blocks: BlockAllocator

    @property
    def executor(self) -> AsyncpgExecutor:
        return AsyncpgExecutor(self.conn)


@contextlib.asynccontextmanager
async def transaction(
    conn: Connection,
    session_id: uuid.UUID | None = None,
    operation_id: uuid.UUID | None = None,
    *,
    rollback: bool = False,
) -> AsyncIterator[None]:
    """A transaction, optionally reading and writing as a COW session; rolled back on error
    or when ``rollback`` is set, committed otherwise."""
    tx = conn.transaction()
    await tx.start()
    try:
        if session_id is not None:
            await ac.apply_cow_variables(AsyncpgExecutor(conn), session_id, operation_id)
        yield
    except BaseException:
        await tx.rollback()
        raise
    if rollback:
        await tx.rollback()
    else:
        await tx.commit()


def _expect(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: expected {expected!r}, got {got!r}")


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------


def point_read_keys(bench: Bench) -> list[int]:
    """Alternating keys the session changed (updated) and keys it did not. Keys the session
    inserted are left out: they do not exist in ``plain_items``."""
    rng = random.Random(20_240_601)
    half = bench.repeats.point_read_keys // 2
    first, last = bench.session.updated
    changed = rng.sample(range(first, last + 1), half)
    unchanged = rng.sample(range(last + 1, bench.rows + 1), half)
    return [key for pair in zip(changed, unchanged, strict=True) for key in pair]


async def point_read(bench: Bench) -> Result:
    keys = point_read_keys(bench)

    def trial(table: str, session_id: uuid.UUID | None) -> Trial:
        sql = f"SELECT * FROM {table} WHERE id = $1"

        async def run(_: Block) -> float:
            found = 0
            async with transaction(bench.conn, session_id):
                start = time.perf_counter()
                for key in keys:
                    found += await bench.conn.fetchrow(sql, key) is not None
                elapsed = time.perf_counter() - start
            _expect(f"point reads on {table}", found, len(keys))
            return elapsed / len(keys)

        return run

    return await compare(
        "1. point read by PK, session",
        trial(PLAIN, None),
        trial(COW, bench.session.session_id),
        repeat=bench.repeats.point_read,
        target=TARGET_POINT_READ,
        blocks=bench.blocks,
        unit="read",
    )


Planning = Literal["once", "each_round", "outside_session"]


def _scan_trial(
    bench: Bench,
    table: str,
    session_id: uuid.UUID | None,
    aggregate: bool,
    rows: int,
    *,
    case: str,
    planning: Planning = "once",
) -> Trial:
    """A full scan, ``SELECT *`` fetched or ``count(*), sum(amount)``.

    asyncpg prepares a statement once per connection, and PostgreSQL keeps the first plan
    of a statement without parameters (until the table's statistics change), made for the
    session, or no session, of that first run. So the text is tagged with ``case`` (cases do
    not share plans) and ``planning`` says when it is planned: ``once`` (in the first
    round), ``each_round`` (in each round's session) or ``outside_session`` (each round,
    by a first, untimed run outside any session).
    """
    sql = f"SELECT count(*), sum(amount) FROM {table}" if aggregate else f"SELECT * FROM {table}"

    async def run(_: Block) -> float:
        text = f"{sql} -- case {case}"
        if planning != "once":
            text += f" {uuid.uuid4()}"
        if planning == "outside_session":
            await bench.conn.fetch(text)
        async with transaction(bench.conn, session_id):
            start = time.perf_counter()
            result = await bench.conn.fetch(text)
            elapsed = time.perf_counter() - start
        got = result[0][0] if aggregate else len(result)
        _expect(f"{sql} ({'session' if session_id else 'no session'})", got, rows)
        return elapsed

    return run


async def full_scans(bench: Bench, *, in_session: bool) -> list[Result]:
    """``SELECT *`` fetched to the client, and a server-side ``count(*), sum(amount)``."""
    session_id = bench.session.session_id if in_session else None
    cow_rows = bench.rows + BATCH if in_session else bench.rows
    where = "session" if in_session else "no session"
    target = TARGET_SCAN_SESSION if in_session else TARGET_SCAN_NO_SESSION
    number = 2 if in_session else 3
    results = []
    for aggregate in (False, True):
        form = "count+sum" if aggregate else "SELECT *"
        case = f"{number}{'b' if aggregate else 'a'}"
        results.append(
            await compare(
                f"{case}. scan {form}, {where}",
                _scan_trial(bench, PLAIN, None, aggregate, bench.rows, case=case),
                _scan_trial(bench, COW, session_id, aggregate, cow_rows, case=case),
                repeat=bench.repeats.aggregate_scan if aggregate else bench.repeats.fetch_scan,
                target=target,
                blocks=bench.blocks,
                unit="scan",
            )
        )
    return results


async def fresh_session_scan(bench: Bench) -> Result:
    """``count(*), sum(amount)`` in a session created after the last ``ANALYZE`` and planned
    in it: the planner's statistics do not know the session yet, the usual state of a session
    that just began."""

    async def cow(block: Block) -> float:
        session = await create_session(
            bench.conn, updated=block.update_range, inserted=block.insert_range
        )
        try:
            scan = _scan_trial(
                bench,
                COW,
                session.session_id,
                True,
                bench.rows + BATCH,
                case="2c",
                planning="each_round",
            )
            return await scan(block)
        finally:
            await ac.discard_cow_session(bench.executor, COW, session.session_id)

    return await compare(
        "2c. scan count+sum, fresh session",
        _scan_trial(bench, PLAIN, None, True, bench.rows, case="2c", planning="each_round"),
        cow,
        repeat=bench.repeats.fresh_session_scan,
        target=TARGET_SCAN_SESSION,
        blocks=bench.blocks,
        unit="scan",
    )


async def reused_plan_scan(bench: Bench) -> Result:
    """``count(*), sum(amount)`` in the (analyzed) read session, run as a statement that
    the connection first prepared and ran outside any session: a pooled connection serving
    both kinds of requests keeps that plan."""
    rows = bench.rows
    return await compare(
        "2d. scan count+sum, no-session plan",
        _scan_trial(bench, PLAIN, None, True, rows, case="2d", planning="outside_session"),
        _scan_trial(
            bench,
            COW,
            bench.session.session_id,
            True,
            rows + BATCH,
            case="2d",
            planning="outside_session",
        ),
        repeat=bench.repeats.fresh_session_scan,
        target=TARGET_SCAN_SESSION,
        blocks=bench.blocks,
        unit="scan",
    )


# ---------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------


def _write_trial(
    bench: Bench,
    table: str,
    sql_for: Callable[[str], str],
    key_range: Callable[[Block], tuple[int, int]],
    session_id: uuid.UUID | None,
) -> Trial:
    """One write statement timed inside a transaction that is then rolled back."""
    sql = sql_for(table)

    async def run(block: Block) -> float:
        operation_id = uuid.uuid4() if session_id is not None else None
        async with transaction(bench.conn, session_id, operation_id, rollback=True):
            start = time.perf_counter()
            status = await bench.conn.execute(sql, *key_range(block))
            elapsed = time.perf_counter() - start
        _expect(f"{sql} rows", int(status.rsplit(" ", 1)[1]), BATCH)
        return elapsed

    return run


async def writes(bench: Bench, *, in_session: bool) -> list[Result]:
    """``UPDATE``, ``INSERT`` and ``DELETE`` of ``BATCH`` rows, one statement each."""
    session_id = bench.session.session_id if in_session else None
    where = "session" if in_session else "no session"
    number = ("4", "5", "5b") if in_session else ("7a", "7b", "7c")
    results = []
    for n, verb, sql_for, key_range in (
        (number[0], "UPDATE", update_sql, lambda b: b.update_range),
        (number[1], "INSERT", insert_sql, lambda b: b.insert_range),
        (number[2], "DELETE", delete_sql, lambda b: b.update_range),
    ):
        results.append(
            await compare(
                f"{n}. {verb} {BATCH} rows, {where}",
                _write_trial(bench, PLAIN, sql_for, key_range, None),
                _write_trial(bench, COW, sql_for, key_range, session_id),
                repeat=bench.repeats.write,
                target=TARGET_WRITE if in_session else None,
                blocks=bench.blocks,
            )
        )
        await vacuum_analyze(bench.conn)  # clear the rolled-back versions
    return results


async def commit(bench: Bench) -> Result:
    """``commit_cow_session`` of a session holding ``BATCH`` updated and ``BATCH`` inserted
    rows, against making the same writes directly on the plain table."""

    async def plain(block: Block) -> float:
        start = time.perf_counter()
        async with transaction(bench.conn):
            await bench.conn.execute(update_sql(PLAIN), *block.update_range)
            await bench.conn.execute(insert_sql(PLAIN), *block.insert_range)
        return time.perf_counter() - start

    async def cow(block: Block) -> float:
        session_id = uuid.uuid4()
        async with transaction(bench.conn, session_id, uuid.uuid4()):
            await bench.conn.execute(update_sql(COW), *block.update_range)
            await bench.conn.execute(insert_sql(COW), *block.insert_range)
        start = time.perf_counter()
        await ac.commit_cow_session(bench.executor, COW, session_id)
        elapsed = time.perf_counter() - start
        _expect(
            "rows committed",
            await bench.conn.fetchval(
                f"SELECT count(*) FROM {COW}_base WHERE id BETWEEN $1 AND $2",
                *block.insert_range,
            ),
            BATCH,
        )
        return elapsed

    return await compare(
        f"6. commit {BATCH} upd + {BATCH} ins",
        plain,
        cow,
        repeat=bench.repeats.commit,
        target=TARGET_COMMIT,
        blocks=bench.blocks,
        unit="commit",
    )


async def run_all(bench: Bench, progress: Callable[[str], None]) -> list[Result]:
    """Every case, in report order (the commit case runs last: it changes the tables)."""
    progress("point reads")
    read = await point_read(bench)
    progress("full scans in session")
    scans_session = await full_scans(bench, in_session=True)
    progress("full scan in a fresh session")
    scan_fresh = await fresh_session_scan(bench)
    progress("full scan in session with a plan made outside it")
    scan_reused = await reused_plan_scan(bench)
    progress("full scans without session")
    scans_plain = await full_scans(bench, in_session=False)
    progress("writes in session")
    writes_session = await writes(bench, in_session=True)
    progress("writes without session")
    writes_plain = await writes(bench, in_session=False)
    progress("commits")
    committed = await commit(bench)
    return [
        read,
        *scans_session,
        scan_fresh,
        scan_reused,
        *scans_plain,
        *writes_session,
        committed,
        *writes_plain,
    ]


async def check_session_view(bench: Bench) -> None:
    """Before timing anything: the session sees its own writes, the base does not."""
    changed = bench.session.updated[0]
    async with transaction(bench.conn, bench.session.session_id):
        seen = await bench.conn.fetchval(f"SELECT count(*) FROM {COW}")
        cow_amount = await bench.conn.fetchval(f"SELECT amount FROM {COW} WHERE id = $1", changed)
    _expect("rows seen in session", seen, bench.rows + BATCH)
    _expect(
        "rows seen without session",
        await bench.conn.fetchval(f"SELECT count(*) FROM {COW}"),
        bench.rows,
    )
    plain_amount = await bench.conn.fetchval(f"SELECT amount FROM {PLAIN} WHERE id = $1", changed)
    _expect(f"amount of updated key {changed} in session", cow_amount, plain_amount + 1)
