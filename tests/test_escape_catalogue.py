"""The catalogue of escape attempts (issue 10): hostile statements an agent could send, each
run as an application runs an agent's SQL — through a ``CowSession`` on a pool of one
connection, logged in AS AN AGENT ROLE that may use the COW tables — and what must hold
after each: the guard refused it with the expected reason (or, where the statement is
harmless, it ran inside its own session), production's rows are unchanged, another
session's pending rows are unchanged, and the pooled connection holds nothing the agent
left (settings, temporary objects, prepared statements, advisory locks, cursors).

One database serves the whole catalogue, so an attempt that left anything behind would also
show in the attempts after it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.agent import GuardRefusal
from agentcow.binding import add_agent_role, create_binding_key
from tests.conftest import OWNER_PASSWORD, OWNER_ROLE, ServerInfo, TestDatabase
from tests.helpers import (
    ROLE_PASSWORD,
    base_table,
    changes_table,
    connect_as,
    create_login_role,
    fetch,
    grant_agent,
    make_cow,
    rename_only,
)
from tests.postgres_server import replace_dsn
from tests.scopes_support import asyncpg_pool, probe

AGENT_ROLE = "agentcow_catalogue_agent"
OTHER_SESSION = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
ANY_ID = "00000000-0000-4000-8000-0000000000aa"

DDL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE,
                     total numeric(10, 2) NOT NULL, status text NOT NULL DEFAULT 'open');
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');
INSERT INTO orders VALUES (15, 1, 100.00, 'open'), (16, 2, 20.00, 'paid');
"""


@dataclass(frozen=True)
class Attempt:
    """One entry: what the agent sends, and the guard's reason code (None: allowed, and it
    must stay inside its session)."""

    name: str
    sql: str
    code: str | None


