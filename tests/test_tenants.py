"""Tenant isolation, enforced in SQL: a session bound to a tenant sees only its tenant's rows
of the tables that have a tenant column, and every write that would leave its tenant fails
at the statement (SQLSTATE 42501, as row-level security's WITH CHECK), not at commit.

The agent runs as a role of its own (no privileges on the base or change tables). The
schema: ``products`` (shared, writable by every tenant), ``countries`` (shared, read-only
for tenant-bound sessions), and ``customers``, ``orders``, ``lines``, ``reviews``, ``stock``
(each with ``tenant_id``). Tenant 1 and tenant 2 have rows of their own; tenant 2's lines,
reviews and stock reference products that tenant 1 may try to delete or re-key.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import agentcow as ac
from agentcow.catalog import registered_tables
from agentcow.review import diff
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    base_table,
    changes_table,
    connect_as,
    create_login_role,
    deploy,
    ex,
    fetch,
    grant_agent,
    new_id,
    overlay_only,
)

AGENT = "tenant_agent"
ISOLATED = ("customers", "orders", "lines", "reviews", "stock")
TABLES = ("products", "countries", *ISOLATED)

DDL = """
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (
    id int PRIMARY KEY, tenant_id int NOT NULL, email text UNIQUE,
    country text REFERENCES countries);
CREATE INDEX ON customers (tenant_id);
CREATE TABLE orders (
    id int PRIMARY KEY, tenant_id int NOT NULL,
    customer_id int REFERENCES customers ON DELETE CASCADE, note text);
CREATE TABLE lines (
    id int PRIMARY KEY, tenant_id int NOT NULL,
    order_id int NOT NULL REFERENCES orders ON DELETE CASCADE,
    product_id int REFERENCES products ON DELETE RESTRICT ON UPDATE CASCADE);
CREATE TABLE reviews (
    id int PRIMARY KEY, tenant_id int NOT NULL,
    product_id int REFERENCES products ON DELETE SET NULL);
CREATE TABLE stock (
    id int PRIMARY KEY, tenant_id int NOT NULL,
    product_id int NOT NULL REFERENCES products ON DELETE CASCADE);
"""

SEED = """
INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('es', 'Spain');
INSERT INTO products VALUES (1, 'pen'), (2, 'ink'), (3, 'pad'), (4, 'cap');
INSERT INTO customers VALUES (1, 1, 'a@x', 'fr'), (2, 1, 'b@x', 'de'),
                             (11, 2, 'c@x', 'fr'), (12, 2, 'd@x', NULL);
INSERT INTO orders VALUES (101, 1, 1, 'first'), (102, 1, 2, NULL), (111, 2, 11, 'other');
INSERT INTO lines VALUES (1001, 1, 101, 1), (1011, 2, 111, 2);
INSERT INTO reviews VALUES (1, 1, 3), (11, 2, 1);
INSERT INTO stock VALUES (1, 1, 1), (11, 2, 4);
"""


async def _enable(conn: Any) -> ac.TransactionAware | Any:
    executor = await deploy(conn)
    await conn.execute(DDL)
    await conn.execute(SEED)
    enabled = await ac.enable_cow_schema(
        executor,
        tenant_columns="tenant_id",
        read_only_for_tenants=["countries"],
        layout=LAYOUT,
    )
    assert sorted(enabled) == sorted(TABLES)
    return executor


@pytest_asyncio.fixture(loop_scope="session")
async def agent(conn: Any, database: TestDatabase) -> AsyncIterator[Any]:
    """The schema, enabled with tenant isolation; a connection of the agent's role."""
    await _enable(conn)
    await create_login_role(database, AGENT)
    await grant_agent(conn, AGENT, TABLES)
    connection = await connect_as(database, AGENT)
    try:
        yield connection
    finally:
        await connection.close()


async def enter(connection: Any, session_id: uuid.UUID, tenant: object = 1) -> None:
    await ac.apply_cow_variables(ex(connection), session_id, new_id(), tenant_id=tenant)


async def rows(connection: Any, sql: str) -> list[tuple[Any, ...]]:
    return await fetch(connection, sql)


async def failure(connection: Any, sql: str) -> asyncpg.PostgresError:
    """The error ``sql`` raises, in a savepoint (the transaction goes on)."""
    with pytest.raises(asyncpg.PostgresError) as raised:
        async with connection.transaction():
            await connection.execute(sql)
    return raised.value


# ---------------------------------------------------------------------------------------
# Enabling
# ---------------------------------------------------------------------------------------


