"""deploy_cow_functions: where the kit goes, idempotence, who may use it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import agentcow as ac
from agentcow.deploy import KIT_VERSION
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_table,
    connect_as,
    create_login_role,
    deploy,
    ex,
    kit_schema,
    registered,
    relkind,
)

_KIT_OBJECTS = """
SELECT 'class', c.relname::text, c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
UNION ALL
SELECT 'proc', p.proname::text, pg_get_function_identity_arguments(p.oid) FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
ORDER BY 1, 2, 3
"""


async def _objects(conn: Any, schema: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(_KIT_OBJECTS, schema)]


async def test_deploy_creates_agentcow_schema_and_nothing_in_public(conn: Any) -> None:
    assert await _objects(conn, "public") == []
    await deploy(conn)
    owner = await conn.fetchval(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'agentcow'"
    )
    assert owner == "agentcow_owner"
    kit = await _objects(conn, "agentcow")
    assert ("class", "kit", "r") in kit
    assert ("class", "cow_tables", "r") in kit
    assert ("class", "change_seq", "S") in kit
    assert any(kind == "proc" for kind, _, _ in kit)
    assert await _objects(conn, "public") == []


async def test_deploy_records_kit_version(conn: Any) -> None:
    await deploy(conn)
    assert await conn.fetch("SELECT version FROM agentcow.kit") == [(KIT_VERSION,)]
    assert ac.deploy.KIT_VERSION == KIT_VERSION


async def test_deploy_twice_is_idempotent(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    before = await _objects(conn, "agentcow")
    await ac.deploy_cow_functions(executor)
    assert await _objects(conn, "agentcow") == before
    assert await conn.fetch("SELECT version FROM agentcow.kit") == [(KIT_VERSION,)]
    assert await registered(conn) == ["t"]
    # And the enabled table keeps working.
    await conn.execute("INSERT INTO t VALUES (1, 'a')")
    assert await conn.fetch(f"SELECT id, v FROM {base_table('t')}") == [(1, "a")]


async def test_deploy_works_as_non_superuser_owner(conn: Any) -> None:
    assert (
        await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    )
    assert await conn.fetchval("SELECT current_user") == "agentcow_owner"
    executor = ex(conn)
    status = await ac.get_cow_status(executor)
    assert status["cow_functions_deployed"] is False
    await ac.deploy_cow_functions(executor)
    status = await ac.get_cow_status(executor)
    assert status == {
        "enabled": False,
        "tables_with_cow": [],
        "changes_tables": [],
        "cow_functions_deployed": True,
    }
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    await ac.enable_cow(executor, "t", layout=LAYOUT)
    status = await ac.get_cow_status(executor)
    assert status["enabled"] is True
    assert status["tables_with_cow"] == ["t"]
    assert status["changes_tables"] == ["t_changes"]


async def test_enable_before_deploy_raises_not_deployed(conn: Any) -> None:
    await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    with pytest.raises(ac.NotDeployedError):
        await ac.enable_cow(ex(conn), "t", layout=LAYOUT)
    assert await relkind(conn, "t") == "r"
    assert await relkind(conn, "t_base") is None
    if OVERLAY:  # nor its overlay schema
        assert await conn.fetchval(f"SELECT to_regnamespace('{kit_schema()}') IS NULL")
    assert await conn.fetchval("SELECT to_regnamespace('agentcow') IS NULL")


async def test_intruder_cannot_enable_or_register_owner_table(
    conn: Any, database: TestDatabase
) -> None:
    executor = await deploy(conn)
    await conn.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');"
        "CREATE TABLE u (id int PRIMARY KEY); CREATE TABLE w (id int PRIMARY KEY)"
    )
    await ac.enable_cow(executor, "u", layout=LAYOUT)
    await create_login_role(database, "intruder")
    intruder = await connect_as(database, "intruder")
    try:
        assert await intruder.fetchval("SELECT current_user") == "intruder"
        # enable_cow on a table it does not own.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ac.enable_cow(ex(intruder), "t", layout=LAYOUT)
        # Registering by hand, pointing at another role's tables.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intruder.execute(
                "SELECT agentcow.register_table('public', 'w', 'w', 'u_changes', "
                "ARRAY['id']::name[], '{}'::name[], NULL, NULL, false)"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intruder.execute(
                "SELECT agentcow.register_table('public', 'fake', 'u_base', 'u_changes', "
                "ARRAY['id']::name[], '{}'::name[], NULL, NULL, false)"
            )
        # Nor unregister or disable the owner's COW table.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intruder.execute("SELECT agentcow.unregister_table('public', 'u')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ac.disable_cow(ex(intruder), "u", discard_changes=True)
        # The catalog cannot be written directly either.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intruder.execute(
                "INSERT INTO agentcow.cow_tables (schema_name, table_name, base_name, "
                "changes_name, pk_cols) VALUES ('public', 'w', 'w', 'w', '{id}')"
            )
    finally:
        await intruder.close()
    # Nothing changed.
    assert await registered(conn) == ["u"]
    assert await relkind(conn, "t") == "r"
    assert await relkind(conn, "t_base") is None
    assert await relkind(conn, "t_changes", kit_schema()) is None
    assert await relkind(conn, "u", kit_schema()) == "v"
    assert await relkind(conn, "w") == "r"
    assert await conn.fetch("SELECT id, v FROM t") == [(1, "a")]
