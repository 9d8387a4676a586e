"""Constraint errors in a session read as the plain table's.

Each statement runs twice as the same role: on a plain table (schema ``plain``) and in a
session on its COW twin (schema ``cow``, same names; the statement names the views, in
``cow_cow`` in the overlay layout). Both must fail alike: SQLSTATE, message, DETAIL, and the
constraint, table, schema (``plain`` standing for ``cow``, the table's schema in both layouts)
and column fields.
The roles differ in what they may read, which decides the DETAIL PostgreSQL gives: one has
SELECT on the table, one SELECT on some of its columns only, one no SELECT at all; all three
may write. None of them may ever see the change table, a session or operation id, an internal
column, or a value it may not read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import OWNER_ROLE, TestDatabase
from tests.helpers import (
    LAYOUT,
    connect_as,
    create_login_role,
    ex,
    keep_agent_off_tables,
    kit_schema,
    new_id,
    on_shared_catalog,
)

PLAIN, COW = "plain", "cow"
#: Where a session's statements find the COW tables: their views.
VIEWS = kit_schema(COW)
TABLES = ("customers", "orders", "holds", "lines", "events")
READER, COLUMNS, BLIND = "cow_err_reader", "cow_err_columns", "cow_err_blind"
ROLES = (READER, COLUMNS, BLIND)

DDL = """
CREATE TABLE {s}.customers (id int PRIMARY KEY, "Name" text);
CREATE TABLE {s}.orders (
    id int PRIMARY KEY,
    customer int NOT NULL REFERENCES {s}.customers,
    qty int NOT NULL CHECK (qty > 0),
    price numeric CHECK (price >= 0),
    note text,
    secret text,
    rush boolean NOT NULL DEFAULT false,
    total numeric GENERATED ALWAYS AS (qty * price) STORED,
    "Code" text,
    CONSTRAINT orders_code_rush UNIQUE ("Code", rush),
    CONSTRAINT orders_note_short CHECK (length(note) < 50),
    CONSTRAINT a_total CHECK (total < 100)
);
CREATE TABLE {s}.holds (
    id int PRIMARY KEY,
    order_id int REFERENCES {s}.orders ON DELETE RESTRICT,
    customer int REFERENCES {s}.customers (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE {s}.lines (
    id int PRIMARY KEY,
    order_id int REFERENCES {s}.orders,
    customer int REFERENCES {s}.customers
);
CREATE TABLE {s}.events (
    kind text NOT NULL CHECK (kind <> ''), at int CHECK (at > 0), tag text UNIQUE
);
INSERT INTO {s}.customers VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO {s}.events VALUES ('seed', 1, 'x');
INSERT INTO {s}.orders (id, customer, qty, price, note, secret, "Code")
VALUES (1, 1, 5, 2.5, 'first', 'the secret', 'A'), (2, 2, 1, 1, NULL, 'another secret', 'B');
INSERT INTO {s}.holds VALUES (1, 2, 2);
GRANT USAGE ON SCHEMA {s} TO {reader}, {columns}, {blind};
GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.customers, {s}.orders, {s}.holds, {s}.lines,
    {s}.events TO {reader};
GRANT INSERT, UPDATE, DELETE ON {s}.customers, {s}.orders, {s}.holds, {s}.lines, {s}.events
    TO {columns}, {blind};
GRANT SELECT (kind) ON {s}.events TO {columns};
GRANT SELECT (id, customer, qty) ON {s}.orders TO {columns};
GRANT SELECT (id) ON {s}.customers, {s}.holds TO {columns};
GRANT SELECT (order_id) ON {s}.holds TO {columns};
GRANT SELECT (id, customer) ON {s}.lines TO {columns};
"""


@dataclass(frozen=True)
class Failure:
    """The fields of an error a client sees (schema ``plain`` written as ``cow``)."""

    sqlstate: str | None
    message: str | None = None
    detail: str | None = None
    constraint_name: str | None = None
    table_name: str | None = None
    schema_name: str | None = None
    column_name: str | None = None
    datatype_name: str | None = None
    hint: str | None = None


def failure(exc: asyncpg.PostgresError) -> Failure:
    schema = exc.schema_name
    return Failure(
        sqlstate=exc.sqlstate,
        message=exc.message,
        detail=exc.detail,
        constraint_name=exc.constraint_name,
        table_name=exc.table_name,
        schema_name=COW if schema == PLAIN else schema,
        column_name=exc.column_name,
        datatype_name=exc.data_type_name,
        hint=exc.hint,
    )


OK = Failure(sqlstate=None)


async def attempt(conn: Any, sql: str) -> Failure:
    """Runs ``sql`` in a savepoint: OK, or how it failed."""
    try:
        async with conn.transaction():
            await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        return failure(exc)
    return OK


@pytest.fixture
async def roles(conn: Any, database: TestDatabase) -> AsyncIterator[dict[str, Any]]:
    """Both schemas, COW on ``cow`` (its grants moved, or in the overlay layout copied, to
    the views; the roles then keep none on the overlay's tables), and a connection per
    role."""
    for role in ROLES:
        await create_login_role(database, role)
    executor = ex(conn)
    await ac.deploy_cow_functions(executor)
    for schema in (PLAIN, COW):
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(DDL.format(s=schema, reader=READER, columns=COLUMNS, blind=BLIND))
    for table in TABLES:
        await ac.enable_cow(executor, table, schema=COW, layout=LAYOUT)
    for role in ROLES:
        await keep_agent_off_tables(conn, role, TABLES, schema=COW)
    connections = {role: await connect_as(database, role) for role in ROLES}
    connections["owner"] = conn
    try:
        yield connections
    finally:
        for role in ROLES:
            await connections[role].close()


@contextlib.asynccontextmanager
async def in_session(conn: Any) -> AsyncIterator[None]:
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), new_id(), new_id())
        yield


class AnyRow(str):
    """A statement that writes several rows: which row fails first follows the scan order,
    which a plan may change (the view's differs from the table's), so its DETAIL is compared
    without the row's values (the columns shown must still be the same)."""


def _without_values(outcome: Failure) -> Failure:
    detail = outcome.detail
    if detail is not None:
        detail = detail.split(" = (")[0] if " = (" in detail else "Failing row contains (...)."
    return replace(outcome, detail=detail)


async def compare(
    conn: Any, statements: Sequence[str], *, prepare: Sequence[str] = ()
) -> list[Failure]:
    """Runs ``prepare`` then each statement (savepoints; ``{s}`` is the schema) on the plain
    tables, then in a session on the COW ones (their views); the outcomes must be equal (for
    AnyRow statements, up to which row's values the DETAIL shows). Returns them."""
    outcomes: dict[str, list[Failure]] = {}
    for schema, named in ((PLAIN, PLAIN), (COW, VIEWS)):
        context = in_session(conn) if schema == COW else conn.transaction()
        async with context:
            for sql in prepare:
                await conn.execute(sql.format(s=named))
            outcomes[schema] = [await attempt(conn, sql.format(s=named)) for sql in statements]
    for sql, plain, cow in zip(statements, outcomes[PLAIN], outcomes[COW], strict=True):
        if isinstance(sql, AnyRow):
            plain, cow = _without_values(plain), _without_values(cow)
        assert cow == plain, f"{sql}\n  plain: {plain}\n  cow:   {cow}"
    for outcome in outcomes[COW]:
        text = f"{outcome.message} {outcome.detail} {outcome.table_name}"
        for leak in ("_changes", "_base", "_cow_", "session", "operation"):
            assert leak not in text, outcome
    return outcomes[COW]


async def test_not_null(roles: dict[str, Any]) -> None:
    statements = [
        "INSERT INTO {s}.orders (id, customer) VALUES (10, 1)",
        "INSERT INTO {s}.orders (id, qty, secret) VALUES (10, 1, 'mine')",
        "INSERT INTO {s}.orders (customer, qty) VALUES (1, 1)",
        AnyRow("UPDATE {s}.orders SET qty = NULL"),
        AnyRow("UPDATE {s}.orders SET customer = NULL, note = 'n'"),
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements)
        assert {o.sqlstate for o in outcomes} == {"23502"}, (role, outcomes)
        assert [o.column_name for o in outcomes] == ["qty", "customer", "id", "qty", "customer"]
    blind = await compare(roles[BLIND], statements[:2])
    assert blind[0].detail == "Failing row contains (id, customer) = (10, 1)."
    assert blind[1].detail == "Failing row contains (id, qty, secret) = (10, 1, mine)."


async def test_check(roles: dict[str, Any]) -> None:
    statements = [
        "INSERT INTO {s}.orders (id, customer, qty) VALUES (10, 1, 0)",
        "INSERT INTO {s}.orders (id, customer, qty, price, secret) VALUES (10, 1, 1, -1, 'mine')",
        "INSERT INTO {s}.orders (id, customer, qty, note) VALUES (10, 1, 1, repeat('é', 60))",
        "INSERT INTO {s}.orders VALUES (10, 1, 1, -1, 'n', 's')",
        AnyRow("UPDATE {s}.orders SET qty = -1"),
        AnyRow("UPDATE {s}.orders SET price = -1, rush = true"),
        AnyRow("UPDATE {s}.orders SET note = repeat('x', 80)"),
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements)
        assert {o.sqlstate for o in outcomes} == {"23514"}, (role, outcomes)
    reader = await compare(roles[READER], statements[:1])
    assert reader[0].detail == "Failing row contains (10, 1, 0, null, null, null, f, null, null)."
    columns = await compare(roles[COLUMNS], statements[:1])
    assert columns[0].detail == "Failing row contains (id, customer, qty) = (10, 1, 0)."


async def test_check_of_generated_and_owner_rows(roles: dict[str, Any]) -> None:
    """The owner sees whole rows, generated columns computed; checks run in name order."""
    outcomes = await compare(
        roles["owner"],
        [
            "INSERT INTO {s}.orders (id, customer, qty, price) VALUES (10, 1, 50, 3)",
            "UPDATE {s}.orders SET qty = 200, note = repeat('x', 60) WHERE id = 1",
            "INSERT INTO {s}.orders (id, customer, qty) VALUES (NULL, 1, 0)",
        ],
    )
    assert outcomes[0].constraint_name == "a_total"
    assert outcomes[1].constraint_name == "a_total"


async def test_unique(roles: dict[str, Any]) -> None:
    statements = [
        "INSERT INTO {s}.orders (id, customer, qty) VALUES (1, 1, 1)",
        "INSERT INTO {s}.orders (id, customer, qty, \"Code\") VALUES (10, 1, 1, 'A')",
        "INSERT INTO {s}.orders (id, customer, qty) VALUES (11, 1, 1), (11, 2, 2)",
        "UPDATE {s}.orders SET \"Code\" = 'A', rush = false",
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements)
        assert {o.sqlstate for o in outcomes} == {"23505"}, (role, outcomes)
    reader = await compare(roles[READER], statements[1:2])
    assert reader[0].detail == 'Key ("Code", rush)=(A, f) already exists.'


async def test_foreign_keys(roles: dict[str, Any]) -> None:
    statements = [
        "INSERT INTO {s}.orders (id, customer, qty) VALUES (10, 99, 1)",
        AnyRow("UPDATE {s}.orders SET customer = 98"),
        "DELETE FROM {s}.orders",  # holds 1 references order 2: RESTRICT
        "UPDATE {s}.customers SET id = 7 WHERE id = 2",  # NO ACTION (BLIND may not read id)
        "INSERT INTO {s}.holds (id, customer) VALUES (5, 42)",  # deferred: checked below
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements[: 3 if role == BLIND else 4])
        assert outcomes[0].sqlstate == outcomes[1].sqlstate == "23503", (role, outcomes)
        assert outcomes[2].sqlstate in ("23001", "23503"), (role, outcomes)
        conn = roles[role]
        ended: dict[str, Failure] = {}
        for schema, named in ((PLAIN, PLAIN), (COW, VIEWS)):
            context = in_session(conn) if schema == COW else conn.transaction()
            with contextlib.suppress(asyncpg.PostgresError):
                async with context:
                    await conn.execute(statements[4].format(s=named))
                    ended[schema] = await attempt(conn, "SET CONSTRAINTS ALL IMMEDIATE")
        assert ended[COW] == ended[PLAIN]
        assert ended[COW].sqlstate == "23503"


async def test_foreign_keys_in_postgres_order(roles: dict[str, Any]) -> None:
    """PostgreSQL checks keys row by row, each row's keys in the order they were created
    (lines: order_id, then customer), and reports the first failure."""
    statements = [
        "INSERT INTO {s}.lines VALUES (1, 99, 99)",
        "INSERT INTO {s}.lines VALUES (1, 1, 99), (2, 99, 1)",
        "INSERT INTO {s}.lines VALUES (1, 1, 1), (2, 2, 99), (3, 98, 97)",
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements)
        assert [o.constraint_name for o in outcomes] == [
            "lines_order_id_fkey",
            "lines_customer_fkey",
            "lines_customer_fkey",
        ]
    reader = await compare(roles[READER], statements)
    assert reader[2].detail == 'Key (customer)=(99) is not present in table "customers".'
    columns = await compare(roles[COLUMNS], statements)
    assert columns[0].detail == 'Key is not present in table "orders".'


async def test_set_role_decides(roles: dict[str, Any], database: TestDatabase) -> None:
    """The role the statement runs as counts, not the login role behind SET ROLE."""
    owner = roles["owner"]
    superuser = await asyncpg.connect(database.superuser_dsn)
    try:
        await on_shared_catalog(superuser, f"GRANT {BLIND}, {COLUMNS} TO {OWNER_ROLE}")
    finally:
        await superuser.close()
    for role in (BLIND, COLUMNS):
        await owner.execute(f"SET ROLE {role}")
        try:
            outcomes = await compare(
                owner,
                [
                    "INSERT INTO {s}.orders (id, customer, qty, secret) VALUES (10, 1, 0, 's')",
                    AnyRow("UPDATE {s}.orders SET qty = 0"),
                    "UPDATE {s}.orders SET \"Code\" = 'A'",
                ],
            )
        finally:
            await owner.execute("RESET ROLE")
        assert "the secret" not in str([o.detail for o in outcomes])


async def test_role_setting_cannot_be_claimed(roles: dict[str, Any]) -> None:
    """Claiming another role takes SET ROLE, which PostgreSQL refuses to non-members."""
    agent = roles[BLIND]
    async with in_session(agent):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await agent.execute(
                f"UPDATE {VIEWS}.orders SET qty = 0 "
                f"WHERE set_config('role', '{OWNER_ROLE}', true) <> ''"
            )
    outcomes = await compare(agent, [AnyRow("UPDATE {s}.orders SET qty = 0")])
    assert outcomes[0].detail == "Failing row contains (qty) = (0)."


async def test_unknowable_columns_are_left_out(roles: dict[str, Any]) -> None:
    """The trigger cannot see the statement's column list. A column the role may not read
    is shown only when the statement surely gave it: a value an UPDATE changed, a non-null
    value for a column without a default. PostgreSQL also shows an explicit NULL, an
    explicit value for a column with a default, and a value SET to what it was; a session
    leaves those out: it may show less than the table, never more."""
    statements = [
        "INSERT INTO {s}.orders (id, customer, qty, note) VALUES (10, 1, 0, NULL)",
        "INSERT INTO {s}.orders (id, customer, qty, rush) VALUES (10, 1, 0, true)",
        AnyRow("UPDATE {s}.orders SET qty = 0, rush = false"),
    ]
    for role in (COLUMNS, BLIND):
        conn = roles[role]
        plain: list[Failure] = []
        async with conn.transaction():
            for sql in statements:
                plain.append(await attempt(conn, sql.format(s=PLAIN)))
        async with in_session(conn):
            cow = [await attempt(conn, sql.format(s=VIEWS)) for sql in statements]
        for p, c in zip(plain, cow, strict=True):
            assert (c.sqlstate, c.message) == (p.sqlstate, p.message)
            shown, plain_shown = _columns(c.detail), _columns(p.detail)
            assert shown < plain_shown, (role, p.detail, c.detail)


def _columns(detail: str | None) -> set[str]:
    """The columns a "Failing row contains (a, b) = (1, 2)." detail names."""
    if detail is None:
        return set()
    names = detail.removeprefix("Failing row contains (").split(")", 1)[0]
    return set(names.split(", "))


async def test_check_calling_a_function_outside_pg_catalog(conn: Any) -> None:
    """The trigger evaluates CHECK expressions under its fixed search_path: the functions
    they call are read from the catalog with their schema."""
    await ac.deploy_cow_functions(ex(conn))
    for schema in (PLAIN, COW):
        await conn.execute(
            f"CREATE SCHEMA {schema};"
            f"CREATE FUNCTION {schema}.even(int) RETURNS boolean LANGUAGE sql IMMUTABLE "
            "AS 'SELECT $1 % 2 = 0';"
            f"SET search_path = {schema}, public;"
            f"CREATE TABLE {schema}.pairs (id int PRIMARY KEY, n int CHECK (even(n)));"
            "RESET search_path"
        )
    await conn.execute("SET search_path = cow, public")
    await ac.enable_cow(ex(conn), "pairs", schema=COW, layout=LAYOUT)
    await conn.execute("RESET search_path")
    outcomes = await compare(
        conn,
        ["INSERT INTO {s}.pairs VALUES (1, 2)", "INSERT INTO {s}.pairs VALUES (2, 3)"],
    )
    assert outcomes[0] == OK
    assert outcomes[1].constraint_name == "pairs_n_check"


async def test_append_only_table(roles: dict[str, Any]) -> None:
    """A table without a key (append-only in sessions) reports its errors as the table does."""
    statements = [
        "INSERT INTO {s}.events (at) VALUES (2)",
        "INSERT INTO {s}.events VALUES ('', 1, 'y')",
        "INSERT INTO {s}.events VALUES ('k', 0, 'y')",
        "INSERT INTO {s}.events VALUES ('k', 1, 'x')",
    ]
    for role in ROLES:
        outcomes = await compare(roles[role], statements)
        assert [o.sqlstate for o in outcomes] == ["23502", "23514", "23514", "23505"], role
    columns = await compare(roles[COLUMNS], statements[1:2])
    assert columns[0].detail == "Failing row contains (kind, at, tag) = (, 1, y)."
