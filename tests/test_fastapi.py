"""agentcow.fastapi through FastAPI's TestClient, on a real database: the example app
(examples/fastapi_app.py), whose agents log in as a hardened agent role and bind each
transaction with the application's key, and small apps for the dependency's own rules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

import agentcow as ac
from agentcow.fastapi import AgentRun, cow_session, lazy_pool
from examples.fastapi_app import Settings, add_reviewer, create_app, digest, migrate
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    ROLE_PASSWORD,
    base_table,
    changes_table,
    create_login_role,
    ex,
    fetch,
)
from tests.postgres_server import replace_dsn

AGENT = "fastapi_agent"
PRODUCTION = [
    (1, 1, "open", "120.00"),
    (2, 1, "open", "35.50"),
    (3, 1, "open", "990.00"),
    (4, 2, "open", "12.00"),
    (5, 2, "open", "48.25"),
]


@dataclass(frozen=True)
class Shop:
    settings: Settings
    reviewer: dict[str, str]  # the reviewer's Authorization header


@dataclass(frozen=True)
class Run:
    session_id: uuid.UUID
    auth: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(loop_scope="session")
async def shop(conn: Any, database: TestDatabase) -> Shop:
    await create_login_role(database, AGENT)
    key = await migrate(conn, agent_role=AGENT, layout=LAYOUT)
    password = ROLE_PASSWORD if urlsplit(database.owner_dsn).password is not None else None
    agent_dsn = replace_dsn(database.owner_dsn, user=AGENT, password=password)
    token = await add_reviewer(conn, "ada")
    return Shop(Settings(database.owner_dsn, agent_dsn, key), bearer(token))


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with TestClient(create_app(shop.settings)) as test_client:
        yield test_client


def start_run(client: TestClient, shop: Shop, tenant: int, label: str = "refunds") -> Run:
    answer = client.post("/runs", json={"tenant_id": tenant, "label": label}, headers=shop.reviewer)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    return Run(uuid.UUID(body["session_id"]), bearer(body["token"]))


async def production(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(
        conn, f"SELECT id, tenant_id, status, total::text FROM {base_table('orders')} ORDER BY id"
    )


async def versions(conn: Any, session_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            f"SELECT count(*) FROM {changes_table('orders')} WHERE session_id = $1", session_id
        )
    )


def statuses(client: TestClient, run: Run) -> dict[int, str]:
    answer = client.get("/orders", headers=run.auth)
    assert answer.status_code == 200, answer.text
    return {order["id"]: order["status"] for order in answer.json()}


def sql(client: TestClient, run: Run, statement: str) -> Any:
    return client.post("/agent/sql", json={"sql": statement}, headers=run.auth)


# ---------------------------------------------------------------------------------------
# The agent's requests land in its run's session
# ---------------------------------------------------------------------------------------


async def test_an_agents_write_lands_in_its_session(
    conn: Any, shop: Shop, client: TestClient
) -> None:
    run = start_run(client, shop, tenant=1, label="refunds")
    answer = client.patch(
        "/orders/2", json={"status": "cancelled", "total": "30.00"}, headers=run.auth
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": 2, "customer": "Ada", "status": "cancelled", "total": "30.00"}
    assert statuses(client, run) == {1: "open", 2: "cancelled", 3: "open"}

    assert await production(conn) == PRODUCTION
    assert await versions(conn, run.session_id) == 1
    [record] = await ac.list_sessions(ex(conn))
    assert (record.session_id, record.tenant, record.label) == (run.session_id, "1", "refunds")
    assert record.pending == {"orders": 1}

    result = sql(client, run, "UPDATE orders SET total = total + 1 WHERE status = 'open'")
    assert result.status_code == 200, result.text
    assert result.json() == {"rowcount": 2, "columns": [], "rows": []}
    rows = sql(client, run, "SELECT id, total FROM orders WHERE id < 3 ORDER BY id").json()
    assert rows == {
        "rowcount": 2,
        "columns": ["id", "total"],
        "rows": [[1, "121.00"], [2, "30.00"]],
    }
    assert await production(conn) == PRODUCTION
    # one operation per call: the PATCH, then the UPDATE
    assert len(await ac.get_session_operations(ex(conn), run.session_id)) == 2


async def test_two_runs_are_isolated(conn: Any, shop: Shop, client: TestClient) -> None:
    first, second = start_run(client, shop, 1), start_run(client, shop, 1)
    assert client.patch("/orders/1", json={"status": "shipped"}, headers=first.auth).is_success
    assert client.patch("/orders/3", json={"status": "cancelled"}, headers=second.auth).is_success

    assert statuses(client, first) == {1: "shipped", 2: "open", 3: "open"}
    assert statuses(client, second) == {1: "open", 2: "open", 3: "cancelled"}
    assert await production(conn) == PRODUCTION
    assert (await versions(conn, first.session_id), await versions(conn, second.session_id)) == (
        1,
        1,
    )


async def test_a_run_stays_inside_its_tenant(conn: Any, shop: Shop, client: TestClient) -> None:
    run = start_run(client, shop, tenant=2)
    assert statuses(client, run) == {4: "open", 5: "open"}
    assert (
        client.patch("/orders/1", json={"status": "cancelled"}, headers=run.auth).status_code == 404
    )

    assert sql(client, run, "UPDATE orders SET total = 0").json()["rowcount"] == 2
    moved = sql(client, run, "UPDATE orders SET tenant_id = 1 WHERE id = 4")
    inserted = sql(client, run, "INSERT INTO orders VALUES (9, 1, 'Mallory', 'open', 1)")
    for answer in (moved, inserted):
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"]["sqlstate"] == "42501"
        assert "tenant isolation" in answer.json()["detail"]["message"]
    assert sql(client, run, "SELECT count(*) FROM orders").json()["rows"] == [[2]]
    assert await production(conn) == PRODUCTION


# ---------------------------------------------------------------------------------------
# Only the application's own authentication says which run (and session) a request is
# ---------------------------------------------------------------------------------------


async def test_missing_or_forged_tokens_are_refused(
    conn: Any, shop: Shop, client: TestClient
) -> None:
    run = start_run(client, shop, tenant=1)
    token = run.auth["Authorization"].removeprefix("Bearer ")
    refused = [
        {},
        bearer("not-a-token"),
        bearer(token + "x"),
        bearer(digest(token)),  # what the table stores is not a token
        {"Authorization": f"Basic {token}"},
        bearer("' OR true --"),
        bearer("x" * 4000),
        shop.reviewer,  # a reviewer is not an agent run
    ]
    for headers in refused:
        for answer in (
            client.get("/orders", headers=headers),
            client.patch("/orders/1", json={"status": "shipped"}, headers=headers),
            sql(client, Run(run.session_id, headers), "DELETE FROM orders"),
        ):
            assert answer.status_code == 401, (headers, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    # an agent run cannot start runs
    assert (
        client.post("/runs", json={"tenant_id": 1, "label": "x"}, headers=run.auth).status_code
        == 401
    )

    await conn.execute("UPDATE app.agent_runs SET revoked_at = now()")
    assert client.get("/orders", headers=run.auth).status_code == 401
    assert await versions(conn, run.session_id) == 0
    assert await production(conn) == PRODUCTION


async def test_a_session_the_client_names_is_ignored(
    conn: Any, shop: Shop, client: TestClient
) -> None:
    run, other = start_run(client, shop, 1), start_run(client, shop, 1)
    named = {
        "X-Session-Id": str(other.session_id),
        "app.session_id": str(other.session_id),
        "X-Agentcow-Session": str(other.session_id),
    }
    answer = client.patch(
        f"/orders/1?session_id={other.session_id}",
        json={"status": "shipped", "session_id": str(other.session_id)},
        headers=run.auth | named,
    )
    assert answer.status_code == 200, answer.text
    assert await versions(conn, run.session_id) == 1
    assert await versions(conn, other.session_id) == 0
    assert statuses(client, other)[1] == "open"

    # No agent route takes a session (or anything but its own) as a parameter.
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/orders", "/orders/{order_id}", "/agent/sql"):
        for operation in paths[path].values():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert names <= {"order_id"}, (path, names)

    # Nor can the agent's SQL move its session: the guard refuses settings before sending.
    moved = sql(client, run, f"SELECT set_config('app.session_id', '{other.session_id}', false)")
    assert moved.status_code == 403
    assert await versions(conn, other.session_id) == 0


# ---------------------------------------------------------------------------------------
# Errors of the agent's statements as HTTP answers
# ---------------------------------------------------------------------------------------


async def test_guard_refusals_are_403(conn: Any, shop: Shop, client: TestClient) -> None:
    run = start_run(client, shop, tenant=1)
    cases = {
        "SELECT token_sha256 FROM app.agent_runs": "table_not_allowed",
        "SELECT * FROM agentcow.binding_keys": "kit_object",
        "UPDATE orders SET total = 0; DELETE FROM orders": "multiple_statements",
        "SET app.session_id = 'x'": "setting",
        "COMMIT": "transaction_control",
    }
    for statement, code in cases.items():
        answer = sql(client, run, statement)
        assert answer.status_code == 403, answer.text
        detail = answer.json()["detail"]
        assert (detail["source"], detail["code"], detail["sqlstate"]) == ("agentcow", code, "42501")
        assert detail["refused"] and detail["hint"]
    assert await versions(conn, run.session_id) == 0
    assert await production(conn) == PRODUCTION


async def test_postgres_errors_of_the_agent_are_answered(
    conn: Any, shop: Shop, client: TestClient
) -> None:
    run = start_run(client, shop, tenant=1)
    cases = [
        ("INSERT INTO orders VALUES (1, 1, 'Ada', 'open', 1)", 409, "23505"),
        ("UPDATE orders SET total = -1 WHERE id = 1", 422, "23514"),
        ("UPDATE orders SET status = NULL WHERE id = 1", 422, "23502"),
        ("SELECT lower(id) FROM orders", 422, "42883"),
        ("SELECT nope FROM orders", 422, "42703"),
        ("SELECT 1 / 0", 422, "22012"),
        ("SELECT (SELECT id FROM orders)", 422, "21000"),
    ]
    for statement, code, sqlstate in cases:
        answer = sql(client, run, statement)
        assert answer.status_code == code, (statement, answer.text)
        detail = answer.json()["detail"]
        assert (detail["source"], detail["sqlstate"]) == ("postgresql", sqlstate)
        assert detail["message"]
    unique = sql(client, run, cases[0][0]).json()["detail"]
    assert unique["detail"] == "Key (id)=(1) already exists."
    undefined = sql(client, run, "SELECT lower(id) FROM orders").json()["detail"]
    assert "explicit type casts" in undefined["hint"]
    # The driver's own refusal is no PostgreSQL error: a server error, not answered.
    with pytest.raises(asyncpg.InterfaceError, match="expects 1 argument"):
        sql(client, run, "SELECT $1")
    assert await versions(conn, run.session_id) == 0


async def test_session_limits_are_answered(conn: Any, shop: Shop, client: TestClient) -> None:
    run = start_run(client, shop, tenant=1)
    await ac.set_session_limits(
        ex(conn), run.session_id, max_rows=2, statement_timeout=timedelta(milliseconds=200)
    )
    rows = sql(client, run, "UPDATE orders SET total = total + 1")
    assert rows.status_code == 403, rows.text
    assert rows.json()["detail"]["sqlstate"] == "54000"
    slow = sql(
        client,
        run,
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000000) "
        "SELECT count(*) FROM r",
    )
    assert slow.status_code == 504, slow.text
    assert slow.json()["detail"]["sqlstate"] == "57014"
    assert client.patch("/orders/1", json={"status": "shipped"}, headers=run.auth).is_success
    assert await versions(conn, run.session_id) == 1


# ---------------------------------------------------------------------------------------
# The dependency's own rules, on small apps over the same database
# ---------------------------------------------------------------------------------------


def small_app(settings: Settings, resolve: Any) -> FastAPI:
    """An app whose routes use a session of the run ``resolve`` gives, on the agents' pool,
    and an error of its own (the app's connection) in a route that has a session too."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as own,
            asyncpg.create_pool(settings.agent_database_url, min_size=1, max_size=2) as agents,
        ):
            app.state.own, app.state.agents = own, agents
            yield

    app = FastAPI(lifespan=lifespan)
    session_of = cow_session(
        resolve, lazy_pool(lambda: app.state.agents), binding_key=settings.binding_key
    )

    @app.post("/two")
    async def two(session: ac.CowSession = Depends(session_of)) -> dict[str, int]:  # noqa: B008
        """Two statements as one operation: the second is refused, the first rolls back."""
        async with session.operation():
            await session.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
            await session.execute("SELECT pg_sleep(0)")
        return {"done": 1}

    @app.post("/caught")
    async def caught(session: ac.CowSession = Depends(session_of)) -> dict[str, str]:  # noqa: B008
        try:
            await session.execute("SELECT pg_sleep(0)")
        except ac.GuardRefusal as refusal:
            raise HTTPException(418, detail="the handler's own answer") from refusal
        return {}

    @app.post("/own")
    async def own(session: ac.CowSession = Depends(session_of)) -> dict[str, str]:  # noqa: B008
        await session.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")
        await app.state.own.execute("INSERT INTO app.reviewers VALUES ('x', 'ada')")  # exists
        return {}

    return app