async def test_enable_records_the_tenancy(conn: Any) -> None:
    executor = await _enable(conn)
    recorded = {
        t.name: (t.tenant_column, t.tenant_read_only)
        for t in await registered_tables(executor, "public")
    }
    assert recorded == {
        "countries": (None, True),
        "products": (None, False),
        **{name: ("tenant_id", False) for name in ISOLATED},
    }
    # enabling again as it is: a no-op; with another tenancy: refused
    await ac.enable_cow(executor, "orders", tenant_column="tenant_id", layout=LAYOUT)
    with pytest.raises(ac.UnsupportedTableError, match="tenant isolation"):
        await ac.enable_cow(executor, "orders", layout=LAYOUT)


@pytest.mark.parametrize(
    ("ddl", "column", "reason"),
    [
        ("CREATE TABLE t (id int PRIMARY KEY, tenant_id int NOT NULL)", "tenant", "no column"),
        ("CREATE TABLE t (id int PRIMARY KEY, tenant_id int)", "tenant_id", "allows NULL"),
        (
            "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, "
            "tenant_id int NOT NULL GENERATED ALWAYS AS (a * 2) STORED)",
            "tenant_id",
            "is generated",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, tenant_id json NOT NULL)",
            "tenant_id",
            "no equality",
        ),
        (
            "CREATE TABLE t (id int PRIMARY KEY, tenant_id int NOT NULL)",
            'tenant_id"; DROP TABLE t; --',
            "no column",
        ),
    ],
)
async def test_enable_refuses_bad_tenant_columns(
    conn: Any, ddl: str, column: str, reason: str
) -> None:
    executor = await deploy(conn)
    await conn.execute(ddl)
    with pytest.raises(ac.UnsupportedTableError, match=reason) as raised:
        await ac.enable_cow(executor, "t", tenant_column=column, layout=LAYOUT)
    assert list(raised.value.reasons) == ["public.t"]
    assert await conn.fetchval("SELECT count(*) FROM agentcow.cow_tables") == 0
    with pytest.raises(ac.InvalidIdentifierError):
        await ac.enable_cow(executor, "t", tenant_column="x" * 64, layout=LAYOUT)


