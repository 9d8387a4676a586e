"""The benchmark database: a non-superuser owner, a plain table and its COW twin.

Key layout (``rows`` = table size, ``BATCH`` = rows per write):

* ``1 .. rows``: the loaded rows, identical in both tables;
* ``1 .. BATCH``: updated by the read session (its "changed" keys);
* ``rows+1 .. rows+BATCH``: inserted by the read session;
* ``BATCH+1 .. rows`` in blocks of ``BATCH``: fresh ranges for the UPDATE cases;
* ``2*rows+1 ..`` in blocks of ``BATCH``: fresh ids for the INSERT cases.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from tests.postgres_server import ServerInfo, running_postgres

# A string alias: asyncpg.Connection is generic only in asyncpg-stubs, not at runtime.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

OWNER_ROLE = "agentcow_bench_owner"
#: Only for servers that are not ours (AGENTCOW_TEST_DSN, docker): local ones use trust auth.
OWNER_PASSWORD = "agentcow-bench"

PLAIN = "plain_items"
COW = "items"
BATCH = 1_000

CREATE_TABLE = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY,
    account int NOT NULL,
    name text NOT NULL,
    amount numeric(12,2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX {table}_account_idx ON {table} (account)
"""


def insert_sql(table: str) -> str:
    """Rows ``$1 .. $2`` (bigint ids), one multi-row ``INSERT ... SELECT``."""
    return (
        f"INSERT INTO {table} (id, account, name, amount) "
        "SELECT g, g % 5000, 'item ' || g, (g % 100000) / 100.0 "
        "FROM generate_series($1::bigint, $2::bigint) AS g"
    )


def delete_sql(table: str) -> str:
    """Rows with ids ``$1 .. $2``, one ``DELETE`` statement."""
    return f"DELETE FROM {table} WHERE id BETWEEN $1::bigint AND $2::bigint"


def update_sql(table: str) -> str:
    """Rows with ids ``$1 .. $2``, one ``UPDATE`` statement."""
    return (
        f"UPDATE {table} SET amount = amount + 1, updated_at = now() "
        "WHERE id BETWEEN $1::bigint AND $2::bigint"
    )


@dataclass(frozen=True)
class Block:
    """Fresh key ranges for one round of a write case (``BATCH`` ids each, inclusive)."""

    update_first: int
    insert_first: int

    @property
    def update_range(self) -> tuple[int, int]:
        return self.update_first, self.update_first + BATCH - 1

    @property
    def insert_range(self) -> tuple[int, int]:
        return self.insert_first, self.insert_first + BATCH - 1


class BlockAllocator:
    """Hands out key blocks no earlier round has used (update ranges wrap around when a
    long run exhausts the table; insert ranges never repeat)."""

    def __init__(self, rows: int) -> None:
        self._update_blocks = rows // BATCH - 1  # block 0 belongs to the read session
        self._insert_base = 2 * rows + 1
        self._next = 0

    def next(self) -> Block:
        n = self._next
        self._next += 1
        update_first = 1 + (1 + n % self._update_blocks) * BATCH
        return Block(update_first, self._insert_base + n * BATCH)


@dataclass(frozen=True)
class ReadSession:
    """A COW session holding updated and inserted rows of ``items``."""

    session_id: uuid.UUID
    operation_id: uuid.UUID
    updated: tuple[int, int]
    inserted: tuple[int, int]


def print_on_server(dsn: str | None, produce: Callable[[str], str]) -> None:
    """Print the report ``produce`` makes on a server, given its superuser DSN: ``dsn``, else
    a throwaway server's (the single-figure benchmarks' command lines)."""
    if dsn:
        print(produce(dsn))
    else:
        with running_postgres() as server:
            print(produce(server.dsn))


@contextlib.asynccontextmanager
async def scratch_database(dsn: str, prefix: str) -> AsyncIterator[Connection]:
    """A connection, as the superuser of ``dsn``, to a database of its own that is dropped
    afterwards (the single-figure benchmarks, which may run against an existing server)."""
    admin: Connection = await asyncpg.connect(dsn)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn: Connection = await asyncpg.connect(dsn.rsplit("/", 1)[0] + f"/{name}")
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def bench_database(server: ServerInfo) -> AsyncIterator[str]:
    """A fresh database owned by the non-superuser :data:`OWNER_ROLE`; yields the owner's
    DSN. The database (and the role, when this run created it) is dropped afterwards."""
    admin: Connection = await asyncpg.connect(server.dsn)
    name = f"agentcow_bench_{uuid.uuid4().hex[:12]}"
    created_role = False
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OWNER_ROLE):
            await admin.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN")
            created_role = True
        password = "NULL" if server.is_local else f"'{OWNER_PASSWORD}'"
        await admin.execute(
            f"ALTER ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD {password}"
        )
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE} TEMPLATE template0')
        try:
            yield server.dsn_for(
                database=name,
                user=OWNER_ROLE,
                password=None if server.is_local else OWNER_PASSWORD,
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if created_role:
                await admin.execute(f"DROP ROLE IF EXISTS {OWNER_ROLE}")
    finally:
        await admin.close()


#: The tables the benchmark times: the plain one and both tables behind the COW view.
TABLES = (PLAIN, f"{COW}_base", f"{COW}_changes")


async def load_tables(conn: Connection, rows: int) -> None:
    """Create and fill both tables, turn COW on for ``items``, deploy the kit.

    Autovacuum is turned off for the timed tables: statistics then change only where the
    benchmark runs ``VACUUM ANALYZE`` (:func:`vacuum_analyze`), so every run plans alike.
    """
    ex = AsyncpgExecutor(conn)
    for table in (PLAIN, COW):
        await conn.execute(CREATE_TABLE.format(table=table))
        await conn.execute(insert_sql(table), 1, rows)
    await ac.deploy_cow_functions(ex)
    await ac.enable_cow(ex, COW)
    for table in TABLES:
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


async def create_read_session(conn: Connection, rows: int) -> ReadSession:
    """The session the read cases run in: ``BATCH`` rows updated, ``BATCH`` inserted."""
    return await create_session(conn, updated=(1, BATCH), inserted=(rows + 1, rows + BATCH))


async def create_session(
    conn: Connection, *, updated: tuple[int, int], inserted: tuple[int, int]
) -> ReadSession:
    """A new session that updated the ``updated`` ids and inserted the ``inserted`` ones."""
    session = ReadSession(
        session_id=uuid.uuid4(), operation_id=uuid.uuid4(), updated=updated, inserted=inserted
    )
    async with conn.transaction():
        await ac.apply_cow_variables(
            AsyncpgExecutor(conn), session.session_id, session.operation_id
        )
        await conn.execute(update_sql(COW), *session.updated)
        await conn.execute(insert_sql(COW), *session.inserted)
    return session


async def vacuum_analyze(conn: Connection) -> None:
    """``VACUUM ANALYZE`` the plain table and both tables behind the COW view."""
    for table in TABLES:
        await conn.execute(f"VACUUM ANALYZE {table}")