async def test_operation_blocks_and_the_handlers_own_errors(conn: Any, shop: Shop) -> None:
    session_id = uuid.uuid4()

    def resolve() -> AgentRun:
        return AgentRun(session_id=session_id, tenant_id=1, label="small")

    with TestClient(small_app(shop.settings, resolve), raise_server_exceptions=False) as client:
        two = client.post("/two")
        assert two.status_code == 403, two.text
        assert two.json()["detail"]["code"] == "function_not_allowed"
        assert await versions(conn, session_id) == 0  # the block rolled back

        assert client.post("/caught").status_code == 418
        # the application's own database error is not the session's: not answered as one
        own = client.post("/own")
        assert own.status_code == 500
        assert "unique" not in own.text
    assert await versions(conn, session_id) == 1  # /own's session write was its own call


def returning(value: object) -> Callable[[], object]:
    def resolve() -> object:
        return value

    return resolve


async def test_the_resolver_must_return_an_agent_run(shop: Shop) -> None:
    for wrong in (str(uuid.uuid4()), None, {"session_id": str(uuid.uuid4())}):
        app = small_app(shop.settings, returning(wrong))
        with (
            TestClient(app) as client,
            pytest.raises(TypeError, match="must return an AgentRun"),
        ):
            client.post("/two")


