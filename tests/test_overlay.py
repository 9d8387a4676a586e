"""The overlay layout: the table stays as it is for production, sessions reach their merged
view through the search_path, and migrations may alter the table (refresh_cow)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.helpers import (
    connect_as,
    create_login_role,
    deploy,
    fetch,
    make_cow,
    new_id,
    session,
)
from tests.postgres_server import TestDatabase

T = "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL DEFAULT 'd', n int);"
SEED = "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);"

FAMILY = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE);
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (10, 1), (20, 2), (21, 2);
"""


async def _overlay(conn: Any, ddl: str = T + SEED, *tables: str) -> Any:
    return await make_cow(conn, ddl, *(tables or ("t",)), layout="overlay")


async def _relation(conn: Any, schema: str, name: str) -> tuple[Any, ...] | None:
    rows = await fetch(
        conn,
        "SELECT c.oid, c.relkind::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        name,
    )
    return rows[0] if rows else None


async def test_the_table_stays_as_it_is_for_production(conn: Any) -> None:
    await conn.execute(T + SEED + "GRANT SELECT ON t TO PUBLIC")
    before = await _relation(conn, "public", "t")
    acl = await conn.fetchval("SELECT relacl::text FROM pg_class WHERE oid = 't'::regclass")
    await _overlay(conn, "")
    assert await _relation(conn, "public", "t") == before
    assert await conn.fetchval("SELECT relacl::text FROM pg_class WHERE oid = 't'::regclass") == acl
    assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass") == 0
    assert (await _relation(conn, "public_cow", "t") or ())[1:] == ("v",)
    # production's own SQL, including what a view cannot take, runs on the table itself
    await conn.execute(
        "INSERT INTO t VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;"
        "ALTER TABLE t ADD COLUMN added int; TRUNCATE t; INSERT INTO t (id) VALUES (7)"
    )
    assert await fetch(conn, "SELECT id, v FROM t") == [(7, "d")]


async def test_a_write_through_the_overlay_without_a_session_is_refused(conn: Any) -> None:
    await _overlay(conn)
    for sql in (
        "INSERT INTO public_cow.t VALUES (9, 'z')",
        "UPDATE public_cow.t SET v = 'z'",
        "DELETE FROM public_cow.t",
    ):
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="needs a session"):
            await conn.execute(sql)
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]


async def test_a_session_reads_and_writes_its_overlay_and_commits_to_the_table(conn: Any) -> None:
    executor = await _overlay(conn)
    sid = new_id()
    async with session(conn, sid):
        assert await conn.fetchval("SHOW search_path") == "public_cow, public"
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1; DELETE FROM t WHERE id = 2")
        await conn.execute("INSERT INTO t (id) VALUES (4)")
        assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [
            (1, "A"),
            (3, "c"),
            (4, "d"),
        ]
    assert await conn.fetchval("SHOW search_path") == '"$user", public'
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, "SELECT id, v FROM t ORDER BY id") == [(1, "A"), (3, "c"), (4, "d")]


async def test_prepared_statements_follow_the_session_path(conn: Any) -> None:
    """asyncpg prepares every statement: one prepared outside a session reads the table, and
    the same statement in a session reads the overlay (a changed search_path replans)."""
    await _overlay(conn)
    read = await conn.prepare("SELECT v FROM t WHERE id = $1")
    assert await read.fetchval(1) == "a"
    async with session(conn, new_id()):
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
        assert await read.fetchval(1) == "A"
    assert await read.fetchval(1) == "a"


async def test_each_overlay_schema_goes_just_before_its_schema(conn: Any) -> None:
    executor = await _overlay(conn)
    await conn.execute(
        "CREATE SCHEMA app; CREATE SCHEMA plain; CREATE TABLE app.t (id int PRIMARY KEY, w text);"
        "CREATE TABLE plain.p (id int); INSERT INTO app.t VALUES (1, 'app')"
    )
    await ac.enable_cow(executor, "t", schema="app", layout="overlay")
    await conn.execute("SET search_path = plain, app, public")
    async with session(conn, new_id()):
        path = await conn.fetchval("SHOW search_path")
        assert path == "plain, app_cow, app, public_cow, public"
        # t is app's (the first schema that has one), through app's overlay
        await conn.execute("UPDATE t SET w = 'session' WHERE id = 1")
        assert await fetch(conn, "SELECT w FROM t") == [("session",)]
    assert await fetch(conn, "SELECT w FROM app.t") == [("app",)]