CATALOGUE = [
    # -- moving the session from inside one DML statement (the first finding) ---
    Attempt(
        "update_clears_session_in_where",
        "UPDATE orders SET total = 0 WHERE id = 15 AND set_config('app.session_id', '', true) "
        f"= '' RETURNING set_config('app.session_id', '{ANY_ID}', true)",
        "function_not_allowed",
    ),
    Attempt(
        "delete_clears_session_in_where",
        "DELETE FROM customers WHERE id = 1 AND set_config('app.session_id', '', true) = ''",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_in_subquery",
        "UPDATE orders SET total = 0 WHERE id = (SELECT 15 WHERE set_config('app.session_id',"
        " '', true) = '')",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_in_cte",
        "WITH x AS (SELECT set_config('app.session_id', '', true)) DELETE FROM orders",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_in_order_by",
        "SELECT id FROM orders ORDER BY set_config('app.session_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_as_function_argument",
        "UPDATE orders SET status = lower(set_config('app.session_id', '', true)) WHERE id = 15",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_in_values",
        "INSERT INTO orders (id, customer_id, total, status) VALUES "
        "(99, 1, 1, set_config('app.session_id', '', true))",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_uppercase",
        "SELECT SET_CONFIG('app.session_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_quoted",
        "SELECT \"set_config\"('app.session_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_schema_qualified",
        "SELECT pg_catalog.set_config('app.session_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_quoted_and_qualified",
        "SELECT \"pg_catalog\".\"set_config\"('app.session_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "set_config_mixed_case_qualified",
        "SELECT Pg_Catalog.Set_Config('app.operation_id', '', true)",
        "function_not_allowed",
    ),
    Attempt(
        "operator_syntax",
        "SELECT id FROM orders WHERE id OPERATOR(pg_catalog.=) 15",
        "operator_not_allowed",
    ),
    Attempt(
        "attribute_notation_reads_a_setting",
        "SELECT ('app.session_id'::text).current_setting FROM orders",
        "function_not_allowed",
    ),
    Attempt(
        "attribute_notation_creates_a_large_object",
        "SELECT (0).lo_creat FROM orders",
        "function_not_allowed",
    ),
    Attempt(
        "whole_row_of_a_function_in_from_calls",
        "SELECT s.current_setting FROM orders, unnest(array['app.session_id']) s",
        "function_not_allowed",
    ),
    # -- settings and statements that move or leave the session -------------------------
    Attempt("set_session", f"SET app.session_id = '{ANY_ID}'", "setting"),
    Attempt("set_local_session", "SET LOCAL app.session_id = ''", "setting"),
    Attempt("reset_session", "RESET app.session_id", "setting"),
    Attempt("reset_all", "RESET ALL", "setting"),
    Attempt(
        "session_level_visible_operations",
        f"SET app.visible_operations = '{{{ANY_ID}}}'",
        "setting",
    ),
    Attempt(
        "set_approved_operation_id",
        f"SET LOCAL app.operation_id = '{ANY_ID}'",
        "setting",
    ),
    Attempt(
        "write_under_approved_operation",
        f"INSERT INTO orders SELECT 98, 1, 1, 'x' WHERE set_config('app.operation_id', "
        f"'{ANY_ID}', true) IS NOT NULL",
        "function_not_allowed",
    ),
    Attempt(
        "read_other_session_with_leaked_id",
        f"SELECT * FROM orders WHERE set_config('app.session_id', '{OTHER_SESSION}', true) "
        "IS NOT NULL",
        "function_not_allowed",
    ),
    Attempt(
        "write_into_other_session_with_leaked_id",
        f"WITH s AS (SELECT set_config('app.session_id', '{OTHER_SESSION}', true)) "
        "INSERT INTO orders SELECT 97, 1, 1, 'x' FROM s",
        "function_not_allowed",
    ),
    Attempt("set_role", "SET ROLE agentcow_owner", "setting"),
    Attempt("show_setting", "SHOW app.session_id", "setting"),
    Attempt(
        "do_block",
        "DO $$ BEGIN PERFORM set_config('app.session_id', '', true); END $$",
        "statement_not_allowed",
    ),
    Attempt("commit_then_update", "COMMIT; UPDATE orders SET total = 0", "multiple_statements"),
    Attempt("commit_and_chain", "COMMIT AND CHAIN", "transaction_control"),
    Attempt("rollback", "ROLLBACK", "transaction_control"),
    Attempt("begin", "BEGIN", "transaction_control"),
    Attempt("savepoint", "SAVEPOINT s", "transaction_control"),
    Attempt("prepare_transaction", "PREPARE TRANSACTION 'x'", "transaction_control"),
    Attempt(
        "alter_role_set",
        f"ALTER ROLE {AGENT_ROLE} SET app.session_id = '{ANY_ID}'",
        "statement_not_allowed",
    ),
    # -- reading other sessions' ids, the kit and the catalogs ---------------------------
    Attempt("current_setting", "SELECT current_setting('app.session_id')", "function_not_allowed"),
    Attempt(
        "current_setting_missing_ok",
        "SELECT id FROM orders WHERE current_setting('app.session_id', true) IS NOT NULL",
        "function_not_allowed",
    ),
    Attempt("pg_stat_activity", "SELECT query FROM pg_stat_activity", "system_catalog"),
    Attempt(
        "pg_stat_statements",
        "SELECT query FROM public.pg_stat_statements",
        "system_catalog",
    ),
    Attempt("pg_prepared_statements", "SELECT * FROM pg_prepared_statements", "system_catalog"),
    Attempt("pg_settings", "SELECT name, setting FROM pg_catalog.pg_settings", "system_catalog"),
    Attempt("pg_class", "SELECT relname FROM pg_class", "system_catalog"),
    Attempt("information_schema", "SELECT * FROM information_schema.tables", "system_catalog"),
    Attempt("read_base", "SELECT * FROM orders_base", "kit_object"),
    Attempt("read_base_qualified", "SELECT * FROM public.orders_base", "kit_object"),
    Attempt("read_changes", "SELECT * FROM orders_changes", "kit_object"),
    Attempt("read_overlay_changes", "SELECT * FROM public_cow.orders_changes", "kit_object"),
    Attempt("read_kit_schema", "SELECT * FROM agentcow.sessions", "kit_object"),
    Attempt("kit_function", f"SELECT agentcow.discard_session('{ANY_ID}')", "function_not_allowed"),
    Attempt(
        "cte_named_like_the_base",
        "WITH orders_base AS (SELECT * FROM orders_base) SELECT * FROM orders_base",
        "kit_object",
    ),
    Attempt(
        "write_base_under_cte_name",
        "WITH orders_base AS (SELECT 1) DELETE FROM orders_base",
        "kit_object",
    ),
    Attempt(
        "data_modifying_cte_on_base",
        "WITH d AS (DELETE FROM orders_base RETURNING id) SELECT count(*) FROM d",
        "kit_object",
    ),
    Attempt("three_part_name", "SELECT * FROM current_db.public.orders", "table_not_allowed"),
    Attempt("unknown_table", "SELECT * FROM secrets", "table_not_allowed"),
    Attempt("regclass_cast", "SELECT 'agentcow.bindings'::regclass::oid", "cast_not_allowed"),
    # -- state that would survive into the next request ----------------------------------
    Attempt(
        "temp_view_shadowing",
        "CREATE TEMP VIEW orders AS SELECT * FROM orders",
        "statement_not_allowed",
    ),
    Attempt("temp_table", "CREATE TEMP TABLE leftover (id int)", "statement_not_allowed"),
    Attempt("prepare", "PREPARE p AS SELECT * FROM orders", "statement_not_allowed"),
    Attempt("execute", "EXECUTE p", "statement_not_allowed"),
    Attempt("deallocate", "DEALLOCATE ALL", "statement_not_allowed"),
    Attempt("listen", "LISTEN agents", "statement_not_allowed"),
    Attempt("notify", "NOTIFY agents, 'hello'", "statement_not_allowed"),
    Attempt("unlisten", "UNLISTEN *", "statement_not_allowed"),
    Attempt("declare_cursor", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "statement_not_allowed"),
    Attempt("discard", "DISCARD ALL", "statement_not_allowed"),
    Attempt("advisory_lock", "SELECT pg_advisory_lock(1634166635, 1)", "function_not_allowed"),
    Attempt("advisory_xact_lock", "SELECT pg_try_advisory_xact_lock(1)", "function_not_allowed"),
    # -- holding others and production -------------------------------------------------
    Attempt("lock_table", "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "statement_not_allowed"),
    Attempt("row_lock", "SELECT * FROM orders FOR UPDATE", "locking_clause"),
    Attempt("row_lock_share", "SELECT * FROM orders WHERE id = 15 FOR KEY SHARE", "locking_clause"),
    Attempt("pg_sleep", "SELECT pg_sleep(5)", "function_not_allowed"),
    Attempt(
        "pg_sleep_in_where",
        "SELECT id FROM orders WHERE pg_sleep(5) IS NULL",
        "function_not_allowed",
    ),
    Attempt(
        "terminate_backend",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
        "function_not_allowed",
    ),
    Attempt("cancel_backend", "SELECT pg_cancel_backend(1)", "function_not_allowed"),
    Attempt(
        "generate_series",
        "SELECT count(*) FROM generate_series(1, 1000000000)",
        "function_not_allowed",
    ),
    Attempt("txid_current", "SELECT txid_current()", "function_not_allowed"),
    Attempt("nextval", "SELECT nextval('agentcow.change_seq')", "function_not_allowed"),
    Attempt("explain_analyze", "EXPLAIN ANALYZE DELETE FROM orders", "statement_not_allowed"),
    Attempt("explain", "EXPLAIN SELECT * FROM orders", "statement_not_allowed"),
    Attempt("vacuum", "VACUUM orders", "statement_not_allowed"),
    Attempt("analyze", "ANALYZE orders", "statement_not_allowed"),
    Attempt("call", "CALL agentcow.something()", "statement_not_allowed"),
    # -- DDL and privileges --------------------------------------------------------------
    Attempt(
        "create_trigger",
        "CREATE TRIGGER t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f()",
        "statement_not_allowed",
    ),
    Attempt(
        "fk_pinning_base",
        "CREATE TABLE pin (id int REFERENCES orders_base (id))",
        "statement_not_allowed",
    ),
    Attempt("grant", f"GRANT ALL ON orders TO {AGENT_ROLE}", "statement_not_allowed"),
    Attempt("truncate", "TRUNCATE orders", "statement_not_allowed"),
    Attempt("drop", "DROP VIEW orders", "statement_not_allowed"),
    Attempt(
        "select_into",
        "SELECT * INTO copied FROM orders",
        "select_into",
    ),
    # -- reaching outside the database ---------------------------------------------------
    Attempt("copy_to_program", "COPY orders TO PROGRAM 'cat > /tmp/x'", "statement_not_allowed"),
    Attempt("copy_from_file", "COPY orders FROM '/etc/passwd'", "statement_not_allowed"),
    Attempt("pg_read_file", "SELECT pg_read_file('/etc/passwd')", "function_not_allowed"),
    Attempt(
        "dblink",
        "SELECT * FROM dblink('dbname=x', 'DELETE FROM orders') AS t(x int)",
        "function_not_allowed",
    ),
    Attempt("lo_import", "SELECT lo_import('/etc/passwd')", "function_not_allowed"),
    Attempt(
        "query_to_xml",
        "SELECT query_to_xml('SELECT * FROM orders_base', true, true, '')",
        "function_not_allowed",
    ),
    # -- hiding a second statement or a call from the guard ------------------------------
    Attempt("semicolon_in_string", "SELECT 'a;b' FROM orders", None),
    Attempt("statement_in_dollar_quote", "SELECT $x$; COMMIT; DELETE FROM orders $x$", None),
    Attempt("statement_in_comment", "SELECT 1 /* ; COMMIT; DELETE FROM orders */", None),
    Attempt("statement_in_line_comment", "SELECT 1 -- ; DELETE FROM orders", None),
    Attempt(
        "nested_comment_hiding_nothing",
        "SELECT 1 /* /* */ ; DELETE FROM orders */",
        None,
    ),
    Attempt(
        "comment_then_second_statement",
        "SELECT 1 /* harmless */; DELETE FROM orders",
        "multiple_statements",
    ),
    Attempt(
        "identifier_with_dollar_opening_no_quote",
        "SELECT a$x$ FROM orders; DELETE FROM orders --$x$",
        "multiple_statements",
    ),
    Attempt(
        "backslash_ends_a_standard_string",
        "SELECT 'a\\', set_config('app.session_id', '', true), '' FROM orders",
        "function_not_allowed",
    ),
    Attempt(
        "escape_string_hides_nothing",
        "SELECT E'\\'; SELECT set_config(1, 2, 3) --' FROM orders",
        None,
    ),
    Attempt(
        "carriage_return_ends_a_comment",
        "SELECT 1 --\rFROM orders WHERE pg_sleep(5) IS NULL",
        "function_not_allowed",
    ),
    Attempt("quoted_regclass_cast", "SELECT 'agentcow.sessions'::\"regclass\"", "cast_not_allowed"),
    Attempt("unicode_identifier", 'SELECT * FROM U&"orders\\005fbase"', "unicode_escape"),
    Attempt("unicode_string", "SELECT U&'\\0041'", "unicode_escape"),
    Attempt("empty", "  -- nothing ", "empty_statement"),
    Attempt("garbage", "SELEC * FROM orders", "statement_not_allowed"),
    Attempt("unclosed_string", "SELECT 'abc FROM orders", "parse_error"),
    # -- harmless statements that must stay inside their session -------------------------
    Attempt("plain_update", "UPDATE orders SET total = 0 WHERE id = 15", None),
    Attempt("plain_delete_cascading", "DELETE FROM customers WHERE id = 1", None),
    Attempt(
        "data_modifying_cte_on_cow_table",
        "WITH d AS (DELETE FROM orders WHERE id = 16 RETURNING id) SELECT count(*) FROM d",
        None,
    ),
    Attempt("mentions_set_config_in_a_string", "SELECT 'set_config(x)' AS s FROM orders", None),
    Attempt("column_named_like_a_function", "SELECT o.status AS set_config FROM orders o", None),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["settings", "bound"])
async def world(
    request: pytest.FixtureRequest, pg_server: ServerInfo, _admin_conn: Any
) -> AsyncIterator[dict[str, Any]]:
    """One database for the catalogue: the COW tables, an agent role, another session's
    pending rows; and what production and that session hold before any attempt. Sessions
    are entered with agent-cow's settings, or (``bound``) the role is an agent role that
    only the application's binding key binds."""
    name = f"agentcow_test_{uuid.uuid4().hex}"
    await _admin_conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE} TEMPLATE template0')
    password = None if pg_server.is_local else OWNER_PASSWORD
    database = TestDatabase(
        name=name,
        owner_dsn=pg_server.dsn_for(database=name, user=OWNER_ROLE, password=password),
        superuser_dsn=pg_server.dsn_for(database=name),
        owner=OWNER_ROLE,
    )
    owner = await asyncpg.connect(database.owner_dsn)
    try:
        await make_cow(owner, DDL, "customers", "orders")
        await create_login_role(database, AGENT_ROLE)
        await grant_agent(owner, AGENT_ROLE, ["customers", "orders"])
        key = None
        if request.param == "bound":
            await add_agent_role(AsyncpgExecutor(owner), AGENT_ROLE)
            key = await create_binding_key(AsyncpgExecutor(owner), label="catalogue")
        other = ac.CowSession(owner, session_id=OTHER_SESSION)
        await other.execute("UPDATE orders SET status = 'held' WHERE id = 16")
        await (await connect_as(database, AGENT_ROLE)).close()  # the role may log in
        agent_password = ROLE_PASSWORD if password is not None else None
        agent_dsn = replace_dsn(database.owner_dsn, user=AGENT_ROLE, password=agent_password)
        async with asyncpg_pool(agent_dsn) as pool:
            async with pool.acquire() as connection:
                clean = await probe(AsyncpgExecutor(connection))
            yield {
                "owner": owner,
                "pool": pool,
                "key": key,
                "clean": clean,
                "base": await _production(owner),
                "other": await _session_rows(owner, OTHER_SESSION),
            }
    finally:
        await owner.close()
        await _admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _production(owner: Any) -> list[tuple[Any, ...]]:
    return await fetch(owner, f"SELECT * FROM {base_table('orders')} ORDER BY id") + await fetch(
        owner, f"SELECT * FROM {base_table('customers')} ORDER BY id"
    )