async def test_enable_schema_takes_a_mapping_and_refuses_unknown_tables(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute(DDL)
    for kwargs in (
        {"tenant_columns": {"nope": "tenant_id"}},
        {"read_only_for_tenants": ["countries", "nope"]},
        {"tenant_columns": {"orders": "tenant_id"}, "exclude": {"orders"}},
    ):
        with pytest.raises(ac.UnsupportedTableError, match=r"nope|orders"):
            await ac.enable_cow_schema(executor, layout=LAYOUT, **kwargs)
    with pytest.raises(ac.UnsupportedTableError, match="products"):  # no such column
        await ac.enable_cow_schema(executor, tenant_columns={"products": "tenant_id"})
    assert await conn.fetchval("SELECT count(*) FROM agentcow.cow_tables") == 0
    await ac.enable_cow_schema(executor, tenant_columns={"orders": "tenant_id"}, layout=LAYOUT)
    recorded = {t.name: t.tenancy.column for t in await registered_tables(executor, "public")}
    assert recorded == {name: "tenant_id" if name == "orders" else None for name in TABLES}


@overlay_only("in the rename layout the view keeps the column from being dropped")
async def test_refresh_refuses_an_overlay_whose_tenant_column_is_gone(conn: Any) -> None:
    executor = await _enable(conn)
    await conn.execute("ALTER TABLE customers DROP COLUMN tenant_id CASCADE")
    with pytest.raises(ac.UnsupportedTableError, match="tenant column 'tenant_id' is gone"):
        await ac.refresh_cow(executor)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


async def test_a_tenant_sees_only_its_rows(agent: Any) -> None:
    async with agent.transaction():
        await enter(agent, new_id(), tenant=1)
        assert await rows(agent, "SELECT id FROM customers ORDER BY id") == [(1,), (2,)]
        assert await rows(agent, "SELECT * FROM customers WHERE id = 11") == []
        assert await rows(
            agent,
            "SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY 2",
        ) == [(1, 101), (2, 102)]
        assert await rows(
            agent, "SELECT count(*) FROM lines WHERE order_id IN (SELECT id FROM orders)"
        ) == [(1,)]
        # shared tables: every row
        assert await rows(agent, "SELECT count(*) FROM products") == [(4,)]
        assert await rows(agent, "SELECT count(*) FROM countries") == [(3,)]
    async with agent.transaction():
        await enter(agent, new_id(), tenant=2)
        assert await rows(agent, "SELECT id FROM customers ORDER BY id") == [(11,), (12,)]
    async with agent.transaction():  # bound to no tenant: every row, as before
        await enter(agent, new_id(), tenant=None)
        assert await rows(agent, "SELECT count(*) FROM customers") == [(4,)]
    # the binding the views read: the current session's alone
    async with agent.transaction():
        await enter(agent, new_id(), tenant=2)
        assert await rows(agent, "SELECT * FROM agentcow.session_binding") == [("2",)]
    assert await rows(agent, "SELECT * FROM agentcow.session_binding") == []


async def test_other_tenants_rows_do_not_exist_for_updates_and_deletes(
    agent: Any, conn: Any
) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        assert await agent.execute("UPDATE customers SET email = 'z@x' WHERE id = 11") == (
            "UPDATE 0"
        )
        assert await agent.execute("DELETE FROM orders WHERE tenant_id = 2") == "DELETE 0"
        assert await agent.execute("UPDATE orders SET note = 'all'") == "UPDATE 2"
    assert (
        await conn.fetchval(
            f"SELECT count(*) FROM {changes_table('customers')} WHERE session_id = $1", session
        )
        == 0
    )
    async with agent.transaction():
        await enter(agent, session)
        assert await rows(agent, "SELECT id, note FROM orders ORDER BY id") == [
            (101, "all"),
            (102, "all"),
        ]


async def test_an_append_only_table_is_isolated(conn: Any, database: TestDatabase) -> None:
    """A table without a key (a log): its base arm is split by tenant as a keyed one's."""
    executor = await deploy(conn)
    await conn.execute(
        "CREATE TABLE events (tenant_id int NOT NULL, what text);"
        "INSERT INTO events VALUES (1, 'mine'), (2, 'theirs')"
    )
    await ac.enable_cow(executor, "events", tenant_column="tenant_id", layout=LAYOUT)
    await create_login_role(database, AGENT)
    await grant_agent(conn, AGENT, ["events"])
    agent = await connect_as(database, AGENT)
    try:
        async with agent.transaction():
            await enter(agent, new_id())
            await agent.execute("INSERT INTO events VALUES (1, 'new')")
            assert sorted(await rows(agent, "SELECT what FROM events")) == [("mine",), ("new",)]
            error = await failure(agent, "INSERT INTO events VALUES (2, 'into theirs')")
            assert isinstance(error, asyncpg.InsufficientPrivilegeError)
        async with agent.transaction():
            await enter(agent, new_id(), tenant=None)
            assert await rows(agent, "SELECT count(*) FROM events") == [(2,)]
    finally:
        await agent.close()


# ---------------------------------------------------------------------------------------
# Writing: refused at the statement
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO customers (id, tenant_id, email) VALUES (3, 2, 'e@x')",
        "INSERT INTO customers (id, email) VALUES (3, 'e@x')",  # no tenant: none of its own
        "INSERT INTO orders (id, tenant_id) SELECT id + 1000, 2 FROM orders",
        "UPDATE customers SET tenant_id = 2 WHERE id = 1",
        "UPDATE orders SET tenant_id = tenant_id + 1",
        "WITH moved AS (UPDATE lines SET tenant_id = 2 RETURNING id) SELECT * FROM moved",
    ],
)
async def test_writes_into_another_tenant_fail_at_the_statement(agent: Any, sql: str) -> None:
    async with agent.transaction():
        await enter(agent, new_id())
        error = await failure(agent, sql)
        assert isinstance(error, asyncpg.InsufficientPrivilegeError)
        assert error.message.startswith("new row violates tenant isolation for table")
        assert error.schema_name == "public"


async def test_a_child_of_another_tenants_parent_is_missing_its_parent(agent: Any) -> None:
    async with agent.transaction():
        await enter(agent, new_id())
        for sql in (
            "INSERT INTO orders (id, tenant_id, customer_id) VALUES (103, 1, 11)",
            "UPDATE orders SET customer_id = 12 WHERE id = 101",
            "INSERT INTO lines (id, tenant_id, order_id) VALUES (1002, 1, 111)",
        ):
            error = await failure(agent, sql)
            assert isinstance(error, asyncpg.ForeignKeyViolationError), sql
            assert "is not present in table" in (error.detail or "")
        # its own parents are found
        await agent.execute("INSERT INTO orders (id, tenant_id, customer_id) VALUES (103, 1, 2)")


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("DELETE FROM products WHERE id = 4", "stock_product_id_fkey"),  # CASCADE
        ("UPDATE products SET id = 20 WHERE id = 2", "lines_product_id_fkey"),  # ON UPDATE
    ],
)
async def test_cascades_into_another_tenant_fail_at_the_statement(
    agent: Any, conn: Any, sql: str, constraint: str
) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        error = await failure(agent, sql)
        assert isinstance(error, asyncpg.InsufficientPrivilegeError)
        assert "violates tenant isolation" in error.message
        assert error.constraint_name == constraint
    assert await ac.get_dirty_tables(ex(conn), session) == []


