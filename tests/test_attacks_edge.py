"""Attacks on the agent's edge (issue 10) that got past the guard, now refused.

Attribute notation: PostgreSQL reads ``(expr).name`` as a field of ``expr`` or, when
``expr`` has no such field, as the call ``name(expr)``. The guard checked calls only where a
name is followed by ``(``, so ``('app.session_id'::text).current_setting`` or
``(0).lo_creat`` called a function outside the allow-list.
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
