"""Shared fixtures: one throwaway PostgreSQL per session, one fresh database per test.

Fixtures
--------
``pg_server``   (session)  -> ServerInfo         superuser DSN, major version, kind
``database``    (function) -> TestDatabase       fresh DB owned by non-superuser ``agentcow_owner``
``conn``        (function) -> asyncpg.Connection as the owner, to the fresh DB
``second_conn`` (function) -> asyncpg.Connection another owner connection, same DB

Which server: see ``tests/postgres_server.py`` (``AGENTCOW_TEST_DSN``, ``AGENTCOW_TEST_PG``).
Which layout the tests enable COW tables in: ``AGENTCOW_TEST_LAYOUT`` (``rename``, the
default, or ``overlay``; see ``tests/helpers.py``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TypeAlias
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from tests.differential_programs import DDL, TABLES
from tests.differential_support import COW, PLAIN
from tests.helpers import LAYOUT, LAYOUT_ENV
from tests.postgres_server import ServerInfo, TestDatabase, running_postgres

__all__ = ["OWNER_PASSWORD", "OWNER_ROLE", "ServerInfo", "TestDatabase"]

OWNER_ROLE = "agentcow_owner"
#: Used only when the server is not one of ours (AGENTCOW_TEST_DSN, docker): those need a
#: password; local servers use trust auth and password-less DSNs.
OWNER_PASSWORD = "agentcow"

# A string alias: asyncpg.Connection is generic only in asyncpg-stubs, not at runtime.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


class _LazyServer:
    """Starts the server on first use (the report header or the ``pg_server`` fixture),
    stops it at ``pytest_unconfigure``."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._info: ServerInfo | None = None
        self._error: BaseException | None = None

    def get(self) -> ServerInfo:
        if self._error is not None:
            raise RuntimeError(f"PostgreSQL failed to start: {self._error}") from self._error
        if self._info is None:
            try:
                self._info = self._stack.enter_context(running_postgres())
            except Exception as exc:
                self._error = exc
                raise
        return self._info

    def close(self) -> None:
        self._info = None
        self._stack.close()


_server_key = pytest.StashKey[_LazyServer]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_server_key] = _LazyServer()


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_server_key, None)
    if server is not None:
        server.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.option.collectonly:
        return None
    try:
        info = config.stash[_server_key].get()
    except Exception as exc:
        return f"postgresql: FAILED TO START: {exc}"
    return (
        f"postgresql: {info.major} ({info.kind}) {_redact(info.dsn)}\n"
        f"agentcow layout: {LAYOUT} ({LAYOUT_ENV})"
    )


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    return dsn.replace(f":{parts.password}@", ":***@", 1)


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(pytestconfig: pytest.Config) -> ServerInfo:
    """The session's PostgreSQL server (superuser DSN to the ``postgres`` database)."""
    return pytestconfig.stash[_server_key].get()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _admin_conn(pg_server: ServerInfo) -> AsyncIterator[Connection]:
    """Superuser connection to ``postgres``; makes sure the owner role exists."""
    conn: Connection = await asyncpg.connect(pg_server.dsn)
    try:
        # Tolerate a concurrent session (shared AGENTCOW_TEST_DSN server) racing us.
        await conn.execute(
            f"""
            DO $$ BEGIN
                CREATE ROLE {OWNER_ROLE} LOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """
        )
        password = "NULL" if pg_server.is_local else f"'{OWNER_PASSWORD}'"
        await conn.execute(
            f"ALTER ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD {password}"
        )
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def database(pg_server: ServerInfo, _admin_conn: Connection) -> AsyncIterator[TestDatabase]:
    """A fresh, empty database ``agentcow_test_<hex>`` owned by ``agentcow_owner``
    (not a superuser), dropped WITH (FORCE) afterwards."""
    name = f"agentcow_test_{uuid.uuid4().hex}"
    await _admin_conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE} TEMPLATE template0')
    password = None if pg_server.is_local else OWNER_PASSWORD
    try:
        yield TestDatabase(
            name=name,
            owner_dsn=pg_server.dsn_for(database=name, user=OWNER_ROLE, password=password),
            superuser_dsn=pg_server.dsn_for(database=name),
            owner=OWNER_ROLE,
        )
    finally:
        if pg_server.major >= 13:
            await _admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await _admin_conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            await _admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest_asyncio.fixture(loop_scope="session")
async def conn(database: TestDatabase) -> AsyncIterator[Connection]:
    """asyncpg connection as ``agentcow_owner`` to the test's fresh database."""
    connection: Connection = await asyncpg.connect(database.owner_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest_asyncio.fixture(loop_scope="session")
async def second_conn(database: TestDatabase) -> AsyncIterator[Connection]:
    """A second, independent owner connection to the same database as ``conn``."""
    connection: Connection = await asyncpg.connect(database.owner_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest_asyncio.fixture(loop_scope="session")
async def twins(conn: Connection) -> AsyncIterator[Connection]:
    """Schemas ``plain`` and ``cow`` with the same tables (tests/differential_programs.py);
    COW enabled on ``cow``, in the layout under test. For the differential tests."""
    ex = AsyncpgExecutor(conn)
    for schema in (PLAIN, COW):
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(DDL.format(s=schema))
    await ac.deploy_cow_functions(ex)
    assert sorted(await ac.enable_cow_schema(ex, schema=COW, layout=LAYOUT)) == sorted(TABLES)
    yield conn