async def test_set_null_into_another_tenant_fails_and_own_rows_cascade(agent: Any) -> None:
    async with agent.transaction():
        await enter(agent, new_id())
        # product 3: only tenant 1's review; product 1: tenant 2's review too (and restricted
        # by tenant 1's own line, removed first)
        await agent.execute("DELETE FROM products WHERE id = 3")
        assert await rows(agent, "SELECT id, product_id FROM reviews") == [(1, None)]
        await agent.execute("DELETE FROM lines WHERE id = 1001")
        error = await failure(agent, "DELETE FROM products WHERE id = 1")
        assert isinstance(error, asyncpg.InsufficientPrivilegeError)
        assert error.constraint_name == "reviews_product_id_fkey"
        # a customer's orders cascade: all of them are the tenant's
        await agent.execute("DELETE FROM customers WHERE id = 1")
        assert await rows(agent, "SELECT id FROM orders") == [(102,)]
        assert await rows(agent, "SELECT count(*) FROM lines") == [(0,)]


async def test_restrict_sees_other_tenants_children_as_postgresql_does(agent: Any) -> None:
    async with agent.transaction():
        await enter(agent, new_id())
        # product 2 is referenced by tenant 2's line only (ON DELETE RESTRICT): PostgreSQL's
        # own checks see every row, under row-level security too
        error = await failure(agent, "DELETE FROM products WHERE id = 2")
        assert error.sqlstate in ("23503", "23001")
        assert error.constraint_name == "lines_product_id_fkey"


async def test_unique_values_of_another_tenant_are_the_tables_unique_violation(
    agent: Any,
) -> None:
    async with agent.transaction():
        await enter(agent, new_id())
        for sql in (
            "INSERT INTO customers (id, tenant_id) VALUES (11, 1)",
            "UPDATE customers SET email = 'c@x' WHERE id = 1",
        ):
            error = await failure(agent, sql)
            assert isinstance(error, asyncpg.UniqueViolationError), sql


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO countries VALUES ('it', 'Italy')",
        "UPDATE countries SET name = 'X' WHERE code = 'fr'",
        "UPDATE countries SET name = 'X' WHERE code = 'none'",  # no row: refused all the same
        "DELETE FROM countries WHERE code = 'es'",
    ],
)
async def test_read_only_tables_refuse_tenant_bound_writes(agent: Any, conn: Any, sql: str) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        error = await failure(agent, sql)
        assert isinstance(error, asyncpg.InsufficientPrivilegeError)
        assert "read-only for sessions bound to a tenant" in error.message
    assert await ac.get_dirty_tables(ex(conn), session) == []
    async with agent.transaction():  # a session bound to no tenant may write it
        await enter(agent, new_id(), tenant=None)
        await agent.execute(sql)


async def test_a_statement_that_switches_sessions_cannot_carry_rows_across(
    agent: Any, conn: Any
) -> None:
    """The view reads tenant 1's rows; the WHERE clause then moves app.session_id to a
    session of tenant 2 before the write trigger runs: the rows are refused."""
    other = new_id()
    async with agent.transaction():
        await enter(agent, other, tenant=2)
    async with agent.transaction():
        await enter(agent, new_id(), tenant=1)
        error = await failure(
            agent,
            f"UPDATE customers SET email = email || '!' "
            f"WHERE set_config('app.session_id', '{other}', true) IS NOT NULL",
        )
        assert isinstance(error, asyncpg.InsufficientPrivilegeError)
    assert await ac.get_dirty_tables(ex(conn), other) == []


# ---------------------------------------------------------------------------------------
# Commit
# ---------------------------------------------------------------------------------------


async def test_commit_applies_the_tenants_rows(agent: Any, conn: Any) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        await agent.execute("UPDATE customers SET email = upper(email)")
        await agent.execute("DELETE FROM orders WHERE id = 102")
        await agent.execute("INSERT INTO customers (id, tenant_id, email) VALUES (3, 1, 'e@x')")
    await ac.commit_cow_session_schema(ex(conn), session)
    assert await fetch(
        conn, f"SELECT id, tenant_id, email FROM {base_table('customers')} ORDER BY id"
    ) == [(1, 1, "A@X"), (2, 1, "B@X"), (3, 1, "e@x"), (11, 2, "c@x"), (12, 2, "d@x")]
    assert await fetch(conn, f"SELECT id FROM {base_table('orders')} ORDER BY id") == [
        (101,),
        (111,),
    ]


