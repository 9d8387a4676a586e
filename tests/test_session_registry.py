"""The session registry: sessions recorded on first entry, bound to the tenant they were
entered with, out of the reach of the agent's SQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import TestDatabase
from tests.helpers import (
    connect_as,
    cow_view,
    create_login_role,
    ex,
    fetch,
    grant_agent,
    make_cow,
    new_id,
)

DDL = "CREATE TABLE t (id int PRIMARY KEY, tenant_id int NOT NULL, v text)"


async def test_first_entry_records_the_session(conn: Any) -> None:
    await make_cow(conn, DDL, "t")
    sid = new_id()
    for _ in range(2):
        async with conn.transaction():
            await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=7, label="billing run")
    rows = await fetch(
        conn, "SELECT tenant, label, state FROM agentcow.sessions WHERE session_id = $1", sid
    )
    assert rows == [("7", "billing run", "open")]


@pytest.mark.parametrize(("first", "then"), [(7, 8), (7, None), (None, 7)])
async def test_a_session_keeps_its_tenant(conn: Any, first: Any, then: Any) -> None:
    await make_cow(conn, DDL, "t")
    sid = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=first)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="is bound to"):
        async with conn.transaction():
            await ac.apply_cow_variables(ex(conn), sid, new_id(), tenant_id=then)


async def test_the_agent_cannot_rebind_its_session(conn: Any, database: TestDatabase) -> None:
    await make_cow(conn, DDL, "t")
    await create_login_role(database, "registry_agent")
    await grant_agent(conn, "registry_agent", ["t"])
    sid = new_id()
    agent = await connect_as(database, "registry_agent")
    try:
        async with agent.transaction():
            await ac.apply_cow_variables(ex(agent), sid, new_id(), tenant_id=1)
            for statement in (
                "UPDATE agentcow.sessions SET tenant = '2'",
                "DELETE FROM agentcow.sessions",
                "SELECT * FROM agentcow.sessions",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with agent.transaction():
                        await agent.execute(statement)
            assert await agent.fetchval("SELECT agentcow.session_tenant()") == "1"
    finally:
        await agent.close()


# ---------------------------------------------------------------------------------------
# States, listing and collecting abandoned sessions
# ---------------------------------------------------------------------------------------

TWO = DDL + "; CREATE TABLE u (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 1, 'a')"


async def enter_and_write(conn: Any, sid: Any, *statements: str, tenant: Any = None) -> Any:
    op = new_id()
    async with conn.transaction():
        await ac.apply_cow_variables(ex(conn), sid, op, tenant_id=tenant, label=f"run {tenant}")
        for statement in statements:
            await conn.execute(statement)
    return op


async def listed(executor: Any, sid: Any) -> ac.SessionRecord:
    (found,) = [r for r in await ac.list_sessions(executor) if r.session_id == sid]
    return found


async def test_states_after_commits_and_discards(conn: Any) -> None:
    executor = await make_cow(conn, TWO, "t", "u")
    whole, partial, dropped, failed = new_id(), new_id(), new_id(), new_id()
    await enter_and_write(conn, whole, "INSERT INTO t VALUES (2, 1, 'x')")
    first = await enter_and_write(conn, partial, "INSERT INTO u VALUES (1, 'x')")
    await enter_and_write(conn, partial, "INSERT INTO u VALUES (2, 'y')")
    await enter_and_write(conn, dropped, "INSERT INTO u VALUES (3, 'z')")
    await enter_and_write(conn, failed, "UPDATE t SET v = 'session' WHERE id = 1")
    assert {(await listed(executor, s)).state for s in (whole, partial, dropped)} == {"open"}

    await ac.commit_cow_session_schema(executor, whole)
    await ac.commit_cow_operations_schema(executor, partial, [first])
    await ac.discard_cow_session_schema(executor, dropped)
    await conn.execute("UPDATE t SET v = 'production' WHERE id = 1")
    with pytest.raises(ac.CommitConflictError):
        await ac.commit_cow_session_schema(executor, failed)

    committed = await listed(executor, whole)
    assert (committed.state, committed.committed_by) == ("committed", "agentcow_owner")
    assert committed.committed_at is not None and committed.pending == {}
    assert (await listed(executor, partial)).state == "partially_committed"
    assert (await listed(executor, partial)).pending == {"u": 1}
    assert (await listed(executor, dropped)).state == "discarded"
    not_committed = await listed(executor, failed)  # the failed commit recorded nothing
    assert (not_committed.state, not_committed.committed_at) == ("open", None)
    await ac.commit_cow_session(executor, "u", partial)
    assert (await listed(executor, partial)).state == "committed"


async def test_sessions_written_with_raw_settings_are_listed(conn: Any) -> None:
    executor = await make_cow(conn, TWO, "t", "u")
    sid = new_id()
    async with conn.transaction():
        await conn.execute(
            f"SELECT set_config('app.session_id', '{sid}', true), "
            f"set_config('app.operation_id', '{new_id()}', true)"
        )
        await conn.execute(f"INSERT INTO {cow_view('u')} VALUES (1, 'x'), (2, 'y')")
    raw = await listed(executor, sid)
    assert (raw.registered, raw.state, raw.created_at) == (False, "open", None)
    assert raw.pending == {"u": 2}
    await ac.commit_cow_session(executor, "u", sid)
    recorded = await listed(executor, sid)
    assert (recorded.registered, recorded.state) == (True, "committed")


async def test_list_filters(conn: Any) -> None:
    executor = await make_cow(conn, TWO, "t", "u")
    old, recent, other = new_id(), new_id(), new_id()
    await enter_and_write(conn, old, "INSERT INTO u VALUES (1, 'x')", tenant=1)
    await enter_and_write(conn, recent, "INSERT INTO u VALUES (2, 'x')", tenant=1)
    await enter_and_write(conn, other, "INSERT INTO u VALUES (3, 'x')", tenant=2)
    await conn.execute(
        f"UPDATE agentcow.sessions SET last_active_at = now() - interval '2 hours' "
        f"WHERE session_id = '{old}'"
    )
    await ac.commit_cow_session_schema(executor, other)

    async def ids(**filters: Any) -> set[Any]:
        return {r.session_id for r in await ac.list_sessions(executor, **filters)}

    assert await ids() == {old, recent, other}
    assert await ids(tenant=1) == {old, recent}
    assert await ids(tenant="2") == {other}
    assert await ids(state="open") == {old, recent}
    assert await ids(state=["committed", "discarded"]) == {other}
    assert await ids(older_than=timedelta(hours=1)) == {old}
    assert await ids(state="open", tenant=1, older_than=timedelta(minutes=1)) == {old}
    with pytest.raises(ValueError, match="state must be among"):
        await ac.list_sessions(executor, state="closed")  # type: ignore[arg-type]


async def test_gc_discards_only_abandoned_sessions(conn: Any, second_conn: Any) -> None:
    executor = await make_cow(conn, TWO, "t", "u")
    abandoned, recent, committed, busy, empty = (new_id() for _ in range(5))
    await enter_and_write(
        conn, abandoned, "INSERT INTO u VALUES (1, 'x'), (2, 'y')", "UPDATE t SET v = 'b'"
    )
    await enter_and_write(conn, recent, "INSERT INTO u VALUES (3, 'x')")
    await enter_and_write(conn, committed, "INSERT INTO u VALUES (4, 'x')")
    await ac.commit_cow_session_schema(executor, committed)
    await enter_and_write(conn, busy, "INSERT INTO u VALUES (5, 'x')")
    await enter_and_write(conn, empty)
    await conn.execute(
        "UPDATE agentcow.sessions SET last_active_at = now() - interval '2 days' "
        f"WHERE session_id <> '{recent}'"
    )
    async with second_conn.transaction():  # an agent writing in busy right now
        await ac.apply_cow_variables(ex(second_conn), busy, new_id())
        await second_conn.execute(f"INSERT INTO {cow_view('u')} VALUES (6, 'x')")
        dropped = await ac.gc_sessions(executor, older_than=timedelta(days=1))
    assert sorted(dropped, key=lambda d: str(d.session_id) != str(abandoned)) == [
        ac.DroppedSession(abandoned, {"t": 1, "u": 2}),
        ac.DroppedSession(empty, {}),
    ]
    states = {s: (await listed(executor, s)).state for s in (abandoned, recent, committed, busy)}
    assert states == {
        abandoned: "discarded",
        recent: "open",
        committed: "committed",
        busy: "open",
    }
    assert (await listed(executor, busy)).pending == {"u": 2}
    assert (await listed(executor, recent)).pending == {"u": 1}
    assert (await listed(executor, abandoned)).pending == {}
    # entering busy was activity; once that is old too, it goes
    assert await ac.gc_sessions(executor, older_than=timedelta(days=1)) == []
    await conn.execute(
        "UPDATE agentcow.sessions SET last_active_at = now() - interval '2 days' "
        f"WHERE session_id = '{busy}'"
    )
    assert await ac.gc_sessions(executor, older_than=timedelta(days=1)) == [
        ac.DroppedSession(busy, {"u": 2})
    ]
