"""Small helpers shared by the engine tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import pytest

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.naming import LAYOUTS, OVERLAY_SUFFIX, Layout
from tests.postgres_server import TestDatabase, replace_dsn

#: Password given to the extra login roles the tests create (ignored by trust auth).
ROLE_PASSWORD = "agentcow"

Outcome = tuple[str, Any]  # ("ok", rows) or ("error", sqlstate)

_NEW = object()


def ex(conn: Any) -> AsyncpgExecutor:
    return AsyncpgExecutor(conn)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# ---------------------------------------------------------------------------------------
# The layout under test, and the names of what enable makes
# ---------------------------------------------------------------------------------------


#: Which layout the tests enable their COW tables in: ``rename`` (the default) or ``overlay``.
LAYOUT_ENV = "AGENTCOW_TEST_LAYOUT"


def _layout_from_env() -> Layout:
    value = os.environ.get(LAYOUT_ENV) or "rename"
    if value not in LAYOUTS:
        raise ValueError(f"{LAYOUT_ENV} must be one of {', '.join(LAYOUTS)}, got {value!r}")
    return cast(Layout, value)


#: The layout under test, read once (``make_cow`` and the tests' enable calls pass it on).
LAYOUT: Layout = _layout_from_env()
OVERLAY = LAYOUT == "overlay"


def rename_only(reason: str) -> pytest.MarkDecorator:
    """Skips a test (or module) about the rename layout alone when the overlay is tested."""
    return pytest.mark.skipif(OVERLAY, reason=f"rename layout only: {reason}")


def overlay_only(reason: str) -> pytest.MarkDecorator:
    """Skips a test of the overlay layout's own behaviour when the rename layout is tested."""
    return pytest.mark.skipif(not OVERLAY, reason=f"overlay layout only: {reason}")


def kit_schema(schema: str = "public") -> str:
    """Where the views, change tables and functions of ``schema``'s COW tables live: the
    schema itself (rename), or its overlay schema (overlay)."""
    return schema + OVERLAY_SUFFIX if OVERLAY else schema


def base_name(table: str, schema: str = "public") -> tuple[str, str]:
    """The table that holds production's rows: ``t_base`` (rename), ``t`` itself (overlay)."""
    return (schema, table if OVERLAY else table + "_base")


def changes_name(table: str, schema: str = "public") -> tuple[str, str]:
    return (kit_schema(schema), table + "_changes")


def view_name(table: str, schema: str = "public") -> tuple[str, str]:
    """The merged view sessions read and write."""
    return (kit_schema(schema), table)


def ident(name: str) -> str:
    """An identifier for SQL text: as it is when it needs no quotes."""
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def base_table(table: str, schema: str = "public") -> str:
    """The base table, schema-qualified for SQL text (production's rows, until commits)."""
    return qualified(*base_name(table, schema))


def changes_table(table: str, schema: str = "public") -> str:
    """The change table, schema-qualified for SQL text."""
    return qualified(*changes_name(table, schema))


def cow_view(table: str, schema: str = "public") -> str:
    """The merged view, schema-qualified for SQL text: what an agent's statement that names
    the table's schema must name to stay in its session."""
    return qualified(*view_name(table, schema))


async def grant_agent(
    conn: Any,
    role: str,
    tables: Sequence[str],
    privileges: str = "SELECT, INSERT, UPDATE, DELETE",
    schema: str = "public",
) -> None:
    """Let agent ``role`` use COW ``tables`` as a deployment does: ``privileges`` (column
    lists allowed) on their views; in the overlay layout, nothing on the tables themselves
    (see :func:`keep_agent_off_tables`)."""
    views = ", ".join(cow_view(table, schema) for table in tables)
    await conn.execute(f"GRANT {privileges} ON {views} TO {ident(role)}")
    await keep_agent_off_tables(conn, role, tables, schema)


async def keep_agent_off_tables(
    conn: Any, role: str, tables: Sequence[str], schema: str = "public"
) -> None:
    """Overlay layout: agent ``role`` keeps its privileges on the views of COW ``tables``
    (which enable gave the tables' grants) and none on the tables, which production writes
    directly; it gets USAGE on the overlay schema if it lacks it. Rename layout: nothing to
    do, the views took the tables' names and grants."""
    if not OVERLAY:
        return
    overlay = kit_schema(schema)
    if not await conn.fetchval("SELECT has_schema_privilege($1, $2, 'USAGE')", role, overlay):
        await conn.execute(f"GRANT USAGE ON SCHEMA {ident(overlay)} TO {ident(role)}")
    bases = ", ".join(base_table(table, schema) for table in tables)
    await conn.execute(f"REVOKE ALL ON {bases} FROM {ident(role)}")


# ---------------------------------------------------------------------------------------
# Deploying, enabling, sessions
# ---------------------------------------------------------------------------------------


async def deploy(conn: Any) -> AsyncpgExecutor:
    executor = ex(conn)
    await ac.deploy_cow_functions(executor)
    return executor


async def make_cow(conn: Any, ddl: str, *tables: str, **enable_kwargs: Any) -> AsyncpgExecutor:
    """Deploy the kit, run ``ddl`` (plain SQL, may hold several statements), enable ``tables``
    (in the layout under test unless ``layout=`` says otherwise)."""
    executor = await deploy(conn)
    if ddl:
        await conn.execute(ddl)
    enable_kwargs.setdefault("layout", LAYOUT)
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
    return int(await conn.fetchval(f"SELECT count(*) FROM {changes_table(table)}{where}"))


async def relkind(conn: Any, name: str, schema: str = "public") -> str | None:
    value = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        name,
    )
    return None if value is None else str(value)


async def relkind_at(conn: Any, relation: tuple[str, str]) -> str | None:
    """:func:`relkind` of a (schema, name), as ``base_name`` and the like give them."""
    schema, name = relation
    return await relkind(conn, name, schema)


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


async def on_shared_catalog(conn: Any, sql: str) -> None:
    """Runs ``sql``, which writes a catalog every database of the server shares (roles,
    memberships): another test run on the same server may write the same row at once
    ("tuple concurrently updated"), which a new try gets past."""
    for attempt in range(10):
        try:
            await conn.execute(sql)
            return
        except asyncpg.InternalServerError as error:
            if "concurrently" not in str(error) or attempt == 9:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def create_login_role(database: TestDatabase, role: str) -> None:
    """Create (or reuse) a plain LOGIN role and let it connect to the test database."""
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await on_shared_catalog(
            su,
            f"""
            DO $$ BEGIN
                CREATE ROLE "{role}" LOGIN PASSWORD '{ROLE_PASSWORD}';
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$
            """,
        )
        await on_shared_catalog(
            su,
            f'ALTER ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS '
            f"PASSWORD '{ROLE_PASSWORD}'",
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
        await ac.enable_cow(executor, table, layout=LAYOUT)
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
