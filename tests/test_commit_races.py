"""Commits and discards racing agents, each other and production transactions.

Every test uses several real connections. A commit is paused mid-apply by a trigger on a base
table that waits for an advisory lock the test holds (``gate``), so what runs meanwhile is
deterministic; the tests wait for a backend to block by watching ``pg_locks``.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from agentcow.executor import Executor
from tests.conftest import TestDatabase
from tests.helpers import (
    base_name,
    base_table,
    connect_as,
    create_login_role,
    ex,
    fetch,
    grant_agent,
    make_cow,
    new_id,
    session,
)

GATE = 7007
ITEMS = """
CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL);
INSERT INTO items SELECT g, 0 FROM generate_series(1, 10) g;
"""


def _pid(conn: Any) -> int:
    """The server process of an asyncpg connection (known without a query, so it can be
    asked while the connection is busy)."""
    return int(conn.get_server_pid())


async def _blocked(monitor: Any, pid: int, *, timeout: float = 20.0) -> None:
    """Returns once backend ``pid`` waits for a lock; fails if it never does."""
    for _ in range(int(timeout / 0.02)):
        if await monitor.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted", pid
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def _still_waiting(task: asyncio.Task[Any]) -> bool:
    await asyncio.sleep(0.3)
    return not task.done()


async def _install_gate(conn: Any, table: str) -> None:
    """A base trigger that makes any write to ``table`` wait for the gate (held by the test)."""
    await conn.execute(
        f"""
        CREATE FUNCTION wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock({GATE}); RETURN NULL; END $$;
        CREATE TRIGGER gate AFTER INSERT OR UPDATE OR DELETE ON {base_table(table)}
            FOR EACH STATEMENT EXECUTE FUNCTION wait_at_gate();
        """
    )


@pytest.fixture
async def connections(database: TestDatabase) -> AsyncIterator[list[Any]]:
    """Four more owner connections: reviewer, agent, gate keeper, monitor."""
    opened = [await asyncpg.connect(database.owner_dsn) for _ in range(4)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


async def _agent_write(conn: Any, sid: uuid.UUID, op: uuid.UUID, sql: str) -> None:
    async with session(conn, sid, op):
        await conn.execute(sql)


async def test_agent_write_during_a_commit_waits_and_stays_in_the_session(
    conn: Any, connections: list[Any]
) -> None:
    reviewer, agent, keeper, monitor = connections
    await make_cow(conn, ITEMS, "items")
    await _install_gate(conn, "items")
    sid, first, second = new_id(), new_id(), new_id()
    await _agent_write(agent, sid, first, "UPDATE items SET qty = 1 WHERE id <= 5")

    await keeper.execute(f"SELECT pg_advisory_lock({GATE})")
    commit = asyncio.create_task(ac.commit_cow_session_schema(ex(reviewer), sid))
    await _blocked(monitor, _pid(reviewer))  # paused mid-apply, at the gate
    write = asyncio.create_task(
        _agent_write(agent, sid, second, "UPDATE items SET qty = 2 WHERE id > 5")
    )
    await _blocked(monitor, _pid(agent))  # the agent waits for the commit
    await keeper.execute(f"SELECT pg_advisory_unlock({GATE})")
    assert await commit == ["items"]
    await write

    assert await fetch(conn, "SELECT id, qty FROM items ORDER BY id") == [
        (i, 1 if i <= 5 else 0) for i in range(1, 11)
    ]
    # The write made while the commit ran was neither applied nor lost.
    assert await ac.get_session_operations(ex(conn), sid) == [second]
    async with session(conn, sid):
        assert await fetch(conn, "SELECT id, qty FROM items ORDER BY id") == [
            (i, 1 if i <= 5 else 2) for i in range(1, 11)
        ]


async def test_a_commit_waits_for_an_agent_transaction_and_applies_all_of_it(
    conn: Any, connections: list[Any]
) -> None:
    reviewer, agent, _, monitor = connections
    await make_cow(conn, ITEMS, "items")
    sid = new_id()
    await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 1 WHERE id = 1")
    async with session(agent, sid):
        await agent.execute("UPDATE items SET qty = 2 WHERE id = 2")
        commit = asyncio.create_task(ac.commit_cow_session_schema(ex(reviewer), sid))
        await _blocked(monitor, _pid(reviewer))
        await agent.execute("UPDATE items SET qty = 3 WHERE id = 3")
    await commit
    assert await fetch(conn, "SELECT id, qty FROM items WHERE qty > 0 ORDER BY id") == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]
    assert await ac.get_dirty_tables(ex(conn), sid) == []


@pytest.mark.parametrize("second", ["commit", "discard"])
async def test_a_commit_and_a_second_commit_or_discard_of_the_session_serialize(
    conn: Any, connections: list[Any], second: str
) -> None:
    reviewer, other, keeper, monitor = connections
    await make_cow(
        conn,
        ITEMS + "CREATE TABLE notes (id int PRIMARY KEY, body text);",
        "items",
        "notes",
    )
    await _install_gate(conn, "items")
    sid = new_id()
    await _agent_write(conn, sid, new_id(), "UPDATE items SET qty = 5 WHERE id <= 3")
    await _agent_write(conn, sid, new_id(), "INSERT INTO notes VALUES (1, 'n')")

    await keeper.execute(f"SELECT pg_advisory_lock({GATE})")
    commit = asyncio.create_task(ac.commit_cow_session_schema(ex(reviewer), sid))
    await _blocked(monitor, _pid(reviewer))
    racing: Awaitable[list[str]] = (
        ac.commit_cow_session_schema(ex(other), sid)
        if second == "commit"
        else ac.discard_cow_session_schema(ex(other), sid)
    )
    late = asyncio.create_task(racing)
    await _blocked(monitor, _pid(other))
    await keeper.execute(f"SELECT pg_advisory_unlock({GATE})")
    assert sorted(await commit) == ["items", "notes"]
    assert await late == []  # it planned again and found nothing left
    assert await fetch(conn, "SELECT id FROM items WHERE qty = 5 ORDER BY id") == [(1,), (2,), (3,)]
    assert await fetch(conn, "SELECT id, body FROM notes") == [(1, "n")]
    assert await ac.get_dirty_tables(ex(conn), sid) == []


_NEW_ITEM_IDS = itertools.count(101)


class _WriteBeforeBlock:
    """An executor that lets an agent write in the session (on its own connection, committed)
    just before the first commit or discard block runs: the session changes between the
    call's plan and its block."""

    def __init__(self, inner: Executor, agent: Any, sid: uuid.UUID, times: int) -> None:
        self._inner, self._agent, self._sid, self._times = inner, agent, sid, times
        self.inserted: list[int] = []

    @property
    def writes(self) -> int:
        return len(self.inserted)

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        if sql.startswith("DO ") and self.writes < self._times:
            item = next(_NEW_ITEM_IDS)
            await _agent_write(
                self._agent, self._sid, new_id(), f"INSERT INTO items VALUES ({item}, 9)"
            )
            self.inserted.append(item)
        return await self._inner.execute(sql)