async def test_a_missing_overlay_view_fails_closed(conn: Any) -> None:
    """A migration's DROP ... CASCADE took the view: the session's `t` would be the table."""
    executor = await _overlay(conn)
    await conn.execute("DROP VIEW public_cow.t")
    with pytest.raises(ac.OverlayMissingError) as raised:
        async with session(conn, new_id()):
            await conn.execute("UPDATE t SET v = 'leak'")
    assert raised.value.tables == ["public.t"]
    assert await fetch(conn, "SELECT v FROM t WHERE id = 1") == [("a",)]
    assert await ac.refresh_cow(executor) == ["t"]
    async with session(conn, new_id()):
        await conn.execute("UPDATE t SET v = 'session'")
    assert await fetch(conn, "SELECT v FROM t WHERE id = 1") == [("a",)]


async def test_an_agent_without_table_privileges_reaches_only_its_overlay(
    conn: Any, database: TestDatabase
) -> None:
    """The deployment the README asks for: the agent role holds privileges on the overlay
    view only; naming the table itself is refused, whatever the search_path."""
    await _overlay(conn)
    await create_login_role(database, "overlay_agent")
    await conn.execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON public_cow.t TO overlay_agent;"
        "REVOKE ALL ON t FROM overlay_agent"
    )
    agent = await connect_as(database, "overlay_agent")
    try:
        async with session(agent, new_id()):
            await agent.execute("UPDATE t SET v = 'mine' WHERE id = 1")
            for sql in (
                "UPDATE public.t SET v = 'prod'",
                "SELECT set_config('search_path', 'public', true); UPDATE t SET v = 'prod'",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with agent.transaction():
                        await agent.execute(sql)
            assert await fetch(agent, "SELECT v FROM t WHERE id = 1") == [("mine",)]
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError):
            await agent.execute("UPDATE public_cow.t SET v = 'no session'")
    finally:
        await agent.close()
    assert await fetch(conn, "SELECT v FROM t ORDER BY id") == [("a",), ("b",), ("c",)]


@pytest.mark.parametrize("order", ["together", "parent first", "child first"])
async def test_a_cascade_reaches_the_childs_overlay_not_the_table(conn: Any, order: str) -> None:
    """Tables joined by a foreign key name each other in their triggers: enabling one
    renders its neighbours' again, so the parent's cascade goes to the child's overlay."""
    executor = await deploy(conn)
    await conn.execute(FAMILY)
    if order == "together":
        await ac.enable_cow_schema(executor, layout="overlay")
    else:
        first, second = ("parent", "child") if order == "parent first" else ("child", "parent")
        await ac.enable_cow(executor, first, layout="overlay")
        await ac.enable_cow(executor, second, layout="overlay")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("DELETE FROM parent WHERE id = 2")
        assert await fetch(conn, "SELECT id FROM child ORDER BY id") == [(10,)]
    assert await fetch(conn, "SELECT id FROM child ORDER BY id") == [(10,), (20,), (21,)]
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id FROM child ORDER BY id") == [(10,)]
    assert await fetch(conn, "SELECT id FROM parent") == [(1,)]


