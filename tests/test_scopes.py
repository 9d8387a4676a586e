"""CowSession and Reviewer (async), on every driver and kind of connection they take."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy

import agentcow as ac
from agentcow.agent import GuardRefusal, SqlGuard
from tests.conftest import TestDatabase
from tests.helpers import base_table, changes_table, ex, fetch, make_cow
from tests.scopes_support import (
    ASYNC_KINDS,
    LEFTOVERS,
    AsyncKind,
    asyncpg_pool,
    probe,
    readme_examples,
)

DDL = """
CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO t VALUES (1, 'one'), (2, 'two');
"""
BASE = base_table("t")


@pytest.fixture(params=ASYNC_KINDS, ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> AsyncKind:
    chosen: AsyncKind = request.param
    return chosen


@pytest_asyncio.fixture(loop_scope="session")
async def target(kind: AsyncKind, conn: Any, database: TestDatabase) -> AsyncIterator[Any]:
    """What the scope is given, over a database with table t (COW-enabled, two rows)."""
    await make_cow(conn, DDL, "t")
    async with kind.opened(database.owner_dsn) as opened:
        yield opened


def placeholders(kind: AsyncKind, *names: str) -> list[str]:
    """Each driver's own parameter style."""
    if kind.name.startswith("sqlalchemy"):
        return [f":{name}" for name in names]
    if kind.name.startswith("asyncpg"):
        return [f"${i}" for i in range(1, len(names) + 1)]
    return ["%s"] * len(names)


def params(kind: AsyncKind, **values: Any) -> Any:
    return values if kind.name.startswith("sqlalchemy") else list(values.values())


async def versions(conn: Any, session_id: uuid.UUID) -> int:
    """Versions the session holds in t's change table."""
    return int(
        await conn.fetchval(
            f"SELECT count(*) FROM {changes_table('t')} WHERE session_id = $1", session_id
        )
    )


async def base_rows(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, f"SELECT id, v FROM {BASE} ORDER BY id")


ORIGINAL = [(1, "one"), (2, "two")]


# ---------------------------------------------------------------------------------------
# CowSession
# ---------------------------------------------------------------------------------------


