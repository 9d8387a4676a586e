"""The driver adapters: each runs the whole life cycle against the real server."""

from __future__ import annotations

from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.adapters.psycopg import PsycopgExecutor
from agentcow.adapters.sqlalchemy import SQLAlchemyExecutor
from tests.conftest import TestDatabase
from tests.helpers import LAYOUT, base_table, changes_table, fetch, new_id

T_BASE, T_CHANGES = base_table("t"), changes_table("t")

# Text a naive driver would take for placeholders: it must reach the server untouched.
TRICKY = "it's :name and %s and %(x)s and $1 and ?"
TRICKY_SQL = "'it''s :name and %s and %(x)s and $1 and ?'"


async def _life_cycle(executor: Any, begin: Any, commit: Any) -> None:
    """deploy + enable + session write + commit through ``executor``.

    ``begin``/``commit`` open and close a transaction on the executor's connection.
    """
    await ac.deploy_cow_functions(executor)
    await ac.deploy_cow_functions(executor)
    await executor.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    await executor.execute("INSERT INTO t VALUES (1, ':a %s')")
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    await commit()
    sid = new_id()
    await begin()
    await ac.apply_cow_variables(executor, sid, new_id())
    await executor.execute(f"INSERT INTO t VALUES (2, {TRICKY_SQL})")
    await executor.execute("UPDATE t SET v = v || ' :b' WHERE id = 1")
    rows = await executor.execute("SELECT id, v FROM t ORDER BY id")
    assert rows == [(1, ":a %s :b"), (2, TRICKY)]
    await commit()
    await begin()
    assert await executor.execute("SELECT id, v FROM t ORDER BY id") == [(1, ":a %s")]
    assert await ac.get_dirty_tables(executor, sid) == ["t"]
    assert await ac.get_session_operations(executor, sid) != []
    await ac.commit_cow_session(executor, "t", sid)
    await commit()
    # Statements that return nothing give [].
    await begin()
    assert await executor.execute("SET LOCAL statement_timeout = 0") == []
    assert await executor.execute(f"SELECT {TRICKY_SQL}, ':name', '%s'") == [
        (TRICKY, ":name", "%s")
    ]
    await commit()


async def _check_committed(conn: Any) -> None:
    assert await fetch(conn, f"SELECT id, v FROM {T_BASE} ORDER BY id") == [
        (1, ":a %s :b"),
        (2, TRICKY),
    ]
    assert await fetch(conn, f"SELECT count(*) FROM {T_CHANGES}") == [(0,)]


async def test_asyncpg_executor(conn: Any, second_conn: Any) -> None:
    executor = AsyncpgExecutor(conn)
    assert isinstance(executor, ac.Executor)
    state: dict[str, Any] = {}

    async def begin() -> None:
        state["tx"] = conn.transaction()
        await state["tx"].start()

    async def commit() -> None:
        tx = state.pop("tx", None)
        if tx is not None:
            await tx.commit()

    await _life_cycle(executor, begin, commit)
    await _check_committed(second_conn)


async def test_psycopg_executor(conn: Any, database: TestDatabase) -> None:
    async with await psycopg.AsyncConnection.connect(database.owner_dsn) as pconn:
        executor = PsycopgExecutor(pconn)
        assert isinstance(executor, ac.Executor)

        async def begin() -> None:
            pass  # psycopg opens a transaction with the first statement

        await _life_cycle(executor, begin, pconn.commit)
    await _check_committed(conn)


async def test_psycopg_executor_autocommit(conn: Any, database: TestDatabase) -> None:
    async with await psycopg.AsyncConnection.connect(database.owner_dsn, autocommit=True) as pconn:
        executor = PsycopgExecutor(pconn)

        async def begin() -> None:
            await executor.execute("BEGIN")

        async def commit() -> None:
            if pconn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await executor.execute("COMMIT")

        await _life_cycle(executor, begin, commit)
    await _check_committed(conn)


async def test_executors_tell_whether_a_statement_runs_alone(
    conn: Any, database: TestDatabase
) -> None:
    """Commit and discard truncate the change tables they empty only in a transaction of
    their own (see TransactionAware): each adapter must tell it from the caller's."""
    executor = AsyncpgExecutor(conn)
    assert isinstance(executor, ac.TransactionAware) and executor.runs_alone()
    async with conn.transaction():
        assert not executor.runs_alone()
    pool = await asyncpg.create_pool(database.owner_dsn, min_size=1, max_size=1)
    try:
        assert AsyncpgExecutor(pool).runs_alone()
    finally:
        await pool.close()
    async with await psycopg.AsyncConnection.connect(database.owner_dsn) as pconn:
        assert not PsycopgExecutor(pconn).runs_alone()  # psycopg's transaction, not ours
    async with await psycopg.AsyncConnection.connect(database.owner_dsn, autocommit=True) as pconn:
        executor_p = PsycopgExecutor(pconn)
        assert executor_p.runs_alone()
        await executor_p.execute("BEGIN")
        assert not executor_p.runs_alone()
    engine = create_async_engine(_sqlalchemy_url(database.owner_dsn, "asyncpg"))
    try:
        async with engine.connect() as sa_conn:
            assert not isinstance(SQLAlchemyExecutor(sa_conn), ac.TransactionAware)
    finally:
        await engine.dispose()


