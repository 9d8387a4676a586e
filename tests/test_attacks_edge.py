"""Attacks on the agent's edge (issue 10) that got past the guard, now refused.

Attribute notation: PostgreSQL reads ``(expr).name`` as a field of ``expr`` or, when
``expr`` has no such field, as the call ``name(expr)``. The guard checked calls only where a
name is followed by ``(``, so ``('app.session_id'::text).current_setting`` or
``(0).lo_creat`` called a function outside the allow-list. The same holds for ``s.name``
where ``s`` is a function in FROM returning a scalar: its whole row is that scalar, so
``FROM unnest(array['…']) s`` then ``s.current_setting`` (or, without an alias,
``unnest.current_setting``) is a call too.
"""

from __future__ import annotations

import pytest

from agentcow.agent import GuardRefusal, SqlGuard
from tests.conftest import TestDatabase
from tests.helpers import connect_as, create_login_role

ROLE = "agentcow_edge_agent"

ATTRIBUTE_CALLS = [
    "SELECT ('app.session_id'::text).current_setting FROM orders",
    "SELECT id FROM orders o WHERE (o.id::text).current_setting IS NULL",
    "SELECT (0).lo_creat FROM orders",
    "SELECT (0.5).setseed FROM orders",
    "SELECT ('orders'::text).to_regclass FROM orders",
    "SELECT (array['x'])[1].current_setting FROM orders",
    "SELECT ('x'::text).\"current_setting\" FROM orders",
    "SELECT ('x'::text) . /* */ current_setting FROM orders",
    "SELECT s.current_setting FROM orders, unnest(array['app.session_id']) s",
    "SELECT s.current_setting FROM orders, lower('app.session_id') AS s(x)",
    "SELECT unnest.current_setting FROM orders, unnest(array['app.session_id'])",
    "SELECT lower.current_setting FROM orders, lower('app.session_id')",
    "SELECT s.current_setting FROM orders, ROWS FROM (unnest(array['a'])) s",
    "SELECT s.current_setting FROM orders JOIN LATERAL unnest(array['a']) s ON true",
    "UPDATE orders SET status = s.current_setting FROM unnest(array['x']) s WHERE id = 15",
    "DELETE FROM orders USING unnest(array[0]) s WHERE s.lo_creat IS NULL",
    "MERGE INTO orders o USING unnest(array[15]) s ON o.id = s.unnest "
    "WHEN MATCHED THEN UPDATE SET status = s.lo_creat::text",
]


@pytest.mark.parametrize("sql", ATTRIBUTE_CALLS)
def test_attribute_notation_calls_are_checked(sql: str) -> None:
    guard = SqlGuard(cow_tables=["orders"])
    with pytest.raises(GuardRefusal) as refused:
        guard.check(sql)
    assert refused.value.code == "function_not_allowed"


def test_attribute_notation_of_allowed_functions_still_passes() -> None:
    guard = SqlGuard(cow_tables=["orders"])
    guard.check("SELECT (o.id::text).upper, o.total FROM orders o")
    guard.check("SELECT s.x, s.ordinality FROM orders, unnest(array['a']) WITH ORDINALITY s(x)")
    guard.check("SELECT e.key, e.value FROM orders o, jsonb_each('{}'::jsonb) e")
    guard.check("SELECT s, s.s, unnest.unnest FROM orders, unnest(array[1]) s, unnest(array[2])")
    guard.check("SELECT t.total FROM orders, LATERAL (SELECT total FROM orders) t")


async def test_the_server_runs_attribute_notation_as_a_call(database: TestDatabase) -> None:
    """Why the check matters: as a plain login role, ``(text).current_setting`` reads a
    setting and ``(int).lo_creat`` creates a large object that outlives the transaction
    (and any session's discard)."""
    await create_login_role(database, ROLE)
    conn = await connect_as(database, ROLE)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.probe', 'seen', true)")
            assert await conn.fetchval("SELECT ('app.probe'::text).current_setting") == "seen"
            whole_row = "SELECT s.current_setting FROM unnest(array['app.probe']) s"
            assert await conn.fetchval(whole_row) == "seen"
            unnamed = "SELECT unnest.current_setting FROM unnest(array['app.probe'])"
            assert await conn.fetchval(unnamed) == "seen"
        created = await conn.fetchval("SELECT (0).lo_creat")
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", created
            )
            == 1
        )
        await conn.execute("SELECT lo_unlink($1)", created)
    finally:
        await conn.close()


NAMED_LIKE_A_FUNCTION = [
    "WITH current_schemas AS (SELECT 1) SELECT current_schemas(true) FROM current_schemas, orders",
    "WITH current_schemas(a) AS (SELECT 1) "
    "SELECT current_schemas(true) FROM current_schemas, orders",
    "SELECT current_schemas(true) FROM orders AS current_schemas",
    "SELECT current_user(), o.total FROM orders AS current_user(a, b, c, d) JOIN orders o ON true",
]


@pytest.mark.parametrize("sql", NAMED_LIKE_A_FUNCTION)
def test_a_relation_named_like_a_function_does_not_let_its_calls_through(sql: str) -> None:
    """The guard let ``name(`` through where ``name`` was a table, alias or CTE (a column
    list follows such a name); for a function sqlglot knows by name (so not checked in the
    tree), ``WITH current_schemas AS …`` let ``current_schemas(true)`` through. Each such
    name now lets through only as many ``(`` as it has column lists."""
    guard = SqlGuard(cow_tables=["orders"])
    with pytest.raises(GuardRefusal) as refused:
        guard.check(sql)
    assert refused.value.code == "function_not_allowed"


def test_column_lists_still_pass() -> None:
    guard = SqlGuard(cow_tables=["orders"])
    guard.check("INSERT INTO orders (id, total) VALUES (1, 1)")
    guard.check("INSERT INTO orders AS o (id, total) VALUES (1, 1)")
    guard.check("WITH x(a) AS (SELECT 1) SELECT s.y, x.a FROM x, unnest(array[1]) AS s(y)")