async def test_a_commit_plans_again_when_the_session_changes_under_it(
    conn: Any, connections: list[Any]
) -> None:
    reviewer, agent, _, _ = connections
    await make_cow(conn, ITEMS, "items")
    sid = new_id()
    await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 1 WHERE id = 1")
    executor = _WriteBeforeBlock(ex(reviewer), agent, sid, times=1)
    assert await ac.commit_cow_session_schema(executor, sid) == ["items"]
    assert executor.writes == 1
    # The second plan saw the agent's write: the session was committed whole.
    assert await fetch(conn, "SELECT id, qty FROM items WHERE qty > 0 ORDER BY id") == [
        (1, 1),
        (executor.inserted[0], 9),
    ]
    assert await ac.get_dirty_tables(ex(conn), sid) == []


async def test_a_session_that_keeps_changing_is_refused_clearly(
    conn: Any, connections: list[Any]
) -> None:
    reviewer, agent, _, _ = connections
    await make_cow(conn, ITEMS, "items")
    sid = new_id()
    await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 1 WHERE id = 1")
    executor = _WriteBeforeBlock(ex(reviewer), agent, sid, times=100)
    with pytest.raises(ac.SessionChangedError, match="call again") as raised:
        await ac.discard_cow_session_schema(executor, sid)
    assert raised.value.sqlstate == "40001"
    assert executor.writes == 5
    assert len(await ac.get_session_operations(ex(conn), sid)) == 6  # nothing discarded

    # Inside the caller's transaction the call cannot plan again: it says so at once.
    executor = _WriteBeforeBlock(ex(reviewer), agent, sid, times=1)
    with pytest.raises(ac.SessionChangedError, match="ROLLBACK"):
        async with reviewer.transaction():
            await ac.commit_cow_session_schema(executor, sid)
    assert executor.writes == 1
    assert await fetch(conn, "SELECT count(*) FROM items WHERE qty > 0") == [(0,)]
    assert len(await ac.get_session_operations(ex(conn), sid)) == 7


