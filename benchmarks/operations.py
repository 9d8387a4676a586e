"""Case 8: reviewing a session of many operations — list them, summarise them, compute their
dependencies, cherry-pick half of them — and, for reference, committing all of it.

Its own schema :data:`SCHEMA` (so the schema-wide calls see only this table) holds a COW
table ``ops.ops_t`` of :data:`OPS_ROWS` rows and a plain twin ``ops.plain_ops_t``. Every
round writes the same session of :data:`OPS` operations (seeded), each one a transaction's
worth of agent work:

* ``UPDATE`` of :data:`UPDATE_WIDTH` rows, a block of ids in ``1 .. UPDATE_BLOCKS *
  UPDATE_WIDTH``: the next fresh block, or (probability :data:`REWRITE`) a block an earlier
  operation updated, on which it then depends;
* ``INSERT`` of :data:`INSERTS` new rows (ids above :data:`OPS_ROWS`);
* ``DELETE`` of one row: (probability :data:`DELETE_INSERTED`) a row an earlier operation
  inserted, on which it then depends, else a loaded row no other operation touches.

The plain side replays the same statements directly on ``plain_ops_t``, in one transaction;
after each commit both tables must hold the same rows. Both tables are then put back as
loaded, through the view without a session, so every round starts alike.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from benchmarks.cases import Bench, transaction
from benchmarks.setup import Connection
from benchmarks.timing import Result, Timing

T = TypeVar("T")

SCHEMA = "ops"
COW_TABLE = "ops_t"
PLAIN_TABLE = "plain_ops_t"
COW = f"{SCHEMA}.{COW_TABLE}"
PLAIN = f"{SCHEMA}.{PLAIN_TABLE}"

OPS_ROWS = 10_000
OPS = 1_000
UPDATE_WIDTH = 10
UPDATE_BLOCKS = 800  # ids 1 .. 8000 are updated
INSERTS = 2
DELETE_FIRST = UPDATE_BLOCKS * UPDATE_WIDTH + 1  # ids 8001 .. 9000: deleted loaded rows
REWRITE = 0.3
DELETE_INSERTED = 0.1
#: Operations per transaction when the session is written (and per statement batch).
OPS_PER_TRANSACTION = 50
SEED = 20_240_602

OPS_LEGEND = f"""\
8    A session of {OPS} operations on its own COW table of {OPS_ROWS} rows (schema {SCHEMA}), \
{OPS_PER_TRANSACTION} operations
     per transaction, each an UPDATE of {UPDATE_WIDTH} rows, an INSERT of {INSERTS} and a DELETE \
of 1; {REWRITE:.0%} update
     rows an earlier one updated, {DELETE_INSERTED:.0%} delete a row an earlier one inserted \
(so they depend on
     it). a = writing it (change table analyzed after the first transaction, untimed; plain:
     the same statements directly, one transaction); b, c, d = get_session_operations,
     get_operation_summaries, get_operation_dependencies; e = commit_cow_operations_schema of
     every other operation with include_dependencies=True (N -> operations committed with
     their dependencies; plain: their statements directly); f = commit_cow_session_schema
     (plain: all the statements directly). Rounds alternate e and f, each COW first, then plain."""

CREATE_TABLE = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY,
    account int NOT NULL,
    name text NOT NULL,
    amount numeric(12,2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON {table} (account)
"""

#: Rows ``lo .. hi`` as loaded (the same formula as :func:`benchmarks.setup.insert_sql`).
ROWS_SQL = (
    "INSERT INTO {table} (id, account, name, amount) "
    "SELECT g, g % 5000, 'item ' || g, (g % 100000) / 100.0 "
    "FROM generate_series({lo}::bigint, {hi}::bigint) AS g"
)

#: Put a table back as loaded (without a session: through the view, writes go to the base).
RESET_SQL = """
DELETE FROM {table} WHERE id > {rows};
UPDATE {table} SET amount = (id % 100000) / 100.0 WHERE amount <> (id % 100000) / 100.0;
INSERT INTO {table} (id, account, name, amount)
SELECT g, g % 5000, 'item ' || g, (g % 100000) / 100.0
FROM generate_series(1, {rows}) AS g
WHERE NOT EXISTS (SELECT FROM {table} r WHERE r.id = g)
"""