async def test_a_reviewed_tenant_session_commits_what_the_diff_showed(
    agent: Any, conn: Any
) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        await agent.execute("UPDATE customers SET email = upper(email)")  # tenant 1's two
        await agent.execute("DELETE FROM orders WHERE customer_id = 11")  # tenant 2's: none
    changes = await diff(ex(conn), session)
    assert changes.summary == {"INSERT": 0, "UPDATE": 2, "DELETE": 0}
    assert {d.pk["id"] for d in changes.diffs} == {1, 2}
    await ac.commit_cow_session_schema(ex(conn), session, expected=changes.fingerprint)
    assert await fetch(conn, f"SELECT email FROM {base_table('customers')} ORDER BY id") == [
        ("A@X",),
        ("B@X",),
        ("c@x",),
        ("d@x",),
    ]


@pytest.mark.parametrize(
    ("forged", "table"),
    [
        # a version of a new row in another tenant
        (
            "INSERT INTO {changes} (session_id, operation_id, _cow_kind, id, tenant_id) "
            "VALUES ($1, $2, 'I', 3, 2)",
            "customers",
        ),
        # a version over another tenant's row, claiming it for the session's tenant
        (
            "INSERT INTO {changes} (session_id, operation_id, _cow_kind, id, tenant_id, email) "
            "VALUES ($1, $2, 'U', 11, 1, 'mine@x')",
            "customers",
        ),
        # a deletion of another tenant's row
        (
            "INSERT INTO {changes} (session_id, operation_id, _cow_kind, id, tenant_id) "
            "VALUES ($1, $2, 'D', 12, 2)",
            "customers",
        ),
        # a row of a table read-only for tenants
        (
            "INSERT INTO {changes} (session_id, operation_id, _cow_kind, code, name) "
            "VALUES ($1, $2, 'I', 'it', 'Italy')",
            "countries",
        ),
    ],
)
async def test_commit_refuses_versions_outside_the_tenant(
    agent: Any, conn: Any, forged: str, table: str
) -> None:
    """Versions written around the write triggers (the owner writes the change table): the
    commit re-checks every row and applies nothing."""
    session = new_id()
    async with agent.transaction():
        await enter(agent, session)
        await agent.execute("UPDATE orders SET note = 'kept' WHERE id = 101")
    before = {t: await fetch(conn, f"SELECT * FROM {base_table(t)} ORDER BY 1") for t in TABLES}
    await conn.execute(forged.format(changes=changes_table(table)), session, new_id())
    with pytest.raises(ac.TenantIsolationError) as raised:
        await ac.commit_cow_session_schema(ex(conn), session)
    assert raised.value.rows[0]["table"] == table
    after = {t: await fetch(conn, f"SELECT * FROM {base_table(t)} ORDER BY 1") for t in TABLES}
    assert after == before
    assert "orders" in await ac.get_dirty_tables(ex(conn), session)


async def test_commit_of_a_session_without_tenant_is_not_rechecked(agent: Any, conn: Any) -> None:
    session = new_id()
    async with agent.transaction():
        await enter(agent, session, tenant=None)
        await agent.execute("UPDATE customers SET tenant_id = 1 WHERE id = 11")
        await agent.execute("UPDATE countries SET name = 'Deutschland' WHERE code = 'de'")
    await ac.commit_cow_session_schema(ex(conn), session)
    assert (
        await conn.fetchval(f"SELECT tenant_id FROM {base_table('customers')} WHERE id = 11") == 1
    )


def test_tenant_isolation_error_is_a_cow_error() -> None:
    error = ac.TenantIsolationError("m", [{"table": "t", "key": {"id": 1}}])
    assert isinstance(error, ac.CowError) and error.sqlstate == "42501"
    assert json.loads(json.dumps(error.rows)) == error.rows


