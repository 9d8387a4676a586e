"""The test infrastructure itself: server, owner role, one fresh database per test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest

from tests.postgres_server import ServerInfo, TestDatabase, replace_dsn

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

_seen_databases: list[str] = []


def test_server_info(pg_server: ServerInfo) -> None:
    assert pg_server.dsn.startswith(("postgresql://", "postgres://"))
    assert pg_server.major >= 13
    assert pg_server.kind in ("embedded", "docker", "dsn") or pg_server.kind.startswith("system")


async def test_owner_is_not_superuser(conn: Connection, database: TestDatabase) -> None:
    row = await conn.fetchrow(
        "SELECT current_user AS me, rolsuper, rolcreaterole, rolcreatedb "
        "FROM pg_roles WHERE rolname = current_user"
    )
    assert row is not None
    assert row["me"] == database.owner == "agentcow_owner"
    assert row["rolsuper"] is False
    assert row["rolcreaterole"] is False
    assert row["rolcreatedb"] is False


async def test_fresh_database_is_empty_and_owned_by_owner(
    conn: Connection, database: TestDatabase
) -> None:
    assert await conn.fetchval("SELECT current_database()") == database.name
    owner = await conn.fetchval(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
    )
    assert owner == database.owner
    user_objects = await conn.fetchval(
        """
        SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
        """
    )
    assert user_objects == 0
    schemas = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
        "AND nspname <> 'information_schema' ORDER BY 1"
    )
    assert [r["nspname"] for r in schemas] == ["public"]
    # The owner can create objects in its own database (public schema is
    # owned by pg_database_owner on PG15+).
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    await conn.execute("CREATE SCHEMA s")


async def test_second_conn_sees_same_database(
    conn: Connection, second_conn: Connection, database: TestDatabase
) -> None:
    assert await second_conn.fetchval("SELECT current_database()") == database.name
    assert await conn.fetchval("SELECT pg_backend_pid()") != await second_conn.fetchval(
        "SELECT pg_backend_pid()"
    )
    await conn.execute("CREATE TABLE shared (v int)")
    await conn.execute("INSERT INTO shared VALUES (1)")
    assert await second_conn.fetchval("SELECT v FROM shared") == 1


async def test_superuser_dsn_is_superuser(database: TestDatabase) -> None:
    su: Connection = await asyncpg.connect(database.superuser_dsn)
    try:
        assert await su.fetchval("SELECT current_database()") == database.name
        assert await su.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await su.close()


@pytest.mark.parametrize("run", range(3))
async def test_each_test_gets_a_different_database(
    run: int, conn: Connection, database: TestDatabase
) -> None:
    assert database.name.startswith("agentcow_test_")
    assert database.name not in _seen_databases
    # The tables made by earlier tests are not here.
    assert await conn.fetchval("SELECT to_regclass('public.t') IS NULL")
    assert await conn.fetchval("SELECT to_regclass('public.shared') IS NULL")
    await conn.execute("CREATE TABLE t (id int)")
    _seen_databases.append(database.name)


async def test_previous_databases_were_dropped(
    pg_server: ServerInfo, database: TestDatabase
) -> None:
    if not _seen_databases:
        pytest.skip("needs test_each_test_gets_a_different_database to run first")
    su: Connection = await asyncpg.connect(pg_server.dsn)
    try:
        left = await su.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", _seen_databases
        )
    finally:
        await su.close()
    assert left == []


def test_replace_dsn() -> None:
    dsn = "postgresql://postgres:secret@127.0.0.1:5432/postgres?sslmode=disable"
    assert replace_dsn(dsn, database="db1") == (
        "postgresql://postgres:secret@127.0.0.1:5432/db1?sslmode=disable"
    )
    assert replace_dsn(dsn, user="bob") == (
        "postgresql://bob@127.0.0.1:5432/postgres?sslmode=disable"
    )
    assert replace_dsn(dsn, user="bob", password="p@ss", database="d") == (
        "postgresql://bob:p%40ss@127.0.0.1:5432/d?sslmode=disable"
    )
    assert replace_dsn("postgresql://u@h:1/x", database="y") == "postgresql://u@h:1/y"
    with pytest.raises(ValueError):
        replace_dsn("host=localhost dbname=x", database="y")
