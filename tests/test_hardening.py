"""Role hardening (agentcow.hardening) with real login roles: what a hardened agent can and
cannot do, what a hardened reviewer can, and one seeded excess privilege per finding kind."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import pytest

import agentcow as ac
from agentcow.adapters.psycopg import PsycopgSyncExecutor
from agentcow.binding import create_binding_key
from agentcow.blocking import run_blocking
from agentcow.errors import UnknownRoleError
from agentcow.hardening import (
    HardeningReport,
    PrivilegeFinding,
    check_cow_privileges,
    harden_cow_schema,
)
from agentcow.templates import render
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_table,
    changes_table,
    connect_as,
    cow_view,
    create_login_role,
    ex,
    fetch,
    make_cow,
    new_id,
    on_shared_catalog,
    session,
)
from tests.postgres_server import TestDatabase

DDL = """
CREATE TABLE parents (id serial PRIMARY KEY, v text);
CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents ON DELETE CASCADE);
CREATE TABLE ref (code text PRIMARY KEY, n serial);
INSERT INTO parents (v) SELECT 'p' || g FROM generate_series(1, 5) g;
INSERT INTO children SELECT g, g FROM generate_series(1, 5) g;
INSERT INTO ref VALUES ('a');
"""


def role_name(what: str) -> str:
    """Roles are the server's, not the database's: one name per layout (both layouts run
    at once on one server)."""
    return f"hd_{LAYOUT}_{what}"


async def fresh_role(database: TestDatabase, role: str) -> None:
    """A login role with no attributes, settings or memberships left by an earlier test."""
    await create_login_role(database, role)
    su = await asyncpg.connect(database.superuser_dsn)
    try:
        await on_shared_catalog(su, f'ALTER ROLE "{role}" RESET ALL')
        for (group,) in await su.fetch(
            "SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = $1::regrole",
            role,
        ):
            await on_shared_catalog(su, f'REVOKE {group} FROM "{role}"')
    finally:
        await su.close()


@contextlib.asynccontextmanager
async def superuser(database: TestDatabase) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(database.superuser_dsn)
    try:
        yield connection
    finally:
        await connection.close()


#: What the application sends to bind a transaction of a registered agent role (parameters:
#: session, operation, key; see agentcow.binding).
BIND = render("bind_session.sql", placeholders=["$1", "$2", "$3", "NULL", "NULL"])


@contextlib.asynccontextmanager
async def bound(agent: Any, session_id: Any, key: str) -> AsyncIterator[None]:
    """A transaction of a hardened (registered) agent, bound to ``session_id`` with ``key``:
    its settings bind nothing."""
    async with agent.transaction():
        await agent.execute(BIND, session_id, new_id(), key)
        yield


async def setup(conn: Any, database: TestDatabase) -> tuple[str, str]:
    """COW tables parents and children (an app that granted ALL before enabling), a plain
    table ref, an agent and a reviewer login; returns their names."""
    agent, reviewer = role_name("agent"), role_name("reviewer")
    await fresh_role(database, agent)
    await fresh_role(database, reviewer)
    await make_cow(conn, DDL)
    await conn.execute(f'GRANT ALL ON parents, children, ref TO "{agent}"')
    await conn.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{agent}"')
    executor = ex(conn)
    for table in ("parents", "children"):
        await ac.enable_cow(executor, table, layout=LAYOUT)
    return agent, reviewer


async def harden_as_superuser(
    database: TestDatabase, agent: str, reviewer: str, **options: Any
) -> HardeningReport:
    async with superuser(database) as su:
        return await harden_cow_schema(
            ex(su), agent_roles=[agent], reviewer_roles=[reviewer], **options
        )


async def refused(connection: Any, sql: str, *states: str) -> None:
    with pytest.raises(asyncpg.PostgresError) as info:
        await connection.execute(sql)
    assert info.value.sqlstate in (states or ("42501", "42809")), (sql, info.value.sqlstate)


async def test_hardened_agent_uses_views_only(conn: Any, database: TestDatabase) -> None:
    agent, reviewer = await setup(conn, database)
    before = await check_cow_privileges(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer])
    kinds = {f.kind for f in before}
    assert {"base_table" if OVERLAY else "view_privilege", "production_write"} <= kinds
    assert "dangerous_privilege" in kinds and "reviewer_not_owner" in kinds
    report = await harden_as_superuser(database, agent, reviewer)
    assert report.ok, report
    assert report.remaining == () and report.failed == ()
    assert (
        await check_cow_privileges(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer]) == []
    )
    again = await harden_as_superuser(database, agent, reviewer)  # idempotent
    assert again.ok and len(again.applied) < len(report.applied)

    sid, key = new_id(), await create_binding_key(ex(conn), label="app")
    a = await connect_as(database, agent)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # registered: settings bind nothing
            async with session(a, sid):
                await a.execute("DELETE FROM parents WHERE id = 1")
        async with bound(a, sid, key):
            await a.execute("INSERT INTO parents (v) VALUES ('new')")  # serial default
            await a.execute("UPDATE parents SET v = 'x' WHERE id = 1")
            await a.execute("DELETE FROM parents WHERE id = 2")  # cascades to children
            assert await a.fetchval("SELECT count(*) FROM children") == 4
            assert await a.fetchval("SELECT count(*) FROM ref") == 1  # reads reference data
        for sql in (
            f"SELECT * FROM {base_table('parents')}",
            f"SELECT * FROM {changes_table('parents')}",
            f"UPDATE {base_table('parents')} SET v = 'prod'",
            f"DELETE FROM {changes_table('children')}",
            "INSERT INTO ref VALUES ('b')",
            "UPDATE ref SET code = 'z'",
            "SELECT setval('ref_n_seq', 1000)",
            f"TRUNCATE {cow_view('parents')}",
            f"TRUNCATE {base_table('children')}",
            "TRUNCATE ref",
            f"CREATE TRIGGER t BEFORE INSERT ON {cow_view('parents')} "
            "FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            "CREATE TRIGGER t BEFORE INSERT ON ref "
            "FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            # a foreign key needs a permanent table (temporary ones may reference only
            # temporary ones), so CREATE on a schema, and REFERENCES
            f"CREATE TABLE public.pin (id int REFERENCES {base_table('parents')})",
            "CREATE TABLE public.pin (code text REFERENCES ref)",
            "CREATE TABLE public.mine (id int)",
            f"CREATE VIEW {cow_view('mine')} AS SELECT 1",
            "CREATE FUNCTION public.eq(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
            "CREATE SCHEMA mine",
            "SELECT * FROM agentcow.sessions",
            "SELECT * FROM agentcow.session_limits",
            "SELECT * FROM agentcow.backend_state",
            f"SELECT agentcow.end_session('{sid}', true, false, "
            f"ARRAY['{base_table('parents')}'::regclass::oid])",
            f"SELECT agentcow.record_undo('{sid}', '{new_id()}', "
            f"ARRAY['{base_table('parents')}'::regclass::oid])",
            f"SELECT agentcow.lock_for_commit('{sid}', ARRAY['{base_table('parents')}'::regclass])",
            "SELECT * FROM agentcow.discard_idle_sessions('public', '0 seconds')",
            "SELECT agentcow.prune_history()",
            f"SELECT agentcow.lock_session('{sid}', true)",
        ):
            await refused(a, sql)
        for table in ("bindings", "binding_keys", "agent_roles"):  # the binding's, once there
            if await conn.fetchval("SELECT to_regclass($1)", f"agentcow.{table}"):
                await refused(a, f"SELECT * FROM agentcow.{table}")
                await refused(a, f"DELETE FROM agentcow.{table}")
        assert await a.fetch("SELECT * FROM agentcow.history") == []  # row-level security
        assert await a.fetch("SELECT * FROM agentcow.session_info()") == []
        # the kit's own entry points refuse the agent too
        for attempt in (
            ac.commit_cow_session_schema(ex(a), sid),
            ac.discard_cow_session_schema(ex(a), sid),
            ac.undo(ex(a), sid),
        ):
            with pytest.raises((asyncpg.PostgresError, ac.CowError)):
                await attempt
    finally:
        await a.close()
    assert await fetch(conn, f"SELECT count(*) FROM {base_table('parents')}") == [(5,)]
    assert await ac.get_dirty_tables(ex(conn), sid) == ["children", "parents"]


async def test_hardened_reviewer_reviews_commits_discards_and_undoes(
    conn: Any, database: TestDatabase
) -> None:
    agent, reviewer = await setup(conn, database)
    assert (await harden_as_superuser(database, agent, reviewer)).ok
    key = await create_binding_key(ex(conn), label="app")
    a = await connect_as(database, agent)
    r = await connect_as(database, reviewer)
    try:
        kept, dropped = new_id(), new_id()
        async with bound(a, kept, key):
            await a.execute("UPDATE parents SET v = 'reviewed' WHERE id = 1")
        async with bound(a, dropped, key):
            await a.execute("DELETE FROM parents WHERE id = 3")
        listed = {s.session_id for s in await ac.list_sessions(ex(r))}
        assert {kept, dropped} <= listed
        review = ac.Reviewer(r, kept)
        changes = await review.diff()
        assert changes.summary == {"INSERT": 0, "UPDATE": 1, "DELETE": 0}
        assert await review.commit() == {"parents": 1}
        assert await ac.Reviewer(r, dropped).discard() == {"children": 1, "parents": 1}
        assert await r.fetchval(f"SELECT v FROM {base_table('parents')} WHERE id = 1") == "reviewed"
        done = await ac.undo(ex(r), kept)
        assert done.rows == {"parents": 1}
        assert await r.fetchval(f"SELECT v FROM {base_table('parents')} WHERE id = 1") == "p1"
    finally:
        await a.close()
        await r.close()


async def test_harden_by_the_owner_reports_what_it_may_not_do(
    conn: Any, database: TestDatabase
) -> None:
    agent, reviewer = await setup(conn, database)
    report = await harden_cow_schema(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer])
    # only an administrator may make the reviewer a member of the owner
    assert [sql for sql, _ in report.failed] == [f"GRANT agentcow_owner TO {reviewer}"]
    assert [f.kind for f in report.remaining] == ["reviewer_not_owner"]
    assert not report.ok
    async with superuser(database) as su:
        await su.execute(report.remaining[0].fix)
    assert (await harden_cow_schema(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer])).ok


async def test_harden_refuses_bad_roles(conn: Any, database: TestDatabase) -> None:
    agent, _ = await setup(conn, database)
    with pytest.raises(UnknownRoleError):
        await check_cow_privileges(ex(conn), agent_roles=["hd_nobody_at_all"])
    with pytest.raises(ValueError):
        await harden_cow_schema(ex(conn), agent_roles=[agent], reviewer_roles=[agent])
    with pytest.raises(ValueError):
        await harden_cow_schema(ex(conn), agent_roles=[agent], read_only_tables=["ref"])
    with pytest.raises(TypeError):
        await check_cow_privileges(ex(conn), agent_roles=agent)  # type: ignore[arg-type]


async def test_read_only_tables(conn: Any, database: TestDatabase) -> None:
    agent, reviewer = await setup(conn, database)
    assert (await harden_as_superuser(database, agent, reviewer, read_only_tables=["children"])).ok
    key = await create_binding_key(ex(conn), label="app")
    a = await connect_as(database, agent)
    try:
        async with bound(a, new_id(), key):
            assert await a.fetchval("SELECT count(*) FROM children") == 5
            await refused(a, "DELETE FROM children WHERE id = 1")
    finally:
        await a.close()


Seed = Callable[[Any, Any, str], Awaitable[None]]


async def _grant_base(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT SELECT ON {base_table("parents")} TO "{agent}"')


async def _grant_base_column(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT UPDATE (v) ON {base_table("parents")} TO "{agent}"')


async def _grant_changes(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT SELECT ON {changes_table("parents")} TO "{agent}"')


async def _grant_view_trigger(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT TRIGGER ON {cow_view("parents")} TO "{agent}"')


async def _grant_kit_table(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT SELECT ON agentcow.sessions TO "{agent}"')


async def _grant_references(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT REFERENCES ON ref TO "{agent}"')


async def _grant_setval(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT UPDATE ON SEQUENCE ref_n_seq TO "{agent}"')


async def _grant_production_write(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(f'GRANT INSERT ON ref TO "{agent}"')


async def _grant_kit_function(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(
        "GRANT EXECUTE ON FUNCTION agentcow.end_session(uuid, boolean, boolean, oid[]) "
        f'TO "{agent}"'
    )


async def _definer_function(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE sql SECURITY DEFINER "
        "AS 'DELETE FROM public.ref'"
    )
    await conn.execute(f'GRANT EXECUTE ON FUNCTION public.wipe() TO "{agent}"')
    await conn.execute("REVOKE EXECUTE ON FUNCTION public.wipe() FROM PUBLIC")


async def _schema_create(conn: Any, su: Any, agent: str) -> None:
    await su.execute(f'GRANT CREATE ON SCHEMA public TO "{agent}"')


async def _database_create(conn: Any, su: Any, agent: str) -> None:
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{agent}"')


async def _default_privileges(conn: Any, su: Any, agent: str) -> None:
    await conn.execute(
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT INSERT ON TABLES TO "{agent}"'
    )


async def _membership(conn: Any, su: Any, agent: str) -> None:
    await on_shared_catalog(su, f'GRANT pg_signal_backend, agentcow_owner TO "{agent}"')


async def _attribute(conn: Any, su: Any, agent: str) -> None:
    await on_shared_catalog(su, f'ALTER ROLE "{agent}" CREATEDB BYPASSRLS')


async def _role_setting(conn: Any, su: Any, agent: str) -> None:
    database = await conn.fetchval("SELECT current_database()")
    await su.execute(
        f'ALTER ROLE "{agent}" IN DATABASE "{database}" SET search_path = evil, public'
    )
    await su.execute(f'ALTER ROLE "{agent}" IN DATABASE "{database}" SET app.session_id = \'x\'')
    await su.execute(f'ALTER ROLE "{agent}" IN DATABASE "{database}" SET statement_timeout = 5000')


async def _unregistered(conn: Any, su: Any, agent: str) -> None:
    await su.execute(f"SELECT agentcow.remove_agent_role('{agent}')")


# (kind, seed, harden fixes it): what harden cannot fix (ownership, grants to PUBLIC or to
# a group) stays in the report for an administrator
SEEDS: list[tuple[str, Seed, bool]] = [
    ("base_table", _grant_base, True),
    ("base_table", _grant_base_column, True),
    ("change_table", _grant_changes, True),
    ("view_privilege", _grant_view_trigger, True),
    ("kit_table", _grant_kit_table, True),
    ("dangerous_privilege", _grant_references, True),
    ("sequence_update", _grant_setval, True),
    ("production_write", _grant_production_write, True),
    ("kit_function", _grant_kit_function, True),
    ("definer_function", _definer_function, True),
    ("schema_create", _schema_create, True),
    ("database_create", _database_create, True),
    ("default_privilege", _default_privileges, True),
    ("membership", _membership, True),
    ("role_attribute", _attribute, True),
    ("role_setting", _role_setting, True),
    ("not_registered", _unregistered, True),
]


@pytest.mark.parametrize(("kind", "seed", "fixed"), SEEDS, ids=[s[1].__name__[1:] for s in SEEDS])
async def test_check_finds_each_seeded_excess(
    conn: Any, database: TestDatabase, kind: str, seed: Seed, fixed: bool
) -> None:
    agent, reviewer = await setup(conn, database)
    assert (await harden_as_superuser(database, agent, reviewer)).ok
    async with superuser(database) as su:
        await seed(conn, su, agent)
    findings = await check_cow_privileges(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer])
    assert findings and {f.kind for f in findings} == {kind}, findings
    for finding in findings:
        assert finding.role == agent and finding.why and finding.fix
        assert agent in str(finding)
    report = await harden_as_superuser(database, agent, reviewer, remove_role_settings=True)
    assert report.ok == fixed, report
    if kind == "role_setting":  # only the settings that leak state are findings
        [(settings,)] = await conn.fetch(
            "SELECT setconfig FROM pg_db_role_setting WHERE setrole = $1::regrole", agent
        )
        assert settings == ["statement_timeout=5000"]


async def test_check_reports_public_group_and_ownership_for_an_administrator(
    conn: Any, database: TestDatabase
) -> None:
    agent, reviewer = await setup(conn, database)
    group = role_name("group")
    await fresh_role(database, group)
    assert (await harden_as_superuser(database, agent, reviewer)).ok
    async with superuser(database) as su:
        await conn.execute(f"GRANT SELECT ON {changes_table('parents')} TO PUBLIC")
        await conn.execute(f'GRANT DELETE ON ref TO "{group}"')
        await on_shared_catalog(su, f'GRANT "{group}" TO "{agent}"')
        await su.execute(f'CREATE SCHEMA "{agent}_own" AUTHORIZATION "{agent}"')
        findings = await check_cow_privileges(
            ex(conn), agent_roles=[agent], reviewer_roles=[reviewer]
        )
        assert sorted((f.kind, f.via, f.grantee) for f in findings) == [
            ("change_table", "PUBLIC", None),
            ("ownership", "direct", agent),
            ("production_write", f"member of {group}", group),
        ]
        report = await harden_as_superuser(database, agent, reviewer)
        assert {f.kind for f in report.remaining} == {
            "change_table",
            "ownership",
            "production_write",
        }
        for finding in report.remaining:
            await su.execute(finding.fix)
        assert (
            await check_cow_privileges(ex(conn), agent_roles=[agent], reviewer_roles=[reviewer])
            == []
        )


def test_findings_read_as_sentences() -> None:
    finding = PrivilegeFinding(
        "base_table", "a", "table public.t_base", "SELECT", "direct", "why", "REVOKE ..."
    )
    assert str(finding) == "a: SELECT on table public.t_base (direct): why. Fix: REVOKE ..."


async def test_agents_terminate_only_backends_of_their_own_role(
    conn: Any, database: TestDatabase
) -> None:
    """pg_terminate_backend is every role's, for backends of its own role: agents that share
    a login role can end each other's requests (one login role per agent run prevents it)."""
    agent, reviewer = await setup(conn, database)
    other = role_name("other_agent")
    await fresh_role(database, other)
    async with superuser(database) as su:
        report = await harden_cow_schema(
            ex(su), agent_roles=[agent, other], reviewer_roles=[reviewer]
        )
    assert report.ok, report
    first, second, third = (
        await connect_as(database, agent),
        await connect_as(database, agent),
        await connect_as(database, other),
    )
    try:
        victim = await first.fetchval("SELECT pg_backend_pid()")
        await refused(third, f"SELECT pg_terminate_backend({victim})")
        await refused(third, f"SELECT pg_cancel_backend({victim})")
        assert await second.fetchval(f"SELECT pg_terminate_backend({victim})") is True
    finally:
        for connection in (first, second, third):
            await connection.close()


