"""The sync twins (agentcow.sync): CowSession and Reviewer over psycopg and SQLAlchemy sync
connections, pools and engines; the same results as the async ones."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import agentcow as ac
import agentcow.sync as acs
from agentcow.adapters.psycopg import PsycopgSyncExecutor
from agentcow.agent import GuardRefusal
from agentcow.blocking import run_blocking
from tests.conftest import TestDatabase
from tests.helpers import LAYOUT, base_table, changes_table
from tests.scopes_support import (
    LEFTOVERS,
    SYNC_KINDS,
    SyncKind,
    probe_sync,
    readme_examples,
    sqlalchemy_sync_engine,
)

DDL = """
CREATE TABLE {t} (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO {t} VALUES (1, 'one'), (2, 'two');
"""
ORIGINAL = [(1, "one"), (2, "two")]


@pytest.fixture
def owner(database: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit owner connection with table t (COW-enabled) set up through the kit on
    a blocking executor."""
    with psycopg.connect(database.owner_dsn, autocommit=True) as connection:
        executor = PsycopgSyncExecutor(connection)
        run_blocking(ac.deploy_cow_functions(executor))
        for table in ("t", "t_twin"):
            connection.execute(DDL.format(t=table).encode())
            run_blocking(ac.enable_cow(executor, table, layout=LAYOUT))
        yield connection


@pytest.fixture(params=SYNC_KINDS, ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> SyncKind:
    chosen: SyncKind = request.param
    return chosen


@pytest.fixture
def target(kind: SyncKind, owner: Any, database: TestDatabase) -> Iterator[Any]:
    with kind.opened(database.owner_dsn) as opened:
        yield opened


def base_rows(owner: Any, table: str = "t") -> list[tuple[Any, ...]]:
    return owner.execute(f"SELECT id, v FROM {base_table(table)} ORDER BY id".encode()).fetchall()


def versions(owner: Any, session_id: uuid.UUID) -> int:
    query = f"SELECT count(*) FROM {changes_table('t')} WHERE session_id = %s".encode()
    return int(owner.execute(query, [session_id]).fetchone()[0])


def operations(owner: Any, session_id: uuid.UUID) -> list[uuid.UUID]:
    return run_blocking(ac.get_session_operations(PsycopgSyncExecutor(owner), session_id))


def named(kind: SyncKind, **values: Any) -> tuple[str, Any]:
    """A parameter in the driver's style: (placeholder, params)."""
    [(name, value)] = values.items()
    if kind.name.startswith("sqlalchemy"):
        return f":{name}", {name: value}
    return "%s", [value]


def test_statements_rows_and_parameters(kind: SyncKind, target: Any, owner: Any) -> None:
    agent = acs.CowSession(target, tenant_id=3, label="sync")
    placeholder, params = named(kind, id=3)
    inserted = agent.execute(
        f"INSERT INTO t VALUES ({placeholder}, 'three') RETURNING id, v", params
    )
    assert (inserted.rowcount, inserted.columns, inserted.rows) == (1, ("id", "v"), [(3, "three")])
    assert agent.execute("UPDATE t SET v = upper(v) WHERE id < 3").rowcount == 2
    assert agent.query("SELECT id, v FROM t ORDER BY id") == [
        {"id": 1, "v": "ONE"},
        {"id": 2, "v": "TWO"},
        {"id": 3, "v": "three"},
    ]
    assert agent.execute("SELECT ':v %s' AS text").rows == [(":v %s",)]
    assert len(operations(owner, agent.session_id)) == 2
    assert base_rows(owner) == ORIGINAL
    registered = owner.execute(
        b"SELECT tenant, label FROM agentcow.sessions WHERE session_id = %s", [agent.session_id]
    ).fetchall()
    assert registered == [("3", "sync")]


def test_sessions_are_isolated(target: Any, owner: Any) -> None:
    first, second = acs.CowSession(target), acs.CowSession(target)
    first.execute("UPDATE t SET v = 'first' WHERE id = 1")
    second.execute("DELETE FROM t WHERE id = 1")
    assert first.execute("SELECT id, v FROM t ORDER BY id").rows == [(1, "first"), (2, "two")]
    assert second.execute("SELECT id, v FROM t ORDER BY id").rows == [(2, "two")]
    assert base_rows(owner) == ORIGINAL


def test_an_operation_block_is_one_operation(target: Any, owner: Any) -> None:
    agent = acs.CowSession(target, guard=None)  # pg_backend_pid and txid_current
    chosen = uuid.uuid4()
    with agent.operation(chosen) as operation:
        agent.execute("INSERT INTO t VALUES (3, 'three')")
        operation.execute("UPDATE t SET v = 'THREE' WHERE id = 3")
        assert operation.query("SELECT v FROM t WHERE id = 3") == [{"v": "THREE"}]
        [(pid, xid)] = agent.execute("SELECT pg_backend_pid(), txid_current()").rows
        assert operation.execute("SELECT pg_backend_pid(), txid_current()").rows == [(pid, xid)]
        with pytest.raises(ac.OperationInProgressError), agent.operation():
            pass
    assert operations(owner, agent.session_id) == [chosen]
    assert agent.query("SELECT v FROM t WHERE id = 3") == [{"v": "THREE"}]


def test_an_error_rolls_the_operation_back(kind: SyncKind, target: Any, owner: Any) -> None:
    agent = acs.CowSession(target)
    with pytest.raises(kind.error), agent.operation():
        agent.execute("INSERT INTO t VALUES (3, 'three')")
        agent.execute("INSERT INTO t VALUES (1, 'duplicate')")
    with pytest.raises(GuardRefusal, match="transaction_control"), agent.operation():
        agent.execute("INSERT INTO t VALUES (4, 'four')")
        agent.execute("ROLLBACK")
    unguarded = acs.CowSession(target, session_id=agent.session_id, guard=None)
    with pytest.raises(ac.TransactionEndedError), unguarded.operation():
        unguarded.execute("INSERT INTO t VALUES (4, 'four')")
        unguarded.execute("ROLLBACK")
        unguarded.execute("DELETE FROM t")
    assert versions(owner, agent.session_id) == 0
    assert base_rows(owner) == ORIGINAL
    assert agent.query("SELECT count(*) AS n FROM t") == [{"n": 2}]


def test_nothing_the_agent_leaves_reaches_the_next_user(kind: SyncKind, target: Any) -> None:
    with kind.next_user(target) as executor:
        before = probe_sync(executor)
        for _ in range(6):
            assert run_blocking(executor.execute("SELECT count(*) FROM t")) == [(2,)]
    agent = acs.CowSession(target, guard=None)  # the reset, for SQL the guard would refuse
    with agent.operation():
        for statement in LEFTOVERS:
            agent.execute(statement)
    for statement in LEFTOVERS:
        agent.execute(statement)
    guarded = acs.CowSession(target)
    for statement in LEFTOVERS:
        with pytest.raises(GuardRefusal):
            guarded.execute(statement)
    with kind.next_user(target) as executor:
        assert probe_sync(executor) == before
        assert run_blocking(executor.execute("SELECT count(*) FROM t")) == [(2,)]
    assert agent.query("SELECT count(*) AS n FROM t") == [{"n": 2}]


def test_reviewer_commits_the_good_half(target: Any, owner: Any) -> None:
    agent = acs.CowSession(target)
    good, bad = uuid.uuid4(), uuid.uuid4()
    with agent.operation(good):
        agent.execute("INSERT INTO t VALUES (3, 'three')")
    with agent.operation(bad):
        agent.execute("DELETE FROM t WHERE id = 2")
    reviewer = acs.Reviewer(target, agent.session_id)
    assert [op.operation_id for op in reviewer.operations()] == [good, bad]
    assert reviewer.dependencies() == [] and reviewer.conflicts() == []
    with pytest.raises(ac.NotReviewedError):
        reviewer.commit([good])
    assert reviewer.diff([good]).summary == {"INSERT": 1, "UPDATE": 0, "DELETE": 0}
    with agent.operation(good):  # a write after the review, under the approved operation
        agent.execute("UPDATE t SET v = 'late' WHERE id = 3")
    with pytest.raises(ac.ReviewChangedError):
        reviewer.commit([good])
    assert base_rows(owner) == ORIGINAL
    assert {row.pk["id"]: row.new for row in reviewer.diff([good])} == {3: {"id": 3, "v": "late"}}
    assert reviewer.commit([good]) == {"t": 1}
    assert base_rows(owner) == [(1, "one"), (2, "two"), (3, "late")]
    with pytest.raises(ac.ReviewFinishedError):
        reviewer.discard()
    assert operations(owner, agent.session_id) == [bad]
    assert acs.Reviewer(target, agent.session_id).discard() == {"t": 1}
    assert versions(owner, agent.session_id) == 0


def test_the_twins_refuse_the_other_kind(database: TestDatabase) -> None:
    with pytest.raises(ac.UnsupportedConnectionError, match="async ones"):
        acs.CowSession(object())

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(ac.NotBlockingError, match="event loop"):
        run_blocking(suspends())


# ---------------------------------------------------------------------------------------
# Parity: one scenario through the async and the sync scopes gives the same transcript
# ---------------------------------------------------------------------------------------


async def _async_transcript(database: TestDatabase) -> list[Any]:
    connection = await psycopg.AsyncConnection.connect(database.owner_dsn)
    try:
        agent = ac.CowSession(connection)
        transcript: list[Any] = []
        good, bad = uuid.uuid4(), uuid.uuid4()
        async with agent.operation(good) as operation:
            transcript.append(await operation.execute("INSERT INTO t_twin VALUES (3, 'x')"))
            transcript.append(await agent.execute("UPDATE t_twin SET v = 'y' WHERE id >= 2"))
        async with agent.operation(bad):
            transcript.append(await agent.execute("DELETE FROM t_twin WHERE id = 1 RETURNING *"))
        transcript.append(await agent.query("SELECT * FROM t_twin ORDER BY id"))
        reviewer = ac.Reviewer(connection, agent.session_id)
        transcript.append([_summary(s) for s in await reviewer.operations()])
        transcript.append(len(await reviewer.dependencies()))
        transcript.append(_rows(await reviewer.diff()))
        transcript.append(_rows(await reviewer.diff([good])))
        transcript.append(await reviewer.commit([good]))
        transcript.append(await ac.Reviewer(connection, agent.session_id).discard())
        return transcript
    finally:
        await connection.close()


def _sync_transcript(database: TestDatabase) -> list[Any]:
    with psycopg.connect(database.owner_dsn) as connection:
        agent = acs.CowSession(connection)
        transcript: list[Any] = []
        good, bad = uuid.uuid4(), uuid.uuid4()
        with agent.operation(good) as operation:
            transcript.append(operation.execute("INSERT INTO t VALUES (3, 'x')"))
            transcript.append(agent.execute("UPDATE t SET v = 'y' WHERE id >= 2"))
        with agent.operation(bad):
            transcript.append(agent.execute("DELETE FROM t WHERE id = 1 RETURNING *"))
        transcript.append(agent.query("SELECT * FROM t ORDER BY id"))
        reviewer = acs.Reviewer(connection, agent.session_id)
        transcript.append([_summary(s) for s in reviewer.operations()])
        transcript.append(len(reviewer.dependencies()))
        transcript.append(_rows(reviewer.diff()))
        transcript.append(_rows(reviewer.diff([good])))
        transcript.append({_twin(k): v for k, v in reviewer.commit([good]).items()})
        discarded = acs.Reviewer(connection, agent.session_id).discard()
        transcript.append({_twin(k): v for k, v in discarded.items()})
        return transcript


def _twin(table: str) -> str:
    return "t_twin" if table == "t" else table


def _summary(summary: ac.OperationSummary) -> tuple[Any, ...]:
    return (
        tuple(_twin(t) for t in summary.tables),
        summary.inserted,
        summary.updated,
        summary.deleted,
    )


def _rows(changes: ac.ChangeSet) -> list[tuple[Any, ...]]:
    return [(_twin(r.table), r.diff_type, r.pk, r.old, r.new) for r in changes]


def test_sync_and_async_give_the_same_results(database: TestDatabase, owner: Any) -> None:
    """Tables t (sync) and t_twin (async) start equal and go through the same scenario."""
    sync = _sync_transcript(database)
    loop = asyncio.new_event_loop()  # not made current: pytest-asyncio's loop stays so
    try:
        asynchronous = loop.run_until_complete(_async_transcript(database))
    finally:
        loop.close()
    assert sync == asynchronous
    assert sync[-2:] == [{"t_twin": 2}, {"t_twin": 1}]
    assert base_rows(owner, "t") == base_rows(owner, "t_twin") == [(1, "one"), (2, "y"), (3, "y")]


def test_readme_sync_example(owner: Any, database: TestDatabase) -> None:
    owner.execute(b"CREATE TABLE orders (id int PRIMARY KEY, total numeric(10, 2) NOT NULL)")
    owner.execute(b"INSERT INTO orders VALUES (1, 100.00), (2, 35.50)")
    run_blocking(ac.enable_cow(PsycopgSyncExecutor(owner), "orders", layout=LAYOUT))
    [example] = [block for block in readme_examples() if "agentcow.sync" in block]
    with sqlalchemy_sync_engine(database.owner_dsn) as engine:
        exec(compile(example, "README.md", "exec"), {"engine": engine})
    rows = owner.execute(
        f"SELECT id, total::text FROM {base_table('orders')} ORDER BY id".encode()
    ).fetchall()
    assert rows == [(1, "90.00"), (2, "35.50")]


def test_reviewer_with_a_policy(target: Any, owner: Any) -> None:
    agent = acs.CowSession(target)
    agent.execute("DELETE FROM t WHERE id = 2")
    policy = ac.Policy.from_mapping({"tables": {"t": {"forbid_deletes": True}}})
    reviewer = acs.Reviewer(target, agent.session_id, policy=policy)
    reviewer.diff()
    assert reviewer.check().decision.value == "block"
    with pytest.raises(ac.PolicyViolationError):
        reviewer.commit()
    assert base_rows(owner) == ORIGINAL
    assert reviewer.discard() == {"t": 1}
