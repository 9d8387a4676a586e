"""Small helpers shared by the engine tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from tests.postgres_server import TestDatabase, replace_dsn

#: Password given to the extra login roles the tests create (ignored by trust auth).
ROLE_PASSWORD = "agentcow"

Outcome = tuple[str, Any]  # ("ok", rows) or ("error", sqlstate)

_NEW = object()


def ex(conn: Any) -> AsyncpgExecutor:
    return AsyncpgExecutor(conn)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


async def deploy(conn: Any) -> AsyncpgExecutor:
    executor = ex(conn)
    await ac.deploy_cow_functions(executor)
    return executor


async def make_cow(conn: Any, ddl: str, *tables: str, **enable_kwargs: Any) -> AsyncpgExecutor:
    """Deploy the kit, run ``ddl`` (plain SQL, may hold several statements), enable ``tables``."""
    executor = await deploy(conn)
    if ddl:
        await conn.execute(ddl)
    for table in tables:
        await ac.enable_cow(executor, table, **enable_kwargs)
    return executor


@contextlib.asynccontextmanager
async def session(
    conn: Any, session_id: uuid.UUID | str, operation_id: Any = _NEW
) -> AsyncIterator[uuid.UUID | None]:
    """A transaction that reads and writes as ``session_id``; yields the operation id.

    A fresh operation id is drawn unless one is given; ``operation_id=None`` sets none.
    """
    op = new_id() if operation_id is _NEW else operation_id
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), session_id, op)
        yield op


def _sort_key(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        (v is None, v if isinstance(v, int | str) and not isinstance(v, bool) else repr(v))
        for v in row
    )


def rows_of(records: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in records]


async def fetch(conn: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return rows_of(await conn.fetch(sql, *args))


async def fetch_sorted(conn: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return sorted(await fetch(conn, sql, *args), key=_sort_key)


def sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


async def outcome(conn: Any, sql: str, *args: Any) -> Outcome:
    """Run one statement: ``("ok", rows)`` or ``("error", sqlstate)``.

    Inside a transaction the statement runs in a savepoint, so a failure leaves the
    transaction usable (as a plain table would).
    """
    try:
        if conn.is_in_transaction():
            async with conn.transaction():
                return ("ok", sorted(await fetch(conn, sql, *args), key=_sort_key))
        return ("ok", sorted(await fetch(conn, sql, *args), key=_sort_key))
    except asyncpg.PostgresError as exc:
        return ("error", exc.sqlstate)


async def changes_count(conn: Any, table: str = "t", session_id: Any = None) -> int:
    where = "" if session_id is None else f" WHERE session_id = '{session_id}'"
    return int(await conn.fetchval(f'SELECT count(*) FROM "{table}_changes"{where}'))


async def relkind(conn: Any, name: str, schema: str = "public") -> str | None:
    value = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        name,
    )
    return None if value is None else str(value)


async def registered(conn: Any) -> list[str]:
    return [
        r[0]
        for r in await conn.fetch(
            "SELECT table_name::text FROM agentcow.cow_tables ORDER BY schema_name, table_name"
        )
    ]


# ---------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------


async def create_login_role(database: TestDatabase, role: str) -> None:
    """Create (or reuse) a plain LOGIN role and let it connect to the test database."""
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await su.execute(
            f"""
            DO $$ BEGIN
                CREATE ROLE "{role}" LOGIN PASSWORD '{ROLE_PASSWORD}';
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """
        )
        await su.execute(
            f'ALTER ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS '
            f"PASSWORD '{ROLE_PASSWORD}'"
        )
        await su.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database.name}" TO "{role}"')
    finally:
        await su.close()


async def connect_as(database: TestDatabase, role: str) -> Any:
    password = ROLE_PASSWORD if urlsplit(database.owner_dsn).password is not None else None
    return await asyncpg.connect(replace_dsn(database.owner_dsn, user=role, password=password))


# ---------------------------------------------------------------------------------------
# Plain table vs COW table
# ---------------------------------------------------------------------------------------


async def compare_with_plain(
    conn: Any,
    ddl: str,
    tables: Sequence[str],
    steps: Sequence[str],
    seed: Sequence[str] = (),
    session_id: uuid.UUID | None = None,
) -> list[Outcome]:
    """Run ``steps`` on plain tables and, in a session, on identical COW tables.

    ``ddl``, ``seed`` and ``steps`` use ``{p}`` as table-name prefix: ``plain_`` for the
    plain copy, empty for the COW tables (``tables`` names them without prefix). ``seed``
    runs outside any session. Each step runs in a savepoint of one transaction; the
    outcomes (rows returned, or SQLSTATE) must be the same on both sides. Returns them.
    """
    executor = await deploy(conn)
    await conn.execute(ddl.format(p="plain_"))
    await conn.execute(ddl.format(p=""))
    for table in tables:
        await ac.enable_cow(executor, table)
    for statement in seed:
        await conn.execute(statement.format(p="plain_"))
        await conn.execute(statement.format(p=""))
    plain: list[Outcome] = []
    async with conn.transaction():
        for statement in steps:
            plain.append(await outcome(conn, statement.format(p="plain_")))
    cow: list[Outcome] = []
    async with session(conn, session_id or new_id()):
        for statement in steps:
            cow.append(await outcome(conn, statement.format(p="")))
    for i, (statement, p, c) in enumerate(zip(steps, plain, cow, strict=True)):
        assert c == p, f"step {i} {statement!r}: plain {p} but COW {c}"
    return cow


async def table_state(conn: Any, table: str, schema: str = "public") -> dict[str, Any]:
    """What disable must give back: columns, constraints, incoming FKs, indexes, privileges."""
    oid = await conn.fetchval(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        table,
    )
    assert oid is not None, f"{schema}.{table} does not exist"
    return {
        "relkind": await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = $1", oid),
        "columns": await fetch(
            conn,
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, "
            "(SELECT array_agg(x::text ORDER BY x::text) FROM unnest(a.attacl) x) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            oid,
        ),
        "constraints": await fetch(
            conn,
            "SELECT conname::text, pg_get_constraintdef(oid), condeferrable, condeferred "
            "FROM pg_constraint WHERE conrelid = $1 ORDER BY conname",
            oid,
        ),
        "incoming_fks": await fetch(
            conn,
            "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE confrelid = $1 AND contype = 'f' ORDER BY 1, 2",
            oid,
        ),
        "indexes": await fetch(
            conn,
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) "
            "FROM pg_index WHERE indrelid = $1 ORDER BY 1",
            oid,
        ),
        "relacl": await conn.fetchval(
            "SELECT array_agg(x::text ORDER BY x::text) "
            "FROM pg_class c, unnest(c.relacl) x WHERE c.oid = $1",
            oid,
        ),
        "owner": await conn.fetchval(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = $1", oid
        ),
        "triggers": await fetch(
            conn,
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal "
            "ORDER BY 1",
            oid,
        ),
    }