#: The rows as one checksum, to compare the committed COW base with the plain table.
CHECKSUM_SQL = (
    "SELECT count(*), md5(string_agg(concat_ws(',', id, account, name, amount), ';' "
    "ORDER BY id)) FROM {table}"
)


@dataclass(frozen=True)
class Operation:
    operation_id: uuid.UUID
    update_first: int
    insert_first: int
    delete_id: int

    @property
    def keys(self) -> list[int]:
        """The ids this operation writes, in the order it writes them."""
        return [
            *range(self.update_first, self.update_first + UPDATE_WIDTH),
            *range(self.insert_first, self.insert_first + INSERTS),
            self.delete_id,
        ]

    def sql(self, table: str) -> str:
        return ";\n".join(
            (
                f"UPDATE {table} SET amount = amount + 1 "
                f"WHERE id BETWEEN {self.update_first} AND {self.update_first + UPDATE_WIDTH - 1}",
                ROWS_SQL.format(
                    table=table, lo=self.insert_first, hi=self.insert_first + INSERTS - 1
                ),
                f"DELETE FROM {table} WHERE id = {self.delete_id}",
            )
        )


def plan_operations(seed: int = SEED) -> list[Operation]:
    """The session's operations (see the module docstring)."""
    rng = random.Random(seed)
    updated_blocks: list[int] = []
    inserted: list[int] = []  # ids inserted by earlier operations and not deleted yet
    ops = []
    for i in range(OPS):
        if updated_blocks and (rng.random() < REWRITE or len(updated_blocks) == UPDATE_BLOCKS):
            block = rng.choice(updated_blocks)
        else:
            block = len(updated_blocks)
            updated_blocks.append(block)
        if inserted and rng.random() < DELETE_INSERTED:
            delete_id = inserted.pop(rng.randrange(len(inserted)))
        else:
            delete_id = DELETE_FIRST + i
        insert_first = OPS_ROWS + 1 + INSERTS * i
        inserted.extend(range(insert_first, insert_first + INSERTS))
        ops.append(
            Operation(
                operation_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                update_first=1 + block * UPDATE_WIDTH,
                insert_first=insert_first,
                delete_id=delete_id,
            )
        )
    return ops