async def _session_rows(owner: Any, session_id: uuid.UUID) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for table in ("orders", "customers"):
        rows += await fetch(
            owner,
            f"SELECT * FROM {changes_table(table)} WHERE session_id = $1 ORDER BY 1, 2",
            session_id,
        )
    return rows


def test_the_catalogue_is_large_and_named_once() -> None:
    names = [attempt.name for attempt in CATALOGUE]
    assert len(names) == len(set(names))
    assert sum(attempt.code is not None for attempt in CATALOGUE) >= 40


@pytest.mark.parametrize("attempt", CATALOGUE, ids=lambda attempt: attempt.name)
async def test_attempt(attempt: Attempt, world: dict[str, Any]) -> None:
    owner, pool = world["owner"], world["pool"]
    agent = ac.CowSession(pool, binding_key=world["key"])
    if attempt.code is None:
        await agent.execute(attempt.sql)
    else:
        with pytest.raises(GuardRefusal) as refused:
            await agent.execute(attempt.sql)
        error = refused.value
        assert error.code == attempt.code, str(error)
        assert error.refused and error.hint and "\n" not in str(error)
    # Production and the other session are as they were; the attempt's own session holds
    # what it wrote, and nothing more.
    assert await _production(owner) == world["base"]
    assert await _session_rows(owner, OTHER_SESSION) == world["other"]
    written = await _session_rows(owner, agent.session_id)
    assert agent.guard is not None
    if attempt.code is not None or not agent.guard.check(attempt.sql).writes:
        assert written == []
    else:
        assert written != []
    async with pool.acquire() as connection:
        assert await probe(AsyncpgExecutor(connection)) == world["clean"]


@rename_only("without a session, a write through the overlay view is refused anyway")
async def test_without_the_guard_the_first_attempt_escapes(
    conn: Any, database: TestDatabase
) -> None:
    """The control: the issue's first finding, unguarded and with agent-cow's settings,
    writes production (what the guard, and the binding, are for)."""
    await make_cow(conn, DDL, "customers", "orders")
    await create_login_role(database, AGENT_ROLE)
    await grant_agent(conn, AGENT_ROLE, ["customers", "orders"])
    dsn = replace_dsn(database.owner_dsn, user=AGENT_ROLE, password=ROLE_PASSWORD)
    async with asyncpg_pool(dsn) as pool:
        [attempt] = [a for a in CATALOGUE if a.name == "update_clears_session_in_where"]
        with pytest.raises(GuardRefusal):
            await ac.CowSession(pool).execute(attempt.sql)
        await ac.CowSession(pool, guard=None).execute(attempt.sql)
    assert await fetch(conn, f"SELECT total FROM {base_table('orders')} WHERE id = 15") == [(0,)]