async def test_statements_rows_and_parameters(kind: AsyncKind, target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    id_, v = placeholders(kind, "id", "v")
    inserted = await agent.execute(
        f"INSERT INTO t VALUES ({id_}, {v}) RETURNING id, v", params(kind, id=3, v="three")
    )
    assert (inserted.rowcount, inserted.columns, inserted.rows) == (1, ("id", "v"), [(3, "three")])
    updated = await agent.execute("UPDATE t SET v = upper(v) WHERE id < 3")
    assert (updated.rowcount, updated.rows) == (2, [])
    assert await agent.query("SELECT id, v FROM t ORDER BY id") == [
        {"id": 1, "v": "ONE"},
        {"id": 2, "v": "TWO"},
        {"id": 3, "v": "three"},
    ]
    # Text without parameters reaches the server untouched, whatever the driver's style.
    assert (await agent.execute("SELECT ':v %s $1' AS text")).rows == [(":v %s $1",)]
    # Each call was an operation of its own; production is untouched.
    summaries = await ac.get_operation_summaries(ex(conn), agent.session_id)
    assert [(s.inserted, s.updated) for s in summaries] == [(1, 0), (0, 2)]
    assert await base_rows(conn) == ORIGINAL


async def test_sessions_are_isolated(kind: AsyncKind, target: Any, conn: Any) -> None:
    first, second = ac.CowSession(target), ac.CowSession(target)
    assert first.session_id != second.session_id
    await first.execute("UPDATE t SET v = 'first' WHERE id = 1")
    await second.execute("DELETE FROM t WHERE id = 1")
    await second.execute("INSERT INTO t VALUES (3, 'second')")
    assert (await first.execute("SELECT id, v FROM t ORDER BY id")).rows == [
        (1, "first"),
        (2, "two"),
    ]
    assert (await second.execute("SELECT id, v FROM t ORDER BY id")).rows == [
        (2, "two"),
        (3, "second"),
    ]
    assert await base_rows(conn) == ORIGINAL
    assert (await versions(conn, first.session_id), await versions(conn, second.session_id)) == (
        1,
        2,
    )


async def test_session_id_tenant_and_label_are_recorded(target: Any, conn: Any) -> None:
    chosen = uuid.uuid4()
    agent = ac.CowSession(target, session_id=str(chosen), tenant_id=7, label="nightly")
    assert agent.session_id == chosen
    await agent.execute("SELECT 1")
    assert await fetch(
        conn, "SELECT tenant, label FROM agentcow.sessions WHERE session_id = $1", chosen
    ) == [("7", "nightly")]


async def test_an_operation_block_is_one_operation_in_one_transaction(
    kind: AsyncKind, target: Any, conn: Any
) -> None:
    agent = ac.CowSession(target, guard=None)  # pg_backend_pid and txid_current show the backend
    chosen = uuid.uuid4()
    async with agent.operation(chosen) as operation:
        assert operation.operation_id == chosen
        await agent.execute("INSERT INTO t VALUES (3, 'three')")
        await operation.execute("UPDATE t SET v = 'THREE' WHERE id = 3")
        # One transaction: the block sees its own writes, and holds the backend it began on.
        assert await operation.query("SELECT v FROM t WHERE id = 3") == [{"v": "THREE"}]
        inside = (await agent.execute("SELECT pg_backend_pid(), txid_current()")).rows
        assert (await operation.execute("SELECT pg_backend_pid(), txid_current()")).rows == inside
    assert await ac.get_session_operations(ex(conn), agent.session_id) == [chosen]
    # The next call is a new operation, in a new transaction.
    assert (await agent.execute("SELECT txid_current()")).rows[0][0] != inside[0][1]
    assert await agent.query("SELECT v FROM t WHERE id = 3") == [{"v": "THREE"}]
    with pytest.raises(ac.TransactionEndedError, match="ended"):
        await operation.execute("SELECT 1")


async def test_operation_blocks_do_not_nest(target: Any) -> None:
    agent, other = ac.CowSession(target), ac.CowSession(target)
    async with agent.operation():
        with pytest.raises(ac.OperationInProgressError):
            async with agent.operation():
                pass
    # Another session's block is its own (the pool, or the idle connection, serves it).
    async with other.operation() as operation:
        assert (await operation.execute("SELECT 1")).rows == [(1,)]


async def test_an_error_rolls_the_operation_back(kind: AsyncKind, target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    with pytest.raises(kind.error) as raised:
        async with agent.operation():
            await agent.execute("INSERT INTO t VALUES (3, 'three')")
            await agent.execute("INSERT INTO t VALUES (1, 'duplicate')")
    assert "23505" in repr(getattr(raised.value, "sqlstate", None)) or "unique" in str(raised.value)
    with pytest.raises(kind.error):
        await agent.execute("INSERT INTO t VALUES (4, NULL)")
    # An error the caller catches inside a block still ends it with nothing written.
    async with agent.operation() as operation:
        await operation.execute("INSERT INTO t VALUES (5, 'five')")
        with pytest.raises(kind.error):
            await operation.execute("SELECT 1 / 0")
    assert await versions(conn, agent.session_id) == 0
    assert await agent.query("SELECT id FROM t ORDER BY id") == [{"id": 1}, {"id": 2}]
    async with kind.next_user(target) as executor:
        assert await executor.execute("SELECT count(*) FROM t") == [(2,)]


async def test_agent_sql_that_ends_the_transaction_stops_the_operation(
    target: Any, conn: Any
) -> None:
    """The net under the guard: unguarded SQL that ends the transaction stops the block."""
    agent = ac.CowSession(target, guard=None)
    with pytest.raises(ac.TransactionEndedError, match="ROLLBACK"):
        async with agent.operation():
            await agent.execute("INSERT INTO t VALUES (3, 'three')")
            await agent.execute("ROLLBACK")
            await agent.execute("DELETE FROM t")  # never runs: it would reach the base
    assert await base_rows(conn) == ORIGINAL
    assert await versions(conn, agent.session_id) == 0
    with pytest.raises(ac.TransactionEndedError):
        await agent.execute("COMMIT")
    assert await agent.query("SELECT count(*) AS n FROM t") == [{"n": 2}]


async def test_cancellation_rolls_back_and_frees_the_connection(
    kind: AsyncKind, target: Any, conn: Any
) -> None:
    agent = ac.CowSession(target, guard=None)  # pg_sleep, which the guard refuses
    written = asyncio.Event()

    async def work() -> None:
        async with agent.operation():
            await agent.execute("INSERT INTO t VALUES (3, 'three')")
            written.set()
            await agent.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(work())
    await asyncio.wait_for(written.wait(), 10)
    await asyncio.sleep(0.2)  # the sleep is running on the server
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert await versions(conn, agent.session_id) == 0
    # Nothing is left running or open on the server, and the connection serves again.
    busy = await fetch(
        conn,
        "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND (state LIKE 'idle in%' OR query LIKE '%pg_sleep%')",
    )
    assert busy == []
    assert (await asyncio.wait_for(agent.execute("SELECT count(*) FROM t"), 10)).rows == [(2,)]


async def test_nothing_the_agent_leaves_reaches_the_next_user(
    kind: AsyncKind, target: Any, conn: Any
) -> None:
    """Settings, temporary objects (which would shadow the next session's tables), prepared
    statements, advisory locks and held cursors are reset before the connection goes back;
    the driver's own statement cache keeps working after the reset."""
    async with kind.next_user(target) as executor:
        before = await probe(executor)
        for _ in range(6):  # prepared and cached by every driver (psycopg: from the 5th run)
            assert await executor.execute("SELECT count(*) FROM t") == [(2,)]
    agent = ac.CowSession(target, guard=None)  # the reset, for SQL the guard would refuse
    async with agent.operation():
        for statement in LEFTOVERS:
            await agent.execute(statement)
    for statement in LEFTOVERS:  # one transaction each, too
        await agent.execute(statement)
    async with kind.next_user(target) as executor:
        assert await probe(executor) == before
        assert await executor.execute("SELECT count(*) FROM t") == [(2,)]
    # The agent's session can be entered again: no temporary object shadows t.
    assert await agent.query("SELECT count(*) AS n FROM t") == [{"n": 2}]


async def test_the_guard_refuses_before_anything_is_sent(
    kind: AsyncKind, target: Any, conn: Any
) -> None:
    """On by default (read from the catalog on first use): each statement that would leave
    state on the connection is refused, nothing of it reaches the server, and a refusal
    inside a block leaves the block's transaction usable."""
    async with kind.next_user(target) as executor:
        before = await probe(executor)
    agent = ac.CowSession(target)
    assert agent.guard is None  # not read yet
    for statement in LEFTOVERS:
        with pytest.raises(GuardRefusal) as refused:
            await agent.execute(statement)
        assert refused.value.sqlstate == "42501" and refused.value.hint
    assert agent.guard is not None and agent.guard.check("SELECT * FROM t").tables
    async with agent.operation():
        await agent.execute("INSERT INTO t VALUES (3, 'three')")
        with pytest.raises(GuardRefusal, match="multiple_statements"):
            await agent.execute("COMMIT; DELETE FROM t")
        await agent.execute("UPDATE t SET v = 'THREE' WHERE id = 3")
    assert await agent.query("SELECT v FROM t WHERE id = 3") == [{"v": "THREE"}]
    assert await base_rows(conn) == ORIGINAL
    async with kind.next_user(target) as executor:
        assert await probe(executor) == before


async def test_a_configured_guard_and_statement_objects(
    kind: AsyncKind, target: Any, conn: Any
) -> None:
    await conn.execute("CREATE TABLE lookup (id int PRIMARY KEY, name text)")
    await conn.execute("INSERT INTO lookup VALUES (1, 'uno')")
    guard = SqlGuard(cow_tables=["t"], read_only_tables=["lookup"])
    agent = ac.CowSession(target, guard=guard)
    assert agent.guard is guard
    rows = await agent.query("SELECT t.v, l.name FROM t JOIN lookup l USING (id)")
    assert rows == [{"v": "one", "name": "uno"}]
    with pytest.raises(GuardRefusal) as refused:
        await agent.execute("DELETE FROM lookup")
    assert (refused.value.code, refused.value.refused) == ("read_only_table", "lookup")
    with pytest.raises(GuardRefusal, match="not_sql_text"):
        await agent.execute(object())
    if kind.name.startswith("sqlalchemy"):
        text = sqlalchemy.text("SELECT pg_sleep(:s)")
        with pytest.raises(GuardRefusal, match="function_not_allowed"):
            await agent.execute(text, {"s": 0})
        table = sqlalchemy.table("t", sqlalchemy.column("id"), sqlalchemy.column("v"))
        core = sqlalchemy.update(table).where(table.c.id == 1).values(v="core")
        assert (await agent.execute(core)).rowcount == 1
        assert await agent.query(sqlalchemy.text("SELECT v FROM t WHERE id = :id"), {"id": 1}) == [
            {"v": "core"}
        ]
    assert await base_rows(conn) == ORIGINAL


async def test_a_busy_connection_is_refused(database: TestDatabase, conn: Any) -> None:
    await make_cow(conn, DDL, "t")
    async with conn.transaction():
        with pytest.raises(ac.ConnectionBusyError, match="idle connection"):
            await ac.CowSession(conn).execute("SELECT 1")
    with pytest.raises(ac.UnsupportedConnectionError, match=r"agentcow\.sync"):
        ac.CowSession(object())


# ---------------------------------------------------------------------------------------
# Reviewer
# ---------------------------------------------------------------------------------------


async def _agent_work(agent: Any, new: int = 3, gone: int = 2) -> tuple[uuid.UUID, uuid.UUID]:
    """A good operation (a new row, an update of row 1) and a bad one (a delete)."""
    good, bad = uuid.uuid4(), uuid.uuid4()
    async with agent.operation(good):
        await agent.execute(f"INSERT INTO t VALUES ({new}, 'new')")
        await agent.execute("UPDATE t SET v = 'ONE' WHERE id = 1")
    async with agent.operation(bad):
        await agent.execute(f"DELETE FROM t WHERE id = {gone}")
    return good, bad


async def test_reviewer_commits_the_good_half(kind: AsyncKind, target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    good, bad = await _agent_work(agent)
    reviewer = ac.Reviewer(target, agent.session_id)
    assert [op.operation_id for op in await reviewer.operations()] == [good, bad]
    assert await reviewer.dependencies() == []
    assert await reviewer.conflicts() == []
    everything = await reviewer.diff()
    assert everything.summary == {"INSERT": 1, "UPDATE": 1, "DELETE": 1}
    chosen = await reviewer.diff([good])
    assert chosen.summary == {"INSERT": 1, "UPDATE": 1, "DELETE": 0}
    assert await reviewer.commit([good]) == {"t": 2}
    assert await base_rows(conn) == [(1, "ONE"), (2, "two"), (3, "new")]
    assert await ac.get_session_operations(ex(conn), agent.session_id) == [bad]
    with pytest.raises(ac.ReviewFinishedError, match="committed"):
        await reviewer.discard()
    with pytest.raises(ac.ReviewFinishedError):
        await reviewer.commit()


async def test_reviewer_commits_all_and_discards(target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    await _agent_work(agent)
    reviewer = ac.Reviewer(target, agent.session_id)
    await reviewer.diff()
    assert await reviewer.commit() == {"t": 3}
    assert await base_rows(conn) == [(1, "ONE"), (3, "new")]
    assert await versions(conn, agent.session_id) == 0

    other = ac.CowSession(target)
    good, bad = await _agent_work(other, new=4, gone=1)  # bad deletes what good updated
    dropping = ac.Reviewer(target, other.session_id)
    assert await dropping.discard([bad]) == {"t": 1}
    assert await ac.get_session_operations(ex(conn), other.session_id) == [good]
    with pytest.raises(ac.ReviewFinishedError, match="discarded"):
        await dropping.discard()
    # Row 1 is back to what the base holds: only the new row is a pending change.
    assert await ac.Reviewer(target, other.session_id).discard() == {"t": 1}
    assert await versions(conn, other.session_id) == 0
    assert await base_rows(conn) == [(1, "ONE"), (3, "new")]


async def test_reviewer_commits_only_what_it_showed(target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    good, bad = await _agent_work(agent)
    reviewer = ac.Reviewer(target, agent.session_id)
    # Nothing diffed yet, then a diff of another selection: no commit.
    with pytest.raises(ac.NotReviewedError, match="diff"):
        await reviewer.commit()
    await reviewer.diff([good])
    with pytest.raises(ac.NotReviewedError):
        await reviewer.commit()
    with pytest.raises(ac.NotReviewedError):
        await reviewer.commit([bad])
    # A write after the review, even under the approved operation: refused, nothing applied.
    await reviewer.diff()
    async with agent.operation(good):
        await agent.execute("UPDATE t SET v = 'sneaked in' WHERE id = 3")
    with pytest.raises(ac.ReviewChangedError):
        await reviewer.commit()
    with pytest.raises(ac.ReviewChangedError):
        await reviewer.commit([good])
    assert await base_rows(conn) == ORIGINAL
    # Not a terminal action: diff again, and commit what is shown now.
    shown = await reviewer.diff()
    assert {row.pk["id"]: row.new for row in shown}[3] == {"id": 3, "v": "sneaked in"}
    assert await reviewer.commit() == {"t": 3}
    assert await base_rows(conn) == [(1, "ONE"), (3, "sneaked in")]


async def test_reviewer_reports_conflicts(target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    await agent.execute("UPDATE t SET v = 'agent' WHERE id = 1")
    await conn.execute(f"UPDATE {BASE} SET v = 'production' WHERE id = 1")
    reviewer = ac.Reviewer(target, agent.session_id)
    [conflict] = await reviewer.conflicts()
    assert conflict.kind == "updated"
    await reviewer.diff()
    with pytest.raises(ac.CommitConflictError):
        await reviewer.commit()
    assert await reviewer.commit(on_conflict="overwrite") == {"t": 1}
    assert await base_rows(conn) == [(1, "agent"), (2, "two")]


CASCADING = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY,
                     customer_id int REFERENCES customers ON DELETE CASCADE, total int);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');
INSERT INTO orders VALUES (10, 1, 5), (11, 2, 6);
"""


async def test_reviewer_refuses_cascades_it_did_not_show(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, CASCADING, "customers", "orders")
    async with asyncpg_pool(database.owner_dsn) as pool:
        agent = ac.CowSession(pool)
        await agent.execute("DELETE FROM customers WHERE id = 1")
        reviewer = ac.Reviewer(pool, agent.session_id)
        assert (await reviewer.diff()).table_summary() == {
            "customers": {"INSERT": 0, "UPDATE": 0, "DELETE": 1},
            "orders": {"INSERT": 0, "UPDATE": 0, "DELETE": 1},
        }
        await conn.execute("INSERT INTO orders VALUES (12, 1, 7)")  # production, meanwhile
        with pytest.raises(ac.CascadeConflictError) as refused:
            await reviewer.commit()
        assert [c.key for c in refused.value.cascades] == [{"id": 12}]
        assert await reviewer.commit(allow_cascades=True) == {"customers": 1, "orders": 1}
    assert await fetch(conn, f"SELECT id FROM {base_table('orders')} ORDER BY id") == [(11,)]


README_ORDERS = """
CREATE TABLE orders (id int PRIMARY KEY, total numeric(10, 2) NOT NULL);
INSERT INTO orders VALUES (1, 100.00), (2, 35.50);
"""


async def test_readme_async_example(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, README_ORDERS, "orders")
    [example] = [block for block in readme_examples() if "await " in block]
    source = "async def example(ac, pool):\n" + textwrap.indent(example, "    ")
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    async with asyncpg_pool(database.owner_dsn) as pool:
        await namespace["example"](ac, pool)
    assert await fetch(conn, f"SELECT id, total::text FROM {base_table('orders')} ORDER BY id") == [
        (1, "90.00"),
        (2, "35.50"),
    ]
    assert await fetch(conn, f"SELECT count(*) FROM {changes_table('orders')}") == [(0,)]


async def test_reviewer_with_a_policy(target: Any, conn: Any) -> None:
    """The policy judges the reviewed diff; a block or a needed person refuses the commit,
    which is then not the review's terminal action."""
    agent = ac.CowSession(target)
    good, _bad = await _agent_work(agent)
    policy = ac.Policy.from_mapping(
        {"tables": {"t": {"forbid_deletes": True, "rules": ["new.v <> 'forbidden'"]}}}
    )
    reviewer = ac.Reviewer(target, agent.session_id, policy=policy)
    with pytest.raises(ac.NotReviewedError):
        await reviewer.check()
    await reviewer.diff()
    report = await reviewer.check()
    assert report.decision.value == "block"
    with pytest.raises(ac.PolicyViolationError) as refused:
        await reviewer.commit()
    assert refused.value.report.decision == report.decision
    assert await base_rows(conn) == [(1, "one"), (2, "two")]
    await reviewer.diff([good])
    assert (await reviewer.check([good])).decision.value == "approve"
    assert await reviewer.commit([good]) == {"t": 2}
    assert await base_rows(conn) == [(1, "ONE"), (2, "two"), (3, "new")]


async def test_reviewer_policy_needing_a_person(target: Any, conn: Any) -> None:
    agent = ac.CowSession(target)
    good, _ = await _agent_work(agent)
    policy = ac.Policy.from_mapping({"tables": {"t": {"needs_person": True}}})
    reviewer = ac.Reviewer(target, agent.session_id, policy=policy)
    await reviewer.diff([good])
    with pytest.raises(ac.PersonRequiredError):
        await reviewer.commit([good])
    assert await reviewer.commit([good], person_approved=True) == {"t": 2}