# ---------------------------------------------------------------------------------------
# The reviewer's routes, mounted behind the reviewers' own tokens
# ---------------------------------------------------------------------------------------


async def test_reviewers_commit_what_they_saw(conn: Any, shop: Shop, client: TestClient) -> None:
    run = start_run(client, shop, tenant=1, label="cleanup")
    assert client.patch("/orders/1", json={"status": "shipped"}, headers=run.auth).is_success
    assert client.patch("/orders/2", json={"total": "30.00"}, headers=run.auth).is_success
    review = f"/review/sessions/{run.session_id}"

    for headers in ({}, run.auth, bearer("not-a-token")):
        assert client.get("/review/sessions", headers=headers).status_code == 401
        assert client.get(f"{review}/diff", headers=headers).status_code == 401

    [listed] = client.get("/review/sessions", headers=shop.reviewer).json()
    assert (listed["session_id"], listed["label"], listed["tenant"]) == (
        str(run.session_id),
        "cleanup",
        "1",
    )
    assert listed["pending"] == {"orders": 2}
    operations = client.get(f"{review}/operations", headers=shop.reviewer).json()["operations"]
    assert [op["updated"] for op in operations] == [1, 1]
    ship = operations[0]["operation_id"]

    diff = client.get(f"{review}/diff", params={"ops": [ship]}, headers=shop.reviewer).json()
    assert [(row["pk"], row["after"]["status"]) for row in diff["rows"]] == [({"id": 1}, "shipped")]
    committed = client.post(
        f"{review}/commit",
        json={"ops": [ship], "fingerprint": diff["fingerprint"]},
        headers=shop.reviewer,
    )
    assert committed.status_code == 200, committed.text
    assert committed.json()["committed"] == {"orders": 1}
    assert (await production(conn))[0] == (1, 1, "shipped", "120.00")
    assert (await production(conn))[1:] == PRODUCTION[1:]