def _sqlalchemy_url(dsn: str, driver: str) -> str:
    scheme, rest = dsn.split("://", 1)
    assert scheme in ("postgresql", "postgres")
    return f"postgresql+{driver}://{rest}"


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_sqlalchemy_executor_connection(
    conn: Any, database: TestDatabase, driver: str
) -> None:
    engine = create_async_engine(_sqlalchemy_url(database.owner_dsn, driver))
    try:
        async with engine.connect() as sa_conn:
            executor = SQLAlchemyExecutor(sa_conn)
            assert isinstance(executor, ac.Executor)

            async def begin() -> None:
                if not sa_conn.in_transaction():
                    await sa_conn.begin()

            async def commit() -> None:
                if sa_conn.in_transaction():
                    await sa_conn.commit()

            await _life_cycle(executor, begin, commit)
    finally:
        await engine.dispose()
    await _check_committed(conn)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_sqlalchemy_executor_session(conn: Any, database: TestDatabase, driver: str) -> None:
    engine = create_async_engine(_sqlalchemy_url(database.owner_dsn, driver))
    try:
        async with AsyncSession(engine) as sa_session:
            executor = SQLAlchemyExecutor(sa_session)
            assert isinstance(executor, ac.Executor)

            async def begin() -> None:
                pass  # the session begins on first use

            await _life_cycle(executor, begin, sa_session.commit)
    finally:
        await engine.dispose()
    await _check_committed(conn)


def test_executor_protocol_is_structural() -> None:
    class Mine:
        async def execute(self, sql: str) -> list[tuple[Any, ...]]:
            return []

    class NotOne:
        async def run(self, sql: str) -> None: ...

    assert isinstance(Mine(), ac.Executor)
    assert not isinstance(NotOne(), ac.Executor)


async def _conflicting_session(conn: Any) -> Any:
    """Table t with a session that updated row 1, which the base changed since."""
    await ac.deploy_cow_functions(AsyncpgExecutor(conn))
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
    await ac.enable_cow(AsyncpgExecutor(conn), "t", layout=LAYOUT)
    sid = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(AsyncpgExecutor(conn), sid, new_id())
        await conn.execute("UPDATE t SET v = 'session' WHERE id = 1")
    await conn.execute("UPDATE t SET v = 'base' WHERE id = 1")
    return sid


def _check_conflict_error(error: ac.CommitConflictError) -> None:
    assert error.sqlstate == "40001"
    [conflict] = error.conflicts
    assert (conflict.table, conflict.key, conflict.kind) == ("t", {"id": 1}, "updated")
    assert (conflict.base_then, conflict.base_now, conflict.session) == (
        {"id": 1, "v": "a"},
        {"id": 1, "v": "base"},
        {"id": 1, "v": "session"},
    )


@pytest.mark.parametrize("driver", ["psycopg", "sqlalchemy+asyncpg", "sqlalchemy+psycopg"])
async def test_conflict_error_through_every_driver(
    conn: Any, database: TestDatabase, driver: str
) -> None:
    """The commit block's 40001 becomes CommitConflictError whatever wraps it."""
    sid = await _conflicting_session(conn)
    if driver == "psycopg":
        async with await psycopg.AsyncConnection.connect(database.owner_dsn) as pconn:
            with pytest.raises(ac.CommitConflictError) as caught:
                await ac.commit_cow_session(PsycopgExecutor(pconn), "t", sid)
            await pconn.rollback()
    else:
        engine = create_async_engine(_sqlalchemy_url(database.owner_dsn, driver.split("+")[1]))
        try:
            async with engine.connect() as sa_conn:
                with pytest.raises(ac.CommitConflictError) as caught:
                    await ac.commit_cow_session(SQLAlchemyExecutor(sa_conn), "t", sid)
                await sa_conn.rollback()
        finally:
            await engine.dispose()
    _check_conflict_error(caught.value)
    assert await fetch(conn, f"SELECT id, v FROM {T_BASE}") == [(1, "base")]
    assert await fetch(conn, f"SELECT count(*) FROM {T_CHANGES}") == [(1,)]