async def test_disabling_the_child_stops_the_parents_cascade_at_the_table(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute(FAMILY)
    await ac.enable_cow_schema(executor, layout="overlay")
    await ac.disable_cow(executor, "child")
    with pytest.raises(asyncpg.FeatureNotSupportedError, match="not COW-enabled"):
        async with session(conn, new_id()):
            await conn.execute("DELETE FROM parent WHERE id = 2")
    assert await fetch(conn, "SELECT count(*) FROM child") == [(3,)]


async def test_disable_takes_the_overlay_schema_with_its_last_table(conn: Any) -> None:
    executor = await _overlay(conn, T + "CREATE TABLE u (id int PRIMARY KEY);", "t", "u")
    before = await _relation(conn, "public", "t")
    await ac.disable_cow(executor, "t")
    assert await _relation(conn, "public_cow", "u") is not None
    await ac.disable_cow(executor, "u")
    assert await fetch(conn, "SELECT nspname FROM pg_namespace WHERE nspname = 'public_cow'") == []
    assert await _relation(conn, "public", "t") == before


async def test_a_schema_named_like_the_overlay_that_is_not_ours_is_refused(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute(T + "CREATE SCHEMA public_cow")
    with pytest.raises(ac.UnsupportedTableError, match="public_cow exists and is not agentcow"):
        await ac.enable_cow(executor, "t", layout="overlay")
    with pytest.raises(ValueError, match="layout must be one of rename, overlay"):
        await ac.enable_cow(executor, "t", layout="sideways")  # type: ignore[arg-type]
    assert await fetch(conn, "SELECT count(*) FROM agentcow.cow_tables") == [(0,)]


# ---------------------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------------------


async def test_a_column_added_while_a_session_holds_changes_then_commit(conn: Any) -> None:
    """The end-to-end migration: ADD COLUMN ... DEFAULT while a session holds an update, an
    insert and a delete; the session keeps working before the refresh (it does not see the
    column), sees it after, and its commit loses neither its changes nor production's."""
    executor = await _overlay(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(
            "UPDATE t SET v = 'A' WHERE id = 1; INSERT INTO t (id, v) VALUES (9, 'new');"
            "DELETE FROM t WHERE id = 3"
        )
    await conn.execute("ALTER TABLE t ADD COLUMN note text NOT NULL DEFAULT 'n'")
    await conn.execute("UPDATE t SET note = 'prod-' || id")
    async with session(conn, sid):
        assert await fetch(conn, "SELECT id, v, n FROM t ORDER BY id") == [
            (1, "A", 1),
            (2, "b", 2),
            (9, "new", None),
        ]
        await conn.execute("UPDATE t SET n = 20 WHERE id = 2")
    assert await ac.refresh_cow(executor) == ["t"]
    assert await ac.refresh_cow(executor) == []
    async with session(conn, sid):
        assert await fetch(conn, "SELECT id, v, n, note FROM t ORDER BY id") == [
            (1, "A", 1, "prod-1"),
            (2, "b", 20, "prod-2"),
            (9, "new", None, "n"),
        ]
        await conn.execute("UPDATE t SET note = 'agent' WHERE id = 1")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id, v, n, note FROM t ORDER BY id") == [
        (1, "A", 1, "agent"),
        (2, "b", 20, "prod-2"),
        (9, "new", None, "n"),
    ]


async def test_a_session_commits_before_the_refresh_with_the_columns_it_knows(conn: Any) -> None:
    executor = await _overlay(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1; INSERT INTO t (id) VALUES (9)")
    await conn.execute("ALTER TABLE t ADD COLUMN note text DEFAULT 'n'")
    await conn.execute("UPDATE t SET note = 'prod' WHERE id = 1")
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id, v, note FROM t ORDER BY id") == [
        (1, "A", "prod"),
        (2, "b", "n"),
        (3, "c", "n"),
        (9, "d", "n"),
    ]


async def test_dropping_and_retyping_columns_in_a_cow_migration(conn: Any) -> None:
    executor = await _overlay(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
    # the view reads n: PostgreSQL refuses to drop it while the overlay stands
    with pytest.raises(asyncpg.DependentObjectsStillExistError):
        await conn.execute("ALTER TABLE t DROP COLUMN n")
    # a pending version holds n: the refresh is refused, naming the session; nothing changed
    with pytest.raises(ac.PendingChangesError, match=str(sid)):
        async with conn.transaction(), ac.cow_migration(executor):
            await conn.execute("ALTER TABLE t DROP COLUMN n")
    assert await fetch(conn, "SELECT n FROM t WHERE id = 1") == [(1,)]
    await ac.discard_cow_session_schema(executor, sid)
    await conn.execute("GRANT SELECT ON public_cow.t TO PUBLIC")
    async with conn.transaction(), ac.cow_migration(executor):
        await conn.execute("ALTER TABLE t DROP COLUMN n; ALTER TABLE t ALTER COLUMN id TYPE bigint")
    assert await ac.refresh_cow(executor) == []
    acl = await conn.fetchval(
        "SELECT relacl::text FROM pg_class WHERE oid = 'public_cow.t'::regclass"
    )
    assert "=r/" in acl
    async with session(conn, new_id()):
        await conn.execute("UPDATE t SET v = 'S' WHERE id = 2")
        assert await fetch(conn, "SELECT id, v FROM t ORDER BY id -- retyped") == [
            (1, "a"),
            (2, "S"),
            (3, "c"),
        ]


async def test_refresh_rebuilds_the_checks_of_deferrable_keys(conn: Any) -> None:
    """A deferrable key is checked by constraint triggers on the change tables (the child's
    and the parent's): the refresh makes them again for the new overlays."""
    executor = await _overlay(
        conn,
        "CREATE TABLE parent (id int PRIMARY KEY);"
        "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent DEFERRABLE);"
        "INSERT INTO parent VALUES (1)",
        "parent",
        "child",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO child VALUES (10, 1)")
    await conn.execute("ALTER TABLE parent ADD COLUMN a int; ALTER TABLE child ADD COLUMN b int")
    assert await ac.refresh_cow(executor) == ["child", "parent"]
    async with session(conn, sid):
        assert await fetch(conn, "SELECT id, parent_id, b FROM child") == [(10, 1, None)]
        for orphan in ("INSERT INTO child VALUES (11, 9)", "DELETE FROM parent"):
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                async with conn.transaction():
                    await conn.execute(orphan)


async def test_a_dropped_column_the_overlay_reads_is_a_clear_error_until_refresh(
    conn: Any,
) -> None:
    executor = await _overlay(conn)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
    await conn.execute("ALTER TABLE t RENAME COLUMN n TO m")
    with pytest.raises(ac.StaleOverlayError, match="column n is gone"):
        await ac.commit_cow_session_schema(executor, sid)
    with pytest.raises(ac.PendingChangesError):
        await ac.refresh_cow(executor)
    assert await fetch(conn, "SELECT id, v FROM t WHERE id = 1") == [(1, "a")]


# ---------------------------------------------------------------------------------------
# Views the user defined over the tables
# ---------------------------------------------------------------------------------------

VIEWS = """
CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t);
CREATE VIEW big AS SELECT id, v FROM t WHERE n > 1;
CREATE VIEW counted WITH (security_barrier) AS
    SELECT t.id, count(u.id) AS us FROM t LEFT JOIN u ON u.t_id = t.id GROUP BY t.id;
CREATE VIEW shouted AS SELECT upper(v) AS up FROM big;
GRANT SELECT ON big TO PUBLIC;
"""


async def _views_of(conn: Any, schema: str) -> list[tuple[Any, ...]]:
    return await fetch(
        conn,
        "SELECT c.relname::text, c.reloptions::text FROM pg_class c "
        "WHERE c.relnamespace = to_regnamespace($1) AND c.relkind = 'v' ORDER BY 1",
        schema,
    )


async def test_views_over_overlay_tables_get_twins_a_session_reads_through(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute(T + SEED + VIEWS)
    await ac.enable_cow_schema(executor, layout="overlay")
    assert await _views_of(conn, "public_cow") == [
        ("big", None),
        ("counted", "{security_barrier=true}"),
        ("shouted", None),
        ("t", "{security_barrier=true}"),
        ("u", "{security_barrier=true}"),
    ]
    assert "=r/" in await conn.fetchval(
        "SELECT relacl::text FROM pg_class WHERE oid = 'public_cow.big'::regclass"
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET n = 5 WHERE id = 1; INSERT INTO u VALUES (1, 2)")
        assert await fetch(conn, "SELECT id, v FROM big ORDER BY id") == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
        ]
        assert await fetch(conn, "SELECT id, us FROM counted ORDER BY id") == [
            (1, 0),
            (2, 1),
            (3, 0),
        ]
        assert await fetch(conn, "SELECT up FROM shouted ORDER BY 1") == [("A",), ("B",), ("C",)]
        # a simple view's twin is updatable: the write lands in the session
        await conn.execute("UPDATE big SET v = 'via view' WHERE id = 2")
        assert await fetch(conn, "SELECT v FROM t WHERE id = 2") == [("via view",)]
    assert await fetch(conn, "SELECT id, v FROM big ORDER BY id") == [(2, "b"), (3, "c")]
    assert await fetch(conn, "SELECT v FROM t WHERE id = 2") == [("b",)]


async def test_twins_follow_enable_disable_and_migrations(conn: Any) -> None:
    executor = await deploy(conn)
    await conn.execute(T + SEED + VIEWS)
    await ac.enable_cow(executor, "u", layout="overlay")
    # counted reads u: its twin reads u's overlay (and t itself, not yet COW-enabled)
    assert [v for v, _ in await _views_of(conn, "public_cow")] == ["counted", "u"]
    await ac.enable_cow(executor, "t", layout="overlay")
    assert [v for v, _ in await _views_of(conn, "public_cow")] == [
        "big",
        "counted",
        "shouted",
        "t",
        "u",
    ]
    await conn.execute("CREATE VIEW later AS SELECT id FROM t")
    assert await ac.refresh_cow(executor) == []
    assert "later" in [v for v, _ in await _views_of(conn, "public_cow")]
    async with conn.transaction(), ac.cow_migration(executor):
        await conn.execute("ALTER TABLE t DROP COLUMN n CASCADE")  # big and shouted go too
    assert [v for v, _ in await _views_of(conn, "public_cow")] == ["counted", "later", "t", "u"]
    async with session(conn, new_id()):
        await conn.execute("DELETE FROM t WHERE id = 3")
        assert await fetch(conn, "SELECT id FROM later ORDER BY id") == [(1,), (2,)]
    await ac.disable_cow(executor, "t", discard_changes=True)
    assert [v for v, _ in await _views_of(conn, "public_cow")] == ["counted", "u"]
    await ac.disable_cow(executor, "u")
    assert await _views_of(conn, "public_cow") == []
    assert [v for v, _ in await _views_of(conn, "public")] == ["counted", "later"]


async def test_a_twin_binds_the_functions_its_view_binds(conn: Any, database: TestDatabase) -> None:
    """An agent that may create objects in public makes a closer match for a function the
    view calls: the twin, made after, still calls the view's (PostgreSQL prints it qualified
    when the path would find another)."""
    await conn.execute(
        "CREATE TABLE w (id int PRIMARY KEY, v varchar NOT NULL); INSERT INTO w VALUES (1, 'a');"
        "CREATE VIEW loud AS SELECT id, upper(v) AS up FROM w"
    )
    await create_login_role(database, "twin_agent")
    await conn.execute("GRANT CREATE ON SCHEMA public TO twin_agent")
    agent = await connect_as(database, "twin_agent")
    try:
        await agent.execute(
            "CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql "
            "AS $$ SELECT 'pwned' $$"
        )
        executor = await deploy(conn)
        await ac.enable_cow(executor, "w", layout="overlay")
        async with session(conn, new_id()):
            await conn.execute("UPDATE w SET v = 'b' WHERE id = 1")
            assert await fetch(conn, "SELECT up FROM loud") == [("B",)]
        # nor may the agent put objects of its own into the overlay schema
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await agent.execute("CREATE VIEW public_cow.sneaky AS SELECT 1")
    finally:
        await agent.close()


async def test_refresh_names_tables_that_are_not_overlay_tables(conn: Any) -> None:
    executor = await _overlay(conn, T + "CREATE TABLE r (id int PRIMARY KEY);", "t")
    await ac.enable_cow(executor, "r")  # the rename layout: nothing to refresh
    for tables in (["r"], ["nope", "t"]):
        with pytest.raises(ac.UnsupportedTableError, match="not COW-enabled in the overlay"):
            await ac.refresh_cow(executor, tables=tables)
    assert await ac.refresh_cow(executor, tables=["t"]) == []


async def test_enabling_again_in_the_other_layout_is_refused(conn: Any) -> None:
    executor = await _overlay(conn)
    await ac.enable_cow(executor, "t", layout="overlay")  # the same layout: a no-op
    with pytest.raises(ac.UnsupportedTableError, match="in the overlay layout already"):
        await ac.enable_cow(executor, "t")
    await ac.disable_cow(executor, "t")
    await ac.enable_cow(executor, "t")
    with pytest.raises(ac.UnsupportedTableError, match="in the rename layout already"):
        await ac.enable_cow(executor, "t", layout="overlay")
    assert await fetch(conn, "SELECT overlay_schema FROM agentcow.cow_tables") == [(None,)]