async def test_a_stale_fingerprint_commits_nothing(
    conn: Any, shop: Shop, client: TestClient
) -> None:
    run = start_run(client, shop, tenant=2)
    assert client.patch("/orders/4", json={"status": "cancelled"}, headers=run.auth).is_success
    review = f"/review/sessions/{run.session_id}"
    seen = client.get(f"{review}/diff", headers=shop.reviewer).json()["fingerprint"]

    # the agent writes after the review
    assert client.patch("/orders/5", json={"total": "0"}, headers=run.auth).is_success
    stale = client.post(f"{review}/commit", json={"fingerprint": seen}, headers=shop.reviewer)
    assert stale.status_code == 409, stale.text
    assert stale.json()["detail"]["code"] == "review_changed"
    assert await production(conn) == PRODUCTION

    fresh = client.get(f"{review}/diff", headers=shop.reviewer).json()
    assert len(fresh["rows"]) == 2
    done = client.post(
        f"{review}/commit", json={"fingerprint": fresh["fingerprint"]}, headers=shop.reviewer
    )
    assert done.status_code == 200, done.text
    assert (await production(conn))[3:] == [(4, 2, "cancelled", "12.00"), (5, 2, "open", "0.00")]
    assert await versions(conn, run.session_id) == 0


def test_the_guard_cannot_be_turned_off() -> None:
    with pytest.raises(ValueError, match="always pass the SQL guard"):
        cow_session(returning(None), lazy_pool(lambda: None), guard=None)  # type: ignore[arg-type]
