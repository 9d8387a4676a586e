"""What the scope tests run on: every driver and kind of connection a CowSession or Reviewer
takes (a connection, or a pool of one connection so that the next user of the pool is
surely the connection an agent used), and a way to be that next user."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.adapters.psycopg import PsycopgExecutor, PsycopgSyncExecutor
from agentcow.adapters.sqlalchemy import SQLAlchemyExecutor, SQLAlchemySyncExecutor
from agentcow.blocking import run_blocking
from agentcow.executor import Executor


def sqlalchemy_url(dsn: str, driver: str) -> str:
    scheme, rest = dsn.split("://", 1)
    assert scheme in ("postgresql", "postgres")
    return f"postgresql+{driver}://{rest}"


@dataclass(frozen=True)
class AsyncKind:
    """``opened(dsn)`` yields what a scope takes; ``next_user(target)`` yields an executor
    on the connection the next user of it gets (the connection itself when not pooled)."""

    name: str
    pooled: bool
    opened: Callable[[str], contextlib.AbstractAsyncContextManager[Any]]
    next_user: Callable[[Any], contextlib.AbstractAsyncContextManager[Executor]]
    #: The error class PostgreSQL errors reach the caller as.
    error: type[BaseException]


@contextlib.asynccontextmanager
async def _asyncpg_connection(dsn: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def asyncpg_pool(dsn: str) -> AsyncIterator[Any]:
    async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
        yield pool


@contextlib.asynccontextmanager
async def _asyncpg_next(target: Any) -> AsyncIterator[Executor]:
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as connection:
            yield AsyncpgExecutor(connection)
    else:
        yield AsyncpgExecutor(target)


@contextlib.asynccontextmanager
async def _psycopg_connection(dsn: str) -> AsyncIterator[Any]:
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        yield connection


@contextlib.asynccontextmanager
async def _psycopg_pool(dsn: str) -> AsyncIterator[Any]:
    async with psycopg_pool.AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False) as pool:
        yield pool


@contextlib.asynccontextmanager
async def _psycopg_next(target: Any) -> AsyncIterator[Executor]:
    if isinstance(target, psycopg_pool.AsyncConnectionPool):
        async with target.connection() as connection:
            yield PsycopgExecutor(connection)
    else:
        yield PsycopgExecutor(target)
        await target.rollback()


def _sqlalchemy_engine(driver: str) -> Callable[[str], contextlib.AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def opened(dsn: str) -> AsyncIterator[Any]:
        engine = create_async_engine(sqlalchemy_url(dsn, driver), pool_size=1, max_overflow=0)
        try:
            yield engine
        finally:
            await engine.dispose()

    return opened


@contextlib.asynccontextmanager
async def _sqlalchemy_connection(dsn: str) -> AsyncIterator[Any]:
    async with _sqlalchemy_engine("asyncpg")(dsn) as engine, engine.connect() as connection:
        yield connection


@contextlib.asynccontextmanager
async def _sqlalchemy_next(target: Any) -> AsyncIterator[Executor]:
    if isinstance(target, sqlalchemy.ext.asyncio.AsyncEngine):
        async with target.connect() as connection:
            yield SQLAlchemyExecutor(connection)
    else:
        yield SQLAlchemyExecutor(target)
        await target.rollback()


ASYNC_KINDS = [
    AsyncKind("asyncpg", False, _asyncpg_connection, _asyncpg_next, asyncpg.PostgresError),
    AsyncKind("asyncpg-pool", True, asyncpg_pool, _asyncpg_next, asyncpg.PostgresError),
    AsyncKind("psycopg", False, _psycopg_connection, _psycopg_next, psycopg.Error),
    AsyncKind("psycopg-pool", True, _psycopg_pool, _psycopg_next, psycopg.Error),
    AsyncKind(
        "sqlalchemy-asyncpg",
        True,
        _sqlalchemy_engine("asyncpg"),
        _sqlalchemy_next,
        sqlalchemy.exc.DBAPIError,
    ),
    AsyncKind(
        "sqlalchemy-psycopg",
        True,
        _sqlalchemy_engine("psycopg"),
        _sqlalchemy_next,
        sqlalchemy.exc.DBAPIError,
    ),
    AsyncKind(
        "sqlalchemy-connection",
        False,
        _sqlalchemy_connection,
        _sqlalchemy_next,
        sqlalchemy.exc.DBAPIError,
    ),
]


@dataclass(frozen=True)
class SyncKind:
    name: str
    pooled: bool
    opened: Callable[[str], contextlib.AbstractContextManager[Any]]
    next_user: Callable[[Any], contextlib.AbstractContextManager[Executor]]
    error: type[BaseException]


@contextlib.contextmanager
def _psycopg_sync_connection(dsn: str) -> Iterator[Any]:
    with psycopg.connect(dsn) as connection:
        yield connection


@contextlib.contextmanager
def _psycopg_sync_pool(dsn: str) -> Iterator[Any]:
    with psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1, open=False) as pool:
        yield pool


@contextlib.contextmanager
def _psycopg_sync_next(target: Any) -> Iterator[Executor]:
    if isinstance(target, psycopg_pool.ConnectionPool):
        with target.connection() as connection:
            yield PsycopgSyncExecutor(connection)
    else:
        yield PsycopgSyncExecutor(target)
        target.rollback()


@contextlib.contextmanager
def sqlalchemy_sync_engine(dsn: str) -> Iterator[Any]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(dsn, "psycopg"), pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlalchemy_sync_connection(dsn: str) -> Iterator[Any]:
    with sqlalchemy_sync_engine(dsn) as engine, engine.connect() as connection:
        yield connection


@contextlib.contextmanager
def _sqlalchemy_sync_next(target: Any) -> Iterator[Executor]:
    if isinstance(target, sqlalchemy.Engine):
        with target.connect() as connection:
            yield SQLAlchemySyncExecutor(connection)
    else:
        yield SQLAlchemySyncExecutor(target)
        target.rollback()


SYNC_KINDS = [
    SyncKind("psycopg", False, _psycopg_sync_connection, _psycopg_sync_next, psycopg.Error),
    SyncKind("psycopg-pool", True, _psycopg_sync_pool, _psycopg_sync_next, psycopg.Error),
    SyncKind(
        "sqlalchemy-psycopg",
        True,
        sqlalchemy_sync_engine,
        _sqlalchemy_sync_next,
        sqlalchemy.exc.DBAPIError,
    ),
    SyncKind(
        "sqlalchemy-connection",
        False,
        _sqlalchemy_sync_connection,
        _sqlalchemy_sync_next,
        sqlalchemy.exc.DBAPIError,
    ),
]

#: Agent SQL that leaves state on its connection, and the probe that finds it.
LEFTOVERS = [
    "SET app.session_id = '00000000-0000-4000-8000-000000000001'",
    "SET search_path = pg_temp, public",
    "CREATE TEMP TABLE leftover (id int)",
    "PREPARE leftover_statement AS SELECT 1",
    "SELECT pg_advisory_lock(4242)",
    "DECLARE leftover_cursor CURSOR WITH HOLD FOR SELECT 1",
]
LEFTOVER_PROBE = (
    "SELECT coalesce(current_setting('app.session_id', true), ''), "
    "current_setting('search_path'), "
    "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()), "
    "(SELECT count(*) FROM pg_prepared_statements WHERE from_sql), "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "
    "(SELECT count(*) FROM pg_cursors WHERE is_holdable)"
)


async def probe(executor: Executor) -> list[tuple[Any, ...]]:
    return await executor.execute(LEFTOVER_PROBE)


def probe_sync(executor: Executor) -> list[tuple[Any, ...]]:
    return run_blocking(executor.execute(LEFTOVER_PROBE))


def readme_examples() -> list[str]:
    """The ``py`` blocks of the README's section on CowSession and Reviewer (before its
    subsections), in order."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("## Sessions from Python: CowSession and Reviewer", 1)[1]
    section = re.split(r"\n###? ", section, maxsplit=1)[0]
    return re.findall(r"^```py\n(.*?)^```", section, flags=re.DOTALL | re.M)