# ---------------------------------------------------------------------------------------
# Fuzz: hostile statements of a tenant-bound session against row-level security
# ---------------------------------------------------------------------------------------
#
# Each program runs statement by statement, as the agent's role, on three sides:
#
# * ``plain``: the same tables holding ONLY tenant 1's rows (and every row of the shared
#   tables), under a row-level security policy ``tenant_id = 1`` (USING and WITH CHECK);
#   SELECT alone on ``countries``;
# * ``everyone``: the same, holding tenant 2's rows too, hidden by the same policy, and a
#   trigger that refuses (42501) any change to tenant 2's rows, which only referential
#   actions reach (they bypass the policy): row-level security with cascades kept inside;
# * the COW tables, holding both tenants' rows, in a session bound to tenant 1.
#
# After every statement the session gives what ``plain`` gives: the same rows and command
# tag, or the same SQLSTATE; except where tenant 2's rows make the statement fail, which
# ``everyone`` shows: the session then fails as ``everyone`` does (a key or unique value of
# tenant 2: 23505, as under row-level security; a cascade into tenant 2's rows: 42501;
# RESTRICT or NO ACTION: 23503/23001; when a statement breaks several, the session may
# report another of them first). A statement the session runs, ``everyone`` runs too. And the
# session sees exactly the rows ``plain`` shows the agent.
#
# Then the session is committed (in a transaction rolled back afterwards): the base holds
# tenant 2's rows as seeded and, for tenant 1 and the shared tables, ``plain``'s rows.

FUZZ_EXAMPLES = int(os.environ.get("AGENTCOW_TENANT_EXAMPLES", "25"))
#: SQLSTATEs of a statement stopped by tenant 2's rows.
STOPPED = {"23503", "23001", "42501"}

PLAIN_SEED = """
INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('es', 'Spain');
INSERT INTO products VALUES (1, 'pen'), (2, 'ink'), (3, 'pad'), (4, 'cap');
INSERT INTO customers VALUES (1, 1, 'a@x', 'fr'), (2, 1, 'b@x', 'de');
INSERT INTO orders VALUES (101, 1, 1, 'first'), (102, 1, 2, NULL);
INSERT INTO lines VALUES (1001, 1, 101, 1);
INSERT INTO reviews VALUES (1, 1, 3);
INSERT INTO stock VALUES (1, 1, 1);
"""

GUARD = """
CREATE FUNCTION everyone.guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.tenant_id <> 1 THEN
        RAISE EXCEPTION 'a referential action reached tenant 2' USING ERRCODE = '42501';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$
"""


def _snapshot(relation: Any) -> str:
    """Every table as JSON, in one round trip; ``relation(name)`` names each table."""
    tables = ", ".join(
        f"'{t}', (SELECT json_agg(x ORDER BY x::text) FROM {relation(t)} x)" for t in TABLES
    )
    return f"SELECT json_build_object({tables})::text"


SNAPSHOT = _snapshot(lambda t: t)
SNAPSHOT_BASE = _snapshot(base_table)

customer = st.sampled_from([1, 2, 3, 11, 12, 13])
order = st.sampled_from([101, 102, 103, 111, 112])
line = st.sampled_from([1001, 1002, 1011, 1012])
small = st.sampled_from([1, 2, 11, 12])
product = st.sampled_from([1, 2, 3, 4, 5])
tenant = st.sampled_from([1, 1, 2])
email = st.sampled_from(["'a@x'", "'b@x'", "'c@x'", "'d@x'", "'e@x'", "NULL"])
country = st.sampled_from(["'fr'", "'de'", "'es'", "'zz'", "NULL"])
isolated = st.sampled_from(ISOLATED)

