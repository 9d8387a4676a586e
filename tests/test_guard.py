"""The SQL guard: what it refuses (with which reason), what it lets through — and that what
it lets through is valid SQL that runs on PostgreSQL, inside the session, through every
driver's parameter style; the guard read from the catalog in both layouts."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.agent import GuardRefusal, SqlGuard, guard_from_catalog
from agentcow.agent.guard import TableRef, sql_text
from agentcow.agent.sql_lexer import LexError, tokenize
from agentcow.errors import GuardSetupError
from agentcow.shadow import ShadowDB
from tests.conftest import TestDatabase
from tests.helpers import LAYOUT, OVERLAY, base_table, deploy, make_cow
from tests.scopes_support import asyncpg_pool, sqlalchemy_url

GUARD = SqlGuard(cow_tables=["t", "u"], read_only_tables=["lookup"], functions=["app.tax"])

DDL = """
CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, j jsonb, at timestamptz DEFAULT now());
CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t);
CREATE TABLE lookup (id int PRIMARY KEY, name text);
INSERT INTO t VALUES (1, 'one', 1.5, '{"a": {"b": 1}}'), (2, 'two', 2, '[1, 2]');
INSERT INTO lookup VALUES (1, 'uno');
CREATE SCHEMA app;
CREATE FUNCTION app.tax(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1.2';
"""

#: Statements the guard lets through, and that run on the tables above (in a session).
ALLOWED = [
    "SELECT * FROM t",
    "select id, v from t where id = 1",
    "TABLE t",
    "VALUES (1, 'a'), (2, 'b')",
    "(SELECT id FROM t) UNION ALL (SELECT id FROM u) ORDER BY 1",
    "SELECT t.v, l.name FROM t JOIN lookup l USING (id)",
    "SELECT * FROM t WHERE id IN (SELECT t_id FROM u) OR EXISTS (SELECT 1 FROM lookup)",
    "SELECT count(*), sum(n), avg(n), min(v), max(v), string_agg(v, ',' ORDER BY v) FROM t",
    "SELECT id, row_number() OVER w, lag(v) OVER w FROM t WINDOW w AS (ORDER BY id)",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n) FROM t",
    "SELECT array_agg(id) FILTER (WHERE n > 1) FROM t",
    "SELECT v, count(*) FROM t GROUP BY ROLLUP (v) HAVING count(*) > 0",
    "SELECT j -> 'a' ->> 'b', j #>> '{a,b}', j @> '{\"a\": {}}', jsonb_typeof(j) FROM t",
    "SELECT jsonb_build_object('id', id) || jsonb_build_object('v', v) FROM t",
    "SELECT coalesce(v, 'x'), nullif(v, 'one'), greatest(1, 2), least(n, 3) FROM t",
    "SELECT upper(v), lower(v), length(v), substring(v from 1 for 2), position('o' in v) FROM t",
    "SELECT trim(both ' ' from v), split_part(v, 'n', 1), replace(v, 'o', '0') FROM t",
    "SELECT v ~ '^o', v LIKE 'o%', v ILIKE 'O%', v SIMILAR TO 'o%' FROM t",
    "SELECT now(), current_date, current_timestamp, date_trunc('day', at), extract(year from at)"
    " FROM t",
    "SELECT at + interval '1 day', at::date, CAST(n AS int), n::numeric(10, 2) FROM t",
    "SELECT make_interval(days => 2), to_char(now(), 'YYYY'), age(now(), at) FROM t",
    "SELECT gen_random_uuid() IS NOT NULL, random() < 2",
    "SELECT date(at), text(id), int8(id), float8(n), bool('t') FROM t",
    "SELECT DISTINCT ON (v) * FROM t ORDER BY v, id DESC NULLS LAST FETCH FIRST 5 ROWS ONLY",
    "SELECT count(*) FILTER (WHERE v = 'one'), mode() WITHIN GROUP (ORDER BY v) FROM t",
    "SELECT current_timestamp AT TIME ZONE 'UTC', now()::timestamp(0)",
    "/* a comment first */ SELECT id FROM t WHERE id = 1 -- and one after",
    "SELECT unnest(ARRAY[1, 2]), ARRAY(SELECT id FROM t), cardinality(ARRAY[1])",
    "SELECT * FROM unnest(ARRAY[1, 2]) AS x(i)",
    "SELECT CASE WHEN n > 1 THEN 'big' ELSE 'small' END FROM t",
    "SELECT app.tax(n) FROM t",
    "SELECT pg_catalog.lower(v) FROM t",
    "SELECT 'set_config(1)' AS text, $$pg_sleep(1)$$ AS dollar, E'\\x41' AS escaped",
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3) SELECT * FROM r",
    "WITH x AS (SELECT id FROM t) SELECT * FROM x JOIN u ON u.t_id = x.id",
    "INSERT INTO t (id, v) VALUES (3, 'three') RETURNING id, v, at IS NOT NULL",
    "INSERT INTO t SELECT id + 10, v FROM t",
    "INSERT INTO t (id) SELECT id + 20 FROM lookup",
    "INSERT INTO u VALUES (1, 1)",
    "INSERT INTO public.u (id, t_id) VALUES (2, 1)",
    "INSERT INTO t (id, at) VALUES (4, DEFAULT) RETURNING *",
    "UPDATE t SET v = upper(v), n = n * 2 WHERE id = 1 RETURNING *",
    "UPDATE t SET v = l.name FROM lookup l WHERE l.id = t.id",
    "UPDATE t SET (v, n) = (SELECT 'x', 1) WHERE id = 2",
    "DELETE FROM t WHERE id = 2 RETURNING *",
    "DELETE FROM u USING lookup WHERE lookup.id = u.id",
    "WITH d AS (DELETE FROM t WHERE id = 2 RETURNING id) INSERT INTO t SELECT id + 100 FROM d",
    "SELECT 1;",
    "SELECT 1; -- a comment after",
    "SELECT id FROM t /* ; DELETE FROM t */ WHERE id = 1",
]

#: (statement, reason code) the guard refuses; the catalogue of escapes has the hostile ones.
REFUSED = [
    ("", "empty_statement"),
    ("SELECT 1; SELECT 2", "multiple_statements"),
    ("SELECT 1 FROM", "parse_error"),
    ("SELECT 'unterminated", "parse_error"),
    ("SELECT 1 /* unterminated", "parse_error"),
    ("SELECT $a$ unterminated", "parse_error"),
    ("SELECT \x00", "parse_error"),
    ('SELECT U&"\\0074" FROM t', "unicode_escape"),
    ("SET search_path = pg_temp, public", "setting"),
    ("SHOW ALL", "setting"),
    ("START TRANSACTION", "transaction_control"),
    ("END", "transaction_control"),
    ("RELEASE SAVEPOINT s", "transaction_control"),
    ("CREATE TABLE x (id int)", "statement_not_allowed"),
    ("ALTER TABLE t ADD COLUMN x int", "statement_not_allowed"),
    (
        "MERGE INTO t USING lookup ON false WHEN NOT MATCHED THEN DO NOTHING; x",
        "multiple_statements",
    ),
    ("SELECT id INTO TEMP x FROM t", "select_into"),
    ("SELECT * FROM t FOR NO KEY UPDATE", "locking_clause"),
    ("SELECT * FROM t FOR SHARE NOWAIT", "locking_clause"),
    ("SELECT setseed(0.1)", "function_not_allowed"),
    ("SELECT version()", "function_not_allowed"),
    ("SELECT to_regclass('t')", "function_not_allowed"),
    ("SELECT has_table_privilege('t', 'SELECT')", "function_not_allowed"),
    ("SELECT currval('s')", "function_not_allowed"),
    ("SELECT app.other(1)", "function_not_allowed"),
    ("SELECT tax(1)", "function_not_allowed"),
    ("SELECT a.b.lower(v) FROM t", "function_not_allowed"),
    ("SELECT * FROM ROWS FROM (generate_series(1, 2))", "function_not_allowed"),
    ("SELECT xmlelement(name a)", "function_not_allowed"),
    ("SELECT id ## 1 FROM t", "parse_error"),
    ("SELECT id OPERATOR(public.+) 1 FROM t", "operator_not_allowed"),
    ("SELECT 'x'::regproc", "cast_not_allowed"),
    ("SELECT CAST('t' AS regclass)", "cast_not_allowed"),
    ("SELECT * FROM pg_catalog.pg_roles", "system_catalog"),
    ("SELECT * FROM pg_locks", "system_catalog"),
    ("SELECT * FROM pg_toast.x", "system_catalog"),
    ("SELECT * FROM t_base", "kit_object"),
    ("SELECT * FROM u_changes", "kit_object"),
    ("SELECT * FROM agentcow.cow_tables", "kit_object"),
    ("SELECT * FROM public_cow.t", "kit_object"),
    ("SELECT * FROM other.t", "table_not_allowed"),
    ("SELECT * FROM v", "table_not_allowed"),
    ("UPDATE lookup SET name = 'x'", "read_only_table"),
    ("INSERT INTO lookup VALUES (2, 'dos')", "read_only_table"),
    ("WITH d AS (DELETE FROM lookup RETURNING *) SELECT * FROM d", "read_only_table"),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "table_not_allowed"),
    ("WITH t_base AS (SELECT 1) UPDATE t_base SET x = 1", "kit_object"),
    # Names and clauses checked on PostgreSQL's tokens too, wherever they stand.
    ("SELECT * FROM t_base *", "kit_object"),
    ("SELECT * FROM (t JOIN u_changes ON true)", "kit_object"),
    ('SELECT "agentcow".x FROM t', "kit_object"),
    ("SELECT x::pg_catalog.text FROM t", "system_catalog"),
    ("SELECT 1 FROM t OFFSET 0 FOR UPDATE OF t", "locking_clause"),
    ("SELECT * FROM t FOR READ ONLY", "parse_error"),
    ("SELECT * FROM t INTO x", "parse_error"),
    ("SELECT treat(v AS text) FROM t", "function_not_allowed"),
    ("SELECT * FROM json_table('[]', '$' COLUMNS (a int PATH '$'))", "function_not_allowed"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed(sql: str) -> None:
    checked = GUARD.check(sql)
    assert checked.kind in ("select", "insert", "update", "delete", "merge")
    assert checked.writes <= checked.tables


@pytest.mark.parametrize(("sql", "code"), REFUSED, ids=[code for _, code in REFUSED])
def test_refused(sql: str, code: str) -> None:
    with pytest.raises(GuardRefusal) as refused:
        GUARD.check(sql)
    error = refused.value
    assert error.code == code, str(error)
    assert error.hint and error.sqlstate == "42501"
    assert str(error).startswith(f"refused by the SQL guard ({code}): ") and "\n" not in str(error)


def test_what_the_guard_reports() -> None:
    checked = GUARD.check("WITH x AS (SELECT * FROM lookup) UPDATE t SET v = x.name FROM x")
    assert (checked.kind, checked.tables, checked.writes) == (
        "update",
        {TableRef(None, "t"), TableRef(None, "lookup")},
        {TableRef(None, "t")},
    )
    assert GUARD.check("SELECT * FROM public.t").tables == {TableRef("public", "t")}
    with pytest.raises(GuardRefusal) as refused:
        GUARD.check("SELECT pg_sleep(1) FROM t")
    error = refused.value
    assert (error.code, error.refused) == ("function_not_allowed", "pg_sleep(1)")
    assert "pg_sleep" in error.message


def test_names_fold_as_postgresql_folds_them() -> None:
    assert GUARD.check('SELECT * FROM "t" JOIN T ON true').tables == {TableRef(None, "t")}
    with pytest.raises(GuardRefusal, match="table_not_allowed"):
        GUARD.check('SELECT * FROM "T"')
    mixed = SqlGuard(cow_tables=["Orders"], schemas=())
    assert mixed.check('SELECT * FROM "Orders"').tables == {TableRef(None, "Orders")}
    with pytest.raises(GuardRefusal, match="table_not_allowed"):
        mixed.check("SELECT * FROM Orders")  # folds to orders
    with pytest.raises(GuardRefusal, match="table_not_allowed"):
        mixed.check('SELECT * FROM public."Orders"')  # schemas=(): bare names only


def test_configuration() -> None:
    with pytest.raises(GuardSetupError, match="base or change table"):
        SqlGuard(cow_tables=["t"], read_only_tables=["t_base"])
    qualified = SqlGuard(cow_tables=["sales.orders"], functions=["generate_series"])
    assert qualified.check("SELECT * FROM sales.orders").tables == {TableRef("sales", "orders")}
    with pytest.raises(GuardRefusal, match="table_not_allowed"):
        qualified.check("SELECT * FROM orders")
    with pytest.raises(GuardRefusal, match="kit_object"):
        qualified.check("SELECT * FROM sales_cow.orders")
    assert qualified.check("SELECT * FROM generate_series(1, 3)").kind == "select"
    # A name that only looks like a kit table is fine when it is configured.
    assert SqlGuard(cow_tables=["knowledge_base"]).check("TABLE knowledge_base").kind == "select"


def test_placeholders_of_every_driver() -> None:
    for sql in (
        "SELECT * FROM t WHERE id = $1 AND v = $2",
        "SELECT * FROM t WHERE id = %s AND v=%s",
        "SELECT * FROM t WHERE id = %(id)s AND v=%(v)s",
        "SELECT * FROM t WHERE id = :id AND v=:v",
        "SELECT * FROM t WHERE v LIKE 'a%%' AND id = ANY(%s)",
    ):
        assert GUARD.check(sql).tables == {TableRef(None, "t")}
    # A placeholder's name is a plain name: it hides no call.
    with pytest.raises(GuardRefusal):
        GUARD.check("SELECT 1 %(pg_sleep(1)s)")


def test_statement_objects() -> None:
    assert sql_text("SELECT 1") == "SELECT 1"
    assert sql_text(sqlalchemy.text("SELECT :x")) == "SELECT :x"
    table = sqlalchemy.table("t", sqlalchemy.column("id"))
    core = sql_text(sqlalchemy.select(table).where(table.c.id == 1))
    assert GUARD.check(core).tables == {TableRef(None, "t")}
    with pytest.raises(GuardRefusal, match="not_sql_text"):
        sql_text(b"SELECT 1")


# ---------------------------------------------------------------------------------------
# Against PostgreSQL: what the guard allows runs, in the session
# ---------------------------------------------------------------------------------------


async def test_allowed_statements_run_in_a_session(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, DDL, "t", "u")
    guard = SqlGuard(
        cow_tables=["t", "u"],
        read_only_tables=["lookup"],
        functions=["app.tax"],
        schemas=() if OVERLAY else ("public",),
    )
    before = await conn.fetch(f"SELECT * FROM {base_table('t')} ORDER BY id")
    async with asyncpg_pool(database.owner_dsn) as pool:
        agent = ac.CowSession(pool, guard=guard)
        for sql in ALLOWED:
            if not (OVERLAY and "public." in sql):  # there, public.u is the real table
                await agent.execute(sql)
        assert (await agent.execute("SELECT * FROM t WHERE id = $1", [3])).rowcount == 1
    async with await psycopg.AsyncConnection.connect(database.owner_dsn) as connection:
        agent = ac.CowSession(connection, session_id=agent.session_id, guard=guard)
        assert await agent.query("SELECT v FROM t WHERE id = %(id)s", {"id": 3}) == [{"v": "three"}]
    assert await conn.fetch(f"SELECT * FROM {base_table('t')} ORDER BY id") == before


async def test_guard_from_catalog(conn: Any) -> None:
    await make_cow(conn, DDL, "t", "u")
    guard = await guard_from_catalog(AsyncpgExecutor(conn), read_only_tables=["lookup"])
    assert guard.check("SELECT * FROM t JOIN u ON u.t_id = t.id JOIN lookup USING (id)")
    if OVERLAY:  # public.t is the real table: only the bare name reaches the overlay
        with pytest.raises(GuardRefusal, match="table_not_allowed"):
            guard.check("SELECT * FROM public.t")
    else:
        assert guard.check("DELETE FROM public.t").writes == {TableRef("public", "t")}
    with pytest.raises(GuardRefusal, match="read_only_table"):
        guard.check("DELETE FROM lookup")
    with pytest.raises(GuardRefusal, match="table_not_allowed"):
        (await guard_from_catalog(AsyncpgExecutor(conn))).check("SELECT * FROM lookup")


async def test_shadowdb_guards_the_agents_sql(conn: Any, database: TestDatabase) -> None:
    """ShadowDB's execute and query are the agent's entry too: guarded, unless told not to."""
    await deploy(conn)
    await conn.execute(
        "CREATE TABLE tasks (id int PRIMARY KEY, user_id int NOT NULL, title text);"
        "INSERT INTO tasks VALUES (1, 42, 'mine'), (2, 99, 'theirs')"
    )
    engine = sqlalchemy.create_engine(sqlalchemy_url(database.owner_dsn, "psycopg"))
    try:
        with ShadowDB(engine, tables=["tasks"], tenant_id=42, layout=LAYOUT) as sandbox:
            assert sandbox.query("SELECT title FROM tasks") == [{"title": "mine"}]
            sandbox.execute("UPDATE tasks SET title = :t WHERE id = :id", {"t": "x", "id": 1})
            for sql, code in (
                ("SELECT set_config('app.session_id', '', true)", "function_not_allowed"),
                ("SELECT * FROM tasks_base", "kit_object"),
                ("COMMIT; DELETE FROM tasks", "multiple_statements"),
            ):
                with pytest.raises(GuardRefusal, match=code):
                    sandbox.execute(sql)
            if OVERLAY:  # as the owner, public.tasks would be the real table
                with pytest.raises(GuardRefusal, match="table_not_allowed"):
                    sandbox.query("SELECT * FROM public.tasks")
        with ShadowDB(engine, tables=["tasks"], tenant_id=42, layout=LAYOUT, guard=False) as raw:
            assert raw.guard is None
            assert raw.query("SELECT pg_backend_pid() > 0 AS ok") == [{"ok": True}]
    finally:
        engine.dispose()
    assert await conn.fetch(f"SELECT * FROM {base_table('tasks')} ORDER BY id") == [
        (1, 42, "mine"),
        (2, 99, "theirs"),
    ]


async def test_guard_from_catalog_needs_standard_strings(conn: Any, database: TestDatabase) -> None:
    """With standard_conforming_strings off, 'a\\' does not end where the guard reads its
    end: the guard is not set up."""
    await make_cow(conn, DDL, "t")
    await conn.execute(f'ALTER DATABASE "{database.name}" SET standard_conforming_strings = off')
    async with asyncpg_pool(database.owner_dsn) as pool:
        with pytest.raises(GuardSetupError, match="standard_conforming_strings"):
            await ac.CowSession(pool).execute("SELECT 1")
        assert (await ac.CowSession(pool, guard=None).execute("SELECT 1")).rows == [(1,)]


#: Texts whose statements PostgreSQL counts as the guard's lexer must (strings, dollar
#: quotes, nested comments, \r ending a -- comment, identifiers with $, E'' escapes).
LEXER_CASES = [
    ("SELECT 1; SELECT 2", 2),
    ("SELECT 'a;b'", 1),
    ("SELECT $$;$$; SELECT 2", 2),
    ("SELECT $a$ $$ ; $$ $a$", 1),
    ("SELECT $a$ ; $A$ ; $a$", 1),
    ("SELECT 1 /* /* ; */ ; */", 1),
    ("SELECT 1 /*/ ; */", 1),
    ("SELECT 1 --\r; SELECT 2", 2),
    ("SELECT 1 -- ;\n+ 1", 1),
    ("SELECT 1+--;\n2", 1),
    ("SELECT E'\\';'; SELECT 2", 2),
    ("SELECT 'a\\'; SELECT 2", 2),
    ("SELECT e'\\\\'; SELECT 2", 2),
    ("SELECT 'it''s;'", 1),
    ("SELECT 1 AS a$b$; SELECT 2", 2),
    ("SELECT $a$ unclosed; SELECT 2", -1),
    ('SELECT 1 AS "a;""b"', 1),
    ("SELECT 1 AS x1; SELECT $1$", -1),  # a parameter, then a lone $
]


@pytest.mark.parametrize(("text", "count"), LEXER_CASES)
async def test_the_lexer_counts_statements_as_postgresql(
    database: TestDatabase, text: str, count: int
) -> None:
    try:
        read = tokenize(text)
        ours = 1 + len(read.further)
    except LexError:
        ours = -1
    async with await psycopg.AsyncConnection.connect(database.owner_dsn) as connection:
        try:
            cursor = await connection.execute(text.encode())  # simple protocol, as written
            theirs = 1
            while cursor.nextset():
                theirs += 1
        except psycopg.Error:
            theirs = -1
    assert ours == theirs == count


#: Pieces of text that open and close strings, quoted identifiers, dollar quotes and
#: comments as PostgreSQL's lexer does or does not; the call hides among them.
HIDDEN_CALL = "nextval('marker')"
PIECES = [
    "'", "''", "\\", "E'", "e'", "$$", "$a$", "$1", "--", "\n", "\r", "/*", "*/", '"', '""',
    ";", " ", ",", "1", "(", ")", "U&", "a$", "x", " FROM t", "::text", "||", "-", "#",
    HIDDEN_CALL,
]  # fmt: skip


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=14))
async def test_what_passes_runs_one_statement_and_never_a_hidden_call(
    database: TestDatabase, pieces: list[str]
) -> None:
    """Random texts: whatever the guard lets through, PostgreSQL runs as one statement,
    and the call hidden in it (nextval, which no rollback undoes) never runs."""
    text = "SELECT " + "".join(pieces)
    try:
        GUARD.check(text)
    except GuardRefusal:
        event("refused")
        return
    event("let through")
    async with await psycopg.AsyncConnection.connect(database.owner_dsn) as connection:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS t (id int); CREATE SEQUENCE IF NOT EXISTS marker;"
            "SELECT setval('marker', 1, false)"
        )
        await connection.commit()
        try:
            cursor = await connection.execute(text.encode())  # simple protocol, as written
            statements = 1
            while cursor.nextset():
                statements += 1
            assert statements == 1, text
        except psycopg.Error:
            await connection.rollback()
        cursor = await connection.execute("SELECT is_called FROM marker")
        assert await cursor.fetchone() == (False,), text