SHOP = """
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, account int NOT NULL REFERENCES accounts, total int);
INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 40) g;
"""


async def test_a_commit_does_not_deadlock_with_a_production_transaction(
    conn: Any, connections: list[Any]
) -> None:
    """Production inserts an order, then updates its account (orders before accounts); the
    commit writes both tables. Locking them one by one deadlocked (40P01)."""
    reviewer, production, _, monitor = connections
    await make_cow(conn, SHOP, "accounts", "orders")
    sid = new_id()
    await _agent_write(conn, sid, new_id(), "UPDATE accounts SET balance = 10 WHERE id = 1")
    await _agent_write(conn, sid, new_id(), "INSERT INTO orders VALUES (1, 1, 10)")
    async with production.transaction():
        await production.execute("INSERT INTO orders VALUES (2, 2, 20)")
        commit = asyncio.create_task(ac.commit_cow_session_schema(ex(reviewer), sid))
        await _blocked(monitor, _pid(reviewer))
        await asyncio.wait_for(
            production.execute("UPDATE accounts SET balance = balance - 20 WHERE id = 2"), 10
        )
    assert sorted(await commit) == ["accounts", "orders"]
    assert await fetch(conn, "SELECT id, balance FROM accounts WHERE balance <> 0 ORDER BY id") == [
        (1, 10),
        (2, -20),
    ]
    assert await fetch(conn, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


async def test_commits_under_a_production_workload_never_deadlock(
    conn: Any, database: TestDatabase
) -> None:
    """Production transactions write orders then accounts, or accounts then orders, while
    sessions (on other accounts: no conflicts) are committed; every commit succeeds and no
    transaction dies with 40P01."""
    await make_cow(conn, SHOP, "accounts", "orders")
    sessions = [new_id() for _ in range(12)]
    for number, sid in enumerate(sessions):
        await _agent_write(
            conn,
            sid,
            new_id(),
            f"UPDATE accounts SET balance = balance + 1 WHERE id = {number + 21}",
        )
        await _agent_write(
            conn, sid, new_id(), f"INSERT INTO orders VALUES ({1000 + number}, {number + 21}, 1)"
        )
    stop = asyncio.Event()
    failures: list[str] = []
    done = [0]

    async def production(worker: int) -> None:
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            for number in range(200):
                if stop.is_set():
                    return
                order, account = 10_000 + worker * 1000 + number, number % 20 + 1
                try:
                    async with connection.transaction():
                        if number % 2:
                            await connection.execute(
                                f"INSERT INTO orders VALUES ({order}, {account}, 5)"
                            )
                            await asyncio.sleep(0.005)
                            await connection.execute(
                                f"UPDATE accounts SET balance = balance - 5 WHERE id = {account}"
                            )
                        else:
                            await connection.execute(
                                f"UPDATE accounts SET balance = balance - 5 WHERE id = {account}"
                            )
                            await asyncio.sleep(0.005)
                            await connection.execute(
                                f"INSERT INTO orders VALUES ({order}, {account}, 5)"
                            )
                    done[0] += 1
                except asyncpg.PostgresError as error:
                    if error.sqlstate == "40001":  # the view's documented retry, not a deadlock
                        continue
                    failures.append(f"production {error.sqlstate}: {error}")
        finally:
            await connection.close()

    async def reviewer() -> None:
        connection = await asyncpg.connect(database.owner_dsn)
        try:
            for sid in sessions:
                try:
                    await ac.commit_cow_session_schema(ex(connection), sid)
                except Exception as error:
                    failures.append(f"commit: {error!r}")
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await connection.close()

    await asyncio.wait_for(asyncio.gather(reviewer(), *(production(w) for w in range(3))), 120)
    assert failures == []
    assert done[0] > 0
    assert await fetch(conn, "SELECT count(*) FROM orders WHERE id BETWEEN 1000 AND 1011") == [
        (12,)
    ]


async def test_a_commit_locks_the_tables_base_cascades_reach(
    conn: Any, connections: list[Any]
) -> None:
    """A parent deleted at commit cascades (by the base's own key) into a plain table; the
    commit holds that table too, so another commit writing it cannot deadlock with it."""
    reviewer, _, keeper, monitor = connections
    await make_cow(
        conn,
        """
        CREATE TABLE parents (id int PRIMARY KEY);
        CREATE TABLE audit (id int PRIMARY KEY, parent int REFERENCES parents ON DELETE CASCADE);
        INSERT INTO parents VALUES (1), (2);
        INSERT INTO audit VALUES (1, 1);
        """,
        "parents",
    )
    await _install_gate(conn, "parents")
    sid = new_id()
    await _agent_write(conn, sid, new_id(), "DELETE FROM parents WHERE id = 2")
    await keeper.execute(f"SELECT pg_advisory_lock({GATE})")
    commit = asyncio.create_task(ac.commit_cow_session_schema(ex(reviewer), sid))
    await _blocked(monitor, _pid(reviewer))
    held = await fetch(
        monitor,
        "SELECT relation::regclass::text FROM pg_locks WHERE pid = $1 AND granted "
        "AND mode = 'ShareRowExclusiveLock' ORDER BY 1",
        _pid(reviewer),
    )
    await keeper.execute(f"SELECT pg_advisory_unlock({GATE})")
    await commit
    assert held == [("audit",), (base_name("parents")[1],)]


ITEMS_BASE = base_table("items")
TRAP_OPERATOR = f"""
CREATE FUNCTION public.same_row(a {ITEMS_BASE}, b {ITEMS_BASE}) RETURNS boolean
LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'agent code ran as %', current_user; END $$;
CREATE OPERATOR public.*= (LEFTARG = {ITEMS_BASE}, RIGHTARG = {ITEMS_BASE},
                           FUNCTION = public.same_row);
"""
TRAP_TO_JSONB = f"""
CREATE FUNCTION public.to_jsonb(r {ITEMS_BASE}) RETURNS jsonb LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'agent code ran as %', current_user; END $$;
"""


async def _session_of_a_trapping_agent(
    conn: Any, database: TestDatabase, role: str, traps: str
) -> uuid.UUID:
    """An agent that may create objects in public (on the reviewer's search_path) leaves
    ``traps`` there, then updates item 1 in a session; returns the session."""
    await create_login_role(database, role)
    await grant_agent(conn, role, ["items"])
    await conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    agent = await connect_as(database, role)
    try:
        await agent.execute(traps)
        sid = new_id()
        await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 4 WHERE id = 1")
    finally:
        await agent.close()
    return sid


async def test_commit_runs_nothing_an_agent_created(conn: Any, database: TestDatabase) -> None:
    """An agent that may create objects in a schema on the reviewer's search_path defines an
    operator the conflict check would pick over pg_catalog's (a closer match for the row
    type); the commit must resolve every operator in pg_catalog."""
    executor = await make_cow(conn, ITEMS, "items")
    sid = await _session_of_a_trapping_agent(conn, database, "agent_creator", TRAP_OPERATOR)
    await conn.execute("SET search_path = public")
    await ac.commit_cow_session_schema(executor, sid)
    assert await conn.fetchval("SELECT qty FROM items WHERE id = 1") == 4
    assert await conn.fetchval("SHOW search_path") == "public"


async def test_review_runs_nothing_an_agent_created(conn: Any, database: TestDatabase) -> None:
    """Listing conflicts runs as a plain query with the reviewer's search_path: functions and
    operators an agent defined for the table's row type (closer matches than pg_catalog's
    polymorphic ones) must not be picked."""
    executor = await make_cow(conn, ITEMS, "items")
    sid = await _session_of_a_trapping_agent(
        conn, database, "agent_reviewed", TRAP_TO_JSONB + TRAP_OPERATOR
    )
    await conn.execute("UPDATE items SET qty = 3 WHERE id = 1")  # production, meanwhile
    await conn.execute("SET search_path = public")
    [conflict] = await ac.get_cow_conflicts(executor, sid)
    assert (conflict.base_then, conflict.base_now) == ({"id": 1, "qty": 0}, {"id": 1, "qty": 3})
    with pytest.raises(ac.CommitConflictError):
        await ac.commit_cow_session_schema(executor, sid)


@pytest.mark.parametrize("call", ["commit", "discard"])
async def test_a_repeatable_read_commit_keeps_versions_committed_after_its_snapshot(
    conn: Any, connections: list[Any], call: str
) -> None:
    """A reviewer whose transactions are REPEATABLE READ (default_transaction_isolation, for
    the role, the database or the connection) commits or discards a session in a transaction
    of its own. Its snapshot is taken as its statement starts, before it waits for the
    session's lock: versions committed meanwhile (the session's own in-flight write, another
    session's write) are not in it. The change table looks empty to that snapshot once the
    session's versions are gone, but is not: truncating it destroyed them."""
    reviewer, agent, other, monitor = connections
    await make_cow(conn, ITEMS, "items")
    sid, bystander = new_id(), new_id()
    await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 1 WHERE id = 1")
    await reviewer.execute("SET default_transaction_isolation = 'repeatable read'")
    async with session(agent, sid) as late:
        await agent.execute("UPDATE items SET qty = 2 WHERE id = 2")
        call_task = asyncio.create_task(
            ac.commit_cow_session_schema(ex(reviewer), sid)
            if call == "commit"
            else ac.discard_cow_session_schema(ex(reviewer), sid)
        )
        await _blocked(monitor, _pid(reviewer))  # its snapshot taken, it waits for the session
        await _agent_write(other, bystander, new_id(), "UPDATE items SET qty = 7 WHERE id = 7")
    await call_task
    async with session(conn, bystander):
        assert await conn.fetchval("SELECT qty FROM items WHERE id = 7") == 7
    # The write the call waited for: not in its snapshot, so neither applied nor discarded.
    assert await ac.get_session_operations(ex(conn), sid) == [late]
    async with session(conn, sid):
        assert await conn.fetchval("SELECT qty FROM items WHERE id = 2") == 2


async def test_a_commit_leaves_the_change_table_to_older_snapshots(
    conn: Any, connections: list[Any], database: TestDatabase
) -> None:
    """TRUNCATE is not MVCC-safe: a REPEATABLE READ transaction whose snapshot predates the
    commit, and that reads the change table only after it, finds it empty while the base it
    reads is the one of its snapshot: the session's versions are in neither, its own rows
    vanish (and a write based on what it read would undo the commit). A commit does not
    truncate while another backend of the database holds a snapshot."""
    reviewer, _, _, _ = connections
    await make_cow(conn, ITEMS + "CREATE TABLE elsewhere (x int);", "items")
    await create_login_role(database, "agent_rr")
    await grant_agent(conn, "agent_rr", ["items"])
    await conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON elsewhere TO agent_rr")
    agent = await connect_as(database, "agent_rr")
    try:
        sid = new_id()
        await _agent_write(agent, sid, new_id(), "UPDATE items SET qty = 1 WHERE id = 1")
        async with agent.transaction(isolation="repeatable_read"):
            await ac.apply_cow_variables(ex(agent), sid, new_id())
            await agent.fetchval("SELECT count(*) FROM elsewhere")  # its snapshot
            assert await ac.commit_cow_session_schema(ex(reviewer), sid) == ["items"]
            assert await agent.fetchval("SELECT qty FROM items WHERE id = 1") == 1
    finally:
        await agent.close()
    assert await fetch(conn, "SELECT qty FROM items WHERE id = 1") == [(1,)]