STATEMENTS = [
    # reads: joins, subqueries, CTEs, aggregates, other tenants named outright
    st.builds("SELECT * FROM {} ORDER BY 1".format, st.sampled_from(TABLES)),
    st.just(
        "SELECT c.id, o.id, l.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
        "LEFT JOIN lines l ON l.order_id = o.id ORDER BY 1, 2, 3"
    ),
    st.builds(
        "SELECT count(*), coalesce(sum(id), 0) FROM {} WHERE tenant_id = {}".format,
        isolated,
        tenant,
    ),
    st.just(
        "SELECT p.id, (SELECT count(*) FROM reviews r WHERE r.product_id = p.id), "
        "(SELECT count(*) FROM stock s WHERE s.product_id = p.id) FROM products p ORDER BY 1"
    ),
    st.just(
        "WITH n AS (SELECT tenant_id, count(*) AS n FROM customers GROUP BY 1) "
        "SELECT * FROM n ORDER BY 1"
    ),
    st.builds("SELECT EXISTS (SELECT FROM orders WHERE customer_id = {})".format, customer),
    # writes of the tenant's rows, of tenant 2's rows, and across tenants
    st.builds(
        "INSERT INTO customers (id, tenant_id, email, country) VALUES ({}, {}, {}, {}) "
        "RETURNING *".format,
        customer,
        tenant,
        email,
        country,
    ),
    st.builds(
        "UPDATE customers SET email = {} WHERE id = {} RETURNING id, email".format, email, customer
    ),
    st.builds("UPDATE customers SET tenant_id = {} WHERE id = {}".format, tenant, customer),
    st.builds("UPDATE customers SET id = {} WHERE id = {} RETURNING id".format, customer, customer),
    st.builds("DELETE FROM customers WHERE id = {} RETURNING id".format, customer),
    st.builds(
        "INSERT INTO orders (id, tenant_id, customer_id, note) VALUES ({}, {}, {}, 'n') "
        "RETURNING id".format,
        order,
        tenant,
        customer,
    ),
    st.builds("UPDATE orders SET customer_id = {} WHERE id = {}".format, customer, order),
    st.builds(
        "WITH x AS (SELECT id FROM customers WHERE id = {}) UPDATE orders SET note = 'cte' "
        "WHERE customer_id IN (SELECT id FROM x) RETURNING id".format,
        customer,
    ),
    st.builds(
        "INSERT INTO orders (id, tenant_id, customer_id) SELECT id + 500, {}, id "
        "FROM customers RETURNING id".format,
        tenant,
    ),
    st.builds(
        "DELETE FROM orders WHERE id IN (SELECT o.id FROM orders o JOIN customers c "
        "ON c.id = o.customer_id WHERE c.email = {})".format,
        email,
    ),
    st.builds(
        "INSERT INTO lines (id, tenant_id, order_id, product_id) VALUES ({}, {}, {}, {})".format,
        line,
        tenant,
        order,
        product,
    ),
    st.builds("UPDATE lines SET product_id = {} WHERE id = {}".format, product, line),
    st.builds(
        "INSERT INTO {} (id, tenant_id, product_id) VALUES ({}, {}, {})".format,
        st.sampled_from(["reviews", "stock"]),
        small,
        tenant,
        product,
    ),
    st.builds("UPDATE {} SET tenant_id = 1 WHERE tenant_id = 2".format, isolated),
    st.builds("DELETE FROM {} WHERE tenant_id <> 1".format, isolated),
    # the shared tables: products (cascades into every tenant's rows), countries (read-only)
    st.builds("DELETE FROM products WHERE id = {}".format, product),
    st.builds("UPDATE products SET id = {} WHERE id = {}".format, product, product),
    st.builds("INSERT INTO products VALUES ({}, 'new')".format, product),
    st.builds("UPDATE countries SET name = 'x' WHERE code = {}".format, country),
    st.just("INSERT INTO countries VALUES ('it', 'Italy')"),
]


async def _run(connection: Any, sql: str) -> tuple[Any, ...]:
    """("ok", status, rows sorted) or ("error", sqlstate)."""
    try:
        statement = await connection.prepare(sql)
        records = await statement.fetch()
    except asyncpg.PostgresError as error:
        return ("error", error.sqlstate)
    return ("ok", statement.get_statusmsg(), sorted((tuple(r) for r in records), key=repr))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a == b or (a[0] == b[0] == "error" and {a[1], b[1]} <= STOPPED)


class Fuzz:
    def __init__(self, conn: Any, cow: Any, plain: Any, everyone: Any) -> None:
        self.conn, self.cow, self.plain, self.everyone = conn, cow, plain, everyone
        #: tenant 2's rows as seeded (json_agg's order), which no commit may change
        self.others: dict[str, list[dict[str, Any]]] = {}

    async def step(self, sql: str) -> None:
        sides = (self.plain, self.everyone, self.cow)
        savepoints = [side.transaction() for side in sides]
        outcomes = []
        for side, savepoint in zip(sides, savepoints, strict=True):
            await savepoint.start()
            outcomes.append(await _run(side, sql))
        plain, everyone, cow = outcomes
        if cow[0] == "ok":
            # what the session did, the tenant's rows alone do, and row-level security allows
            assert cow == plain == everyone, f"{sql}\n  {plain}\n  {everyone}\n  {cow}"
        else:
            # refused as on the tenant's rows alone, or because of tenant 2's rows
            stopped = plain != cow and everyone[0] == "error" and _same(everyone, cow)
            assert plain == cow or stopped, f"{sql}\n  {plain}\n  {everyone}\n  {cow}"
        for savepoint in savepoints:
            await (savepoint.commit() if cow[0] == "ok" else savepoint.rollback())
        seen = [json.loads(await side.fetchval(SNAPSHOT)) for side in sides]
        assert seen[0] == seen[1] == seen[2], f"after {sql}: {seen}"

    async def run(self, program: list[str]) -> None:
        session = new_id()
        with contextlib.suppress(_RollBack):
            async with self.plain.transaction(), self.everyone.transaction():
                async with self.cow.transaction():
                    await enter(self.cow, session)
                    for sql in program:
                        await self.step(sql)
                plain = json.loads(await self.plain.fetchval(SNAPSHOT))
                raise _RollBack  # the copies back to their seed
        await self._check_commit(session, plain)

    async def _check_commit(self, session: uuid.UUID, plain: dict[str, Any]) -> None:
        executor = ex(self.conn)
        try:
            with contextlib.suppress(_RollBack):
                async with self.conn.transaction():
                    await ac.commit_cow_session_schema(executor, session)
                    base = json.loads(await self.conn.fetchval(SNAPSHOT_BASE))
                    raise _RollBack  # the base back to its seed
        finally:
            await ac.discard_cow_session_schema(executor, session)
        for name in TABLES:
            mine = [r for r in base[name] or [] if r.get("tenant_id", 1) == 1]
            theirs = [r for r in base[name] or [] if r.get("tenant_id", 1) != 1]
            assert mine == (plain[name] or []), f"{name} after commit: {mine} {plain[name]}"
            assert theirs == self.others[name], f"{name}: tenant 2's rows changed: {theirs}"