def expected_dependencies(ops: Sequence[Operation]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """``(depends_on, operation)``: every earlier writer of a row an operation writes (the
    table has no other unique key and no foreign key)."""
    writers: dict[int, list[Operation]] = {}
    for op in ops:
        for key in op.keys:
            writers.setdefault(key, []).append(op)
    return {
        (a.operation_id, b.operation_id)
        for row in writers.values()
        for j, b in enumerate(row)
        for a in row[:j]
        if a is not b
    }


def _closed(
    chosen: Sequence[uuid.UUID], dependencies: set[tuple[uuid.UUID, uuid.UUID]]
) -> set[uuid.UUID]:
    """``chosen`` and every operation they depend on, directly or not."""
    needs: dict[uuid.UUID, set[uuid.UUID]] = {}
    for depends_on, op in dependencies:
        needs.setdefault(op, set()).add(depends_on)
    closed = set(chosen)
    stack = list(closed)
    while stack:
        for more in needs.get(stack.pop(), ()):
            if more not in closed:
                closed.add(more)
                stack.append(more)
    return closed


def _chunks(ops: Sequence[Operation]) -> list[Sequence[Operation]]:
    return [ops[i : i + OPS_PER_TRANSACTION] for i in range(0, len(ops), OPS_PER_TRANSACTION)]


def _expect(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: expected {expected!r}, got {got!r}")


@dataclass(frozen=True)
class Workload:
    """A session's operations, the cherry-pick's choice and what it must commit."""

    ops: list[Operation]
    #: every other operation
    half: list[uuid.UUID]
    #: ``half`` closed under the dependencies, in session order
    closure: list[Operation]
    dependencies: set[tuple[uuid.UUID, uuid.UUID]]

    @classmethod
    def of(cls, ops: list[Operation]) -> Workload:
        deps = expected_dependencies(ops)
        half = [op.operation_id for op in ops[::2]]
        closed = _closed(half, deps)
        return cls(ops, half, [op for op in ops if op.operation_id in closed], deps)


@dataclass(frozen=True)
class OpsBench:
    bench: Bench
    work: Workload

    @property
    def conn(self) -> Connection:
        return self.bench.conn

    @property
    def executor(self) -> AsyncpgExecutor:
        return AsyncpgExecutor(self.bench.conn)


async def setup_operations(bench: Bench) -> OpsBench:
    """Create and load both tables (autovacuum off, as for the other tables) and plan the
    session; nothing is written in a session yet."""
    conn = bench.conn
    await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in (PLAIN, COW):
        await conn.execute(CREATE_TABLE.format(table=table))
        await conn.execute(ROWS_SQL.format(table=table, lo=1, hi=OPS_ROWS))
    await ac.enable_cow(bench.executor, COW_TABLE, schema=SCHEMA)
    for table in _tables():
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    await _vacuum(conn)
    return OpsBench(bench, Workload.of(plan_operations()))


def _tables() -> tuple[str, ...]:
    return (PLAIN, f"{SCHEMA}.{COW_TABLE}_base", f"{SCHEMA}.{COW_TABLE}_changes")


async def _vacuum(conn: Connection) -> None:
    for table in _tables():
        await conn.execute(f"VACUUM ANALYZE {table}")


async def write_session(ob: OpsBench, session_id: uuid.UUID, ops: Sequence[Operation]) -> float:
    """Write the operations in the session, :data:`OPS_PER_TRANSACTION` per transaction
    (one round trip each; ``set_config`` switches the operation between statements).

    The change table is analyzed (untimed) after the first transaction and at the end, as
    autovacuum would soon do (the kit sets its threshold to 500 rows): with the statistics
    of an empty change table, each write through the view anti-joins all of the session's
    changes, and writing the session slows down as it grows. Returns the seconds writing."""
    elapsed = 0.0
    for n, chunk in enumerate(_chunks(ops)):
        script = ";\n".join(
            f"SELECT set_config('app.operation_id', '{op.operation_id}', true);\n{op.sql(COW)}"
            for op in chunk
        )
        start = time.perf_counter()
        async with transaction(ob.conn, session_id):
            await ob.conn.execute(script)
        elapsed += time.perf_counter() - start
        if n == 0:
            await ob.conn.execute(f"ANALYZE {SCHEMA}.{COW_TABLE}_changes")
    await ob.conn.execute(f"ANALYZE {SCHEMA}.{COW_TABLE}_changes")
    return elapsed


async def write_plain(ob: OpsBench, ops: Sequence[Operation]) -> float:
    """The same statements made directly on the plain table, in one transaction."""
    start = time.perf_counter()
    async with transaction(ob.conn):
        for chunk in _chunks(ops):
            await ob.conn.execute(";\n".join(op.sql(PLAIN) for op in chunk))
    return time.perf_counter() - start


async def _same_rows(ob: OpsBench, what: str) -> None:
    cow, plain = [
        [tuple(row) for row in await ob.conn.fetch(CHECKSUM_SQL.format(table=table))]
        for table in (COW, PLAIN)
    ]
    _expect(f"{what}: COW base (count, md5) against the plain table", cow, plain)


async def _reset(ob: OpsBench) -> None:
    for table in (PLAIN, COW):
        await ob.conn.execute(RESET_SQL.format(table=table, rows=OPS_ROWS))
    await _same_rows(ob, "after reset")
    await _vacuum(ob.conn)


async def _timed(call: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    start = time.perf_counter()
    result = await call()
    return time.perf_counter() - start, result


@dataclass
class _Samples:
    """Seconds per round, by case (plain: the same writes made directly)."""

    write: list[float] = field(default_factory=list)
    listing: list[float] = field(default_factory=list)
    summaries: list[float] = field(default_factory=list)
    dependencies: list[float] = field(default_factory=list)
    pick: list[float] = field(default_factory=list)
    pick_plain: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    commit_plain: list[float] = field(default_factory=list)
    #: rows get_operation_dependencies returned (duplicates included)
    dependency_rows: int = 0


async def _round(ob: OpsBench, work: Workload, samples: _Samples, *, pick: bool) -> None:
    """Write the session and time the review calls on it; then cherry-pick half of it
    (``pick``) or commit all of it, and make the same writes directly on the plain table."""
    ex = ob.executor
    ops = work.ops
    session_id = uuid.uuid4()
    samples.write.append(await write_session(ob, session_id, ops))

    elapsed, listed = await _timed(lambda: ac.get_session_operations(ex, session_id, SCHEMA))
    _expect("operations listed, in order", listed, [op.operation_id for op in ops])
    samples.listing.append(elapsed)

    elapsed, summaries = await _timed(lambda: ac.get_operation_summaries(ex, session_id, SCHEMA))
    _expect(
        "summaries: operations, rows inserted, updated, deleted",
        (
            len(summaries),
            sum(s.inserted for s in summaries),
            sum(s.updated for s in summaries),
            sum(s.deleted for s in summaries),
        ),
        (len(ops), len(ops) * INSERTS, len(ops) * UPDATE_WIDTH, len(ops)),
    )
    samples.summaries.append(elapsed)

    elapsed, deps = await _timed(lambda: ac.get_operation_dependencies(ex, session_id, SCHEMA))
    _expect("dependencies", set(deps), work.dependencies)
    samples.dependency_rows = len(deps)
    samples.dependencies.append(elapsed)

    if pick:
        elapsed, chosen = await _timed(
            lambda: ac.commit_cow_operations_schema(
                ex, session_id, work.half, SCHEMA, include_dependencies=True
            )
        )
        _expect(
            "operations committed by the cherry-pick",
            sorted(chosen),
            sorted(op.operation_id for op in work.closure),
        )
        samples.pick.append(elapsed)
        await ac.discard_cow_session_schema(ex, session_id, SCHEMA)
        samples.pick_plain.append(await write_plain(ob, work.closure))
        await _same_rows(ob, "after the cherry-pick")
    else:
        elapsed, _ = await _timed(lambda: ac.commit_cow_session_schema(ex, session_id, SCHEMA))
        samples.commit.append(elapsed)
        samples.commit_plain.append(await write_plain(ob, ops))
        await _same_rows(ob, "after the commit")
    await _reset(ob)


async def operations(bench: Bench) -> list[Result]:
    """Case 8: ``bench.repeats.operations`` rounds, alternately a cherry-pick and a commit
    of all of it, after an untimed cherry-pick round.

    The warm-up round also leaves both tables in the state every later round starts from:
    the first writes to a freshly loaded table find its pages full (no HOT updates), which
    makes the first commit and plain replay about twice as slow as the next ones."""
    ob = await setup_operations(bench)
    await _round(ob, ob.work, _Samples(), pick=True)
    samples = _Samples()
    for round_ in range(bench.repeats.operations):
        await _round(ob, ob.work, samples, pick=round_ % 2 == 0)

    def result(
        name: str, cow: list[float], plain: list[float] | None = None, unit: str = "call"
    ) -> Result:
        return Result(
            name,
            None if plain is None else Timing(tuple(plain)),
            Timing(tuple(cow)),
            None,
            unit,
        )

    versions = OPS * (UPDATE_WIDTH + INSERTS + 1)
    pairs = f"{len(ob.work.dependencies)} pairs"
    if samples.dependency_rows != len(ob.work.dependencies):
        pairs += f" in {samples.dependency_rows} rows"
    return [
        result(
            f"8a. write {OPS} ops ({versions} rows)",
            samples.write,
            samples.commit_plain,
            "session",
        ),
        result("8b. list operations", samples.listing),
        result("8c. operation summaries", samples.summaries),
        result(f"8d. dependencies ({pairs})", samples.dependencies),
        result(
            f"8e. cherry-pick {len(ob.work.half)} ops -> {len(ob.work.closure)}",
            samples.pick,
            samples.pick_plain,
            "commit",
        ),
        result(f"8f. commit all {OPS} ops", samples.commit, samples.commit_plain, "commit"),
    ]