async def _outside_a_transaction(conn: Any, executor: Any) -> None:
    """Entering a session with no transaction open is refused, and the write the agent would
    have sent next is never reached; the same connection works once a transaction is open."""
    with pytest.raises(ac.SessionNotInTransactionError, match="open transaction"):
        await ac.apply_cow_variables(executor, new_id(), new_id())
    assert await fetch(conn, f"SELECT id, v FROM {T_BASE} ORDER BY id") == [(1, "a")]


async def _table_t(conn: Any) -> None:
    await ac.deploy_cow_functions(AsyncpgExecutor(conn))
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
    await ac.enable_cow(AsyncpgExecutor(conn), "t", layout=LAYOUT)


async def test_session_outside_a_transaction_asyncpg(conn: Any, database: TestDatabase) -> None:
    await _table_t(conn)
    agent = await asyncpg.connect(database.owner_dsn)
    pool = await asyncpg.create_pool(database.owner_dsn, min_size=2, max_size=2)
    try:
        await _outside_a_transaction(conn, AsyncpgExecutor(agent))
        await _outside_a_transaction(conn, AsyncpgExecutor(pool))  # one connection per call
        async with agent.transaction():
            await ac.apply_cow_variables(AsyncpgExecutor(agent), new_id(), new_id())
            await agent.execute("UPDATE t SET v = 'b'")
    finally:
        await pool.close()
        await agent.close()
    assert await fetch(conn, f"SELECT id, v FROM {T_BASE}") == [(1, "a")]


class _CountingExecutor(AsyncpgExecutor):
    """Counts the round trips it makes: a statement sent with run() is one, one with
    execute() two when its text is new (asyncpg prepares it first)."""

    sent = 0

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        self.sent += 2
        return await super().execute(sql)

    async def run(self, sql: str) -> None:
        self.sent += 1
        await super().run(sql)


async def test_entering_a_session_is_one_statement(conn: Any) -> None:
    """Every agent request enters its session: with an executor that knows whether a
    transaction is open, that costs one round trip (settings and their check together)."""
    await _table_t(conn)
    counting = _CountingExecutor(conn)
    sid, op = new_id(), new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(counting, sid, op, [op])
        assert counting.sent == 1
        assert await fetch(
            conn,
            "SELECT current_setting('app.session_id'), current_setting('app.operation_id'), "
            "current_setting('app.visible_operations')",
        ) == [(str(sid), str(op), "{" + str(op) + "}")]
    with pytest.raises(ac.SessionNotInTransactionError):
        await ac.apply_cow_variables(counting, sid, op)
    assert counting.sent == 1  # refused before sending anything


async def test_session_outside_a_transaction_psycopg(conn: Any, database: TestDatabase) -> None:
    await _table_t(conn)
    async with await psycopg.AsyncConnection.connect(database.owner_dsn, autocommit=True) as pconn:
        await _outside_a_transaction(conn, PsycopgExecutor(pconn))


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_session_outside_a_transaction_sqlalchemy(
    conn: Any, database: TestDatabase, driver: str
) -> None:
    await _table_t(conn)
    engine = create_async_engine(
        _sqlalchemy_url(database.owner_dsn, driver), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as sa_conn:
            await _outside_a_transaction(conn, SQLAlchemyExecutor(sa_conn))
    finally:
        await engine.dispose()


async def test_shadowing_is_refused_through_every_path(conn: Any, database: TestDatabase) -> None:
    """Entering a session over a temporary object that shadows a table is refused whether
    the executor enters in one statement (asyncpg) or sets and reads back (SQLAlchemy)."""
    await _table_t(conn)
    agent = await asyncpg.connect(database.owner_dsn)
    try:
        await agent.execute("CREATE TEMP VIEW t AS SELECT 1 AS id")
        with pytest.raises(ac.ShadowedNamesError) as raised:
            async with agent.transaction():
                await ac.apply_cow_variables(AsyncpgExecutor(agent), new_id(), new_id())
        assert raised.value.names == ["t"]
    finally:
        await agent.close()
    engine = create_async_engine(_sqlalchemy_url(database.owner_dsn, "asyncpg"))
    try:
        async with engine.connect() as sa_conn:
            await sa_conn.exec_driver_sql("CREATE TEMP TABLE t (id int)")
            with pytest.raises(ac.ShadowedNamesError) as raised:
                await ac.apply_cow_variables(SQLAlchemyExecutor(sa_conn), new_id(), new_id())
            assert raised.value.names == ["t"]
    finally:
        await engine.dispose()