class _RollBack(Exception):
    """Leaves a transaction block by rolling it back."""


async def _copy(conn: Any, schema: str, seed: str) -> None:
    """Schema ``schema``: the tables, seeded, under the tenant 1 policy, for the agent."""
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path = {schema}")
    await conn.execute(DDL)
    await conn.execute(seed)
    await conn.execute("RESET search_path")
    await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {AGENT}")
    await conn.execute(f"GRANT SELECT ON {schema}.countries TO {AGENT}")
    writable = ", ".join(f"{schema}.{t}" for t in ("products", *ISOLATED))
    await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {writable} TO {AGENT}")
    for name in ISOLATED:
        await conn.execute(f"ALTER TABLE {schema}.{name} ENABLE ROW LEVEL SECURITY")
        await conn.execute(
            f"CREATE POLICY tenant ON {schema}.{name} USING (tenant_id = 1) "
            "WITH CHECK (tenant_id = 1)"
        )


async def _agent_on(database: TestDatabase, schema: str | None) -> Any:
    connection = await connect_as(database, AGENT)
    if schema is not None:
        await connection.execute(f"SET search_path = {schema}")
    return connection


@pytest_asyncio.fixture(loop_scope="session")
async def fuzz(conn: Any, database: TestDatabase) -> AsyncIterator[Fuzz]:
    await _enable(conn)
    await create_login_role(database, AGENT)
    await grant_agent(conn, AGENT, TABLES)
    await _copy(conn, "plain", PLAIN_SEED)
    await _copy(conn, "everyone", SEED)
    await conn.execute(GUARD)
    for name in ISOLATED:
        await conn.execute(
            f"CREATE TRIGGER guard BEFORE UPDATE OR DELETE ON everyone.{name} "
            "FOR EACH ROW EXECUTE FUNCTION everyone.guard()"
        )
    connections = [await _agent_on(database, s) for s in ("plain", "everyone", None)]
    fuzz = Fuzz(conn, connections[2], connections[0], connections[1])
    seeded = json.loads(await conn.fetchval(SNAPSHOT_BASE))
    fuzz.others = {t: [r for r in seeded[t] or [] if r.get("tenant_id", 1) != 1] for t in TABLES}
    try:
        yield fuzz
    finally:
        for connection in connections:
            await connection.close()


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
@example(program=["DELETE FROM products WHERE id = 4", "SELECT * FROM stock ORDER BY 1"])
@example(program=["UPDATE products SET id = 5 WHERE id = 2", "DELETE FROM products WHERE id = 2"])
@example(program=["DELETE FROM lines WHERE id = 1001", "DELETE FROM products WHERE id = 1"])
@example(program=["INSERT INTO orders (id, tenant_id, customer_id) VALUES (103, 1, 11)"])
@example(program=["INSERT INTO customers (id, tenant_id, email) VALUES (3, 1, 'c@x')"])
@example(program=["UPDATE customers SET tenant_id = 2", "UPDATE countries SET name = 'x'"])
@given(program=st.lists(st.one_of(STATEMENTS), min_size=1, max_size=8))
async def test_fuzz_no_cross_tenant_reads_or_writes(fuzz: Fuzz, program: list[str]) -> None:
    await fuzz.run(program)