async def test_blocking_callers_run_the_same_functions(conn: Any, database: TestDatabase) -> None:
    """No twins of their own: run_blocking drives them over a blocking psycopg connection."""
    agent, reviewer = await setup(conn, database)
    with psycopg.connect(database.superuser_dsn, autocommit=True) as blocking:
        executor = PsycopgSyncExecutor(blocking)
        found = run_blocking(
            check_cow_privileges(executor, agent_roles=[agent], reviewer_roles=[reviewer])
        )
        assert found == await check_cow_privileges(
            ex(conn), agent_roles=[agent], reviewer_roles=[reviewer]
        )
        report = run_blocking(
            harden_cow_schema(executor, agent_roles=[agent], reviewer_roles=[reviewer])
        )
    assert report.ok, report


async def test_an_agent_that_sets_its_own_search_path_is_reported(
    conn: Any, database: TestDatabase
) -> None:
    agent, reviewer = await setup(conn, database)
    assert (await harden_as_superuser(database, agent, reviewer)).ok
    a = await connect_as(database, agent)
    try:
        await a.execute("ALTER ROLE CURRENT_USER SET search_path = evil, public")
        await refused(a, "ALTER ROLE CURRENT_USER SET app.session_id = 'x'")
    finally:
        await a.close()
    [finding] = await check_cow_privileges(ex(conn), agent_roles=[agent])
    assert (finding.kind, finding.privilege) == ("role_setting", "search_path=evil, public")
    assert finding.fix == f"ALTER ROLE {agent} RESET search_path"
    assert not (await harden_as_superuser(database, agent, reviewer)).ok
    assert (await harden_as_superuser(database, agent, reviewer, remove_role_settings=True)).ok
