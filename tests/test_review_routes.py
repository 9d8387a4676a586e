"""The reviewer's JSON routes (agentcow.web.routes) in a FastAPI app of the test's, over an
asyncpg pool, on a real database: what each route answers, and how it refuses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, HTTPException, Request

from agentcow.review.policy import Policy
from agentcow.web import create_review_app, reviewer_router
from tests.conftest import TestDatabase
from tests.review_web_support import START, XSS, agent_session, base_orders, write_in

Client = httpx.AsyncClient


@pytest_asyncio.fixture(loop_scope="session")
async def pool(database: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database.owner_dsn, min_size=1, max_size=4)
    try:
        yield created
    finally:
        await created.close()


def client_for(pool: asyncpg.Pool, **options: Any) -> Client:
    app = FastAPI()
    app.include_router(reviewer_router(pool, **options), prefix="/api")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_sessions_operations_and_dependencies(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, ops = await agent_session(conn)
    async with client_for(pool) as client:
        listed = (await client.get("/api/sessions")).json()
        assert [s["session_id"] for s in listed] == [str(session_id)]
        assert listed[0]["state"] == "open"
        assert listed[0]["pending"]["orders"] == 4
        answer = (await client.get(f"/api/sessions/{session_id}/operations")).json()
    assert [o["operation_id"] for o in answer["operations"]] == [str(op) for op in ops]
    assert answer["operations"][1] == {
        "operation_id": str(ops[1]),
        "tables": ["orders"],
        "inserted": 1,
        "updated": 0,
        "deleted": 0,
    }
    assert answer["dependencies"] == [{"depends_on": str(ops[1]), "operation_id": str(ops[2])}]


async def test_diff_of_a_selection_closes_it_and_shows_rows(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, ops = await agent_session(conn)
    async with client_for(pool) as client:
        answer = await client.get(f"/api/sessions/{session_id}/diff", params={"ops": [str(ops[2])]})
        whole = (await client.get(f"/api/sessions/{session_id}/diff")).json()
    assert answer.status_code == 200
    shown = answer.json()
    assert sorted(shown["operation_ids"]) == sorted([str(ops[1]), str(ops[2])])
    [row] = shown["rows"]
    assert row["type"] == "INSERT" and row["before"] is None
    assert row["after"]["note"] == XSS  # the agent's value, as it is
    assert row["after"]["total"] == "99.00"  # numeric exact, as text
    assert row["after"]["status"] == "paid"
    assert shown["policy"] == {
        "configured": False,
        "decision": "approve",
        "reasons": [],
        "failed_rules": [],
        "checks": [],
        "limits": [],
    }
    assert whole["operation_ids"] is None
    assert whole["summary"] == {"INSERT": 1, "UPDATE": 1, "DELETE": 1}
    update = next(r for r in whole["rows"] if r["type"] == "UPDATE")
    assert update["changed_columns"] == ["total"]
    assert (update["before"]["total"], update["after"]["total"]) == ("10.00", "12.50")
    delete = next(r for r in whole["rows"] if r["type"] == "DELETE")
    assert delete["pk"] == {"id": 2} and delete["after"] is None
    assert len(shown["fingerprint"]) == 64 and shown["fingerprint"] != whole["fingerprint"]


async def test_policy_results_and_blocked_rows(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, _ = await agent_session(conn)
    policy = Policy.from_mapping(
        {"tables": {"orders": {"forbid_deletes": True, "rules": ["new.total < 50"]}}}
    )
    async with client_for(pool, policy=policy) as client:
        shown = (await client.get(f"/api/sessions/{session_id}/diff")).json()
        refused = await client.post(
            f"/api/sessions/{session_id}/commit", json={"fingerprint": shown["fingerprint"]}
        )
    assert shown["policy"]["configured"] is True
    assert shown["policy"]["decision"] == "block"
    assert "orders: deletes are forbidden (1 row(s))" in shown["policy"]["reasons"]
    blocked = {r["pk"]["id"]: r["findings"] for r in shown["rows"] if r["blocked"]}
    assert blocked == {10: ["rule 'new.total < 50'"], 2: ["deletes are forbidden"]}
    assert next(r for r in shown["rows"] if r["pk"]["id"] == 1)["findings"] == []
    assert refused.status_code == 409
    assert refused.json()["detail"]["code"] == "policy_violation"
    assert (
        "orders: deletes are forbidden (1 row(s))" in refused.json()["detail"]["blocking_reasons"]
    )
    assert await base_orders(conn) == START


async def test_commit_applies_exactly_the_fingerprinted_diff(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, ops = await agent_session(conn)
    async with client_for(pool) as client:
        url = f"/api/sessions/{session_id}"
        shown = (await client.get(f"{url}/diff", params={"ops": [str(ops[2])]})).json()
        missing = await client.post(f"{url}/commit", json={"ops": [str(ops[2])]})
        other = await client.post(
            f"{url}/commit", json={"ops": [str(ops[0])], "fingerprint": shown["fingerprint"]}
        )
        done = await client.post(
            f"{url}/commit", json={"ops": [str(ops[2])], "fingerprint": shown["fingerprint"]}
        )
        left = (await client.get(f"{url}/operations")).json()
    assert missing.status_code == 422  # no fingerprint, no commit
    assert other.status_code == 409
    assert other.json()["detail"]["code"] == "review_changed"
    assert done.status_code == 200, done.text
    assert done.json()["committed"] == {"orders": 1}
    assert sorted(done.json()["operation_ids"]) == sorted([str(ops[1]), str(ops[2])])
    assert await base_orders(conn) == [
        (1, "open", "10.00"),
        (2, "open", "20.00"),
        (3, "paid", "30.00"),
        (10, "paid", "99.00"),
    ]
    assert [o["operation_id"] for o in left["operations"]] == [str(ops[0]), str(ops[3])]


async def test_a_write_after_the_preview_refuses_the_commit(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, _ = await agent_session(conn)
    async with client_for(pool) as client:
        url = f"/api/sessions/{session_id}"
        shown = (await client.get(f"{url}/diff")).json()
        await write_in(conn, session_id, "UPDATE orders SET total = 0 WHERE id = 3")
        stale = await client.post(f"{url}/commit", json={"fingerprint": shown["fingerprint"]})
        again = (await client.get(f"{url}/diff")).json()
        done = await client.post(f"{url}/commit", json={"fingerprint": again["fingerprint"]})
    assert stale.status_code == 409
    assert stale.json()["detail"]["code"] == "review_changed"
    assert "nothing was committed" in stale.json()["detail"]["message"]
    assert done.status_code == 200
    assert await base_orders(conn) == [
        (1, "open", "12.50"),
        (3, "paid", "0.00"),
        (10, "paid", "99.00"),
    ]


async def test_conflicts_with_production(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, ops = await agent_session(conn)
    await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")  # production
    async with client_for(pool) as client:
        url = f"/api/sessions/{session_id}"
        [conflict] = (await client.get(f"{url}/conflicts")).json()
        none = (await client.get(f"{url}/conflicts", params={"ops": [str(ops[1])]})).json()
        shown = (await client.get(f"{url}/diff", params={"ops": [str(ops[0])]})).json()
        refused = await client.post(
            f"{url}/commit", json={"ops": [str(ops[0])], "fingerprint": shown["fingerprint"]}
        )
        merged = await client.post(
            f"{url}/commit",
            json={
                "ops": [str(ops[0])],
                "fingerprint": shown["fingerprint"],
                "on_conflict": "merge",
            },
        )
    assert conflict["kind"] == "updated" and conflict["key"] == {"id": 1}
    assert conflict["base_now"]["status"] == "shipped" and conflict["mergeable"] is True
    assert none == []
    assert refused.status_code == 409
    assert refused.json()["detail"]["code"] == "commit_conflict"
    assert refused.json()["detail"]["conflicts"][0]["key"] == {"id": 1}
    assert merged.status_code == 200
    assert (await base_orders(conn))[0] == (1, "shipped", "12.50")


async def test_discard_then_history_and_undo(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, ops = await agent_session(conn)
    async with client_for(pool) as client:
        url = f"/api/sessions/{session_id}"
        not_closed = await client.post(f"{url}/discard", json={"ops": [str(ops[1])]})
        dropped = await client.post(
            f"{url}/discard", json={"ops": [str(ops[1])], "include_dependents": True}
        )
        shown = (await client.get(f"{url}/diff")).json()
        await client.post(f"{url}/commit", json={"fingerprint": shown["fingerprint"]})
        [session] = (await client.get("/api/sessions", params={"state": "committed"})).json()
        history = (await client.get(f"{url}/history")).json()
        undone = await client.post(f"{url}/undo", json={})
        again = await client.post(f"{url}/undo", json={})
        after = (await client.get(f"{url}/history")).json()
    assert not_closed.status_code == 409
    assert not_closed.json()["detail"]["missing_operations"] == [str(ops[2])]
    assert dropped.json() == {"discarded": {"orders": 1}}
    assert session["session_id"] == str(session_id)
    assert sorted((h["key"]["id"], h["before"] is None, h["after"] is None) for h in history) == [
        (1, False, False),
        (2, False, True),
    ]
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone"] == {"orders": 2}
    assert sorted(undone.json()["operation_ids"]) == sorted([str(ops[0]), str(ops[3])])
    assert again.status_code == 409 and again.json()["detail"]["code"] == "already_undone"
    assert all(h["undone"] for h in after)
    assert await base_orders(conn) == START


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("get", "/api/sessions/not-a-uuid/operations", None, 422),
        ("get", "/api/sessions/{session}/diff?ops=nope", None, 422),
        ("get", f"/api/sessions/{uuid.UUID(int=7)}/operations", None, 404),
        ("get", f"/api/sessions/{uuid.UUID(int=7)}/diff", None, 404),
        ("post", f"/api/sessions/{uuid.UUID(int=7)}/commit", {"fingerprint": "x"}, 404),
        ("get", f"/api/sessions/{{session}}/diff?ops={uuid.UUID(int=8)}", None, 404),
        ("post", "/api/sessions/{session}/undo", {}, 404),
        ("post", "/api/sessions/{session}/commit", {"fingerprint": ""}, 422),
        ("post", "/api/sessions/{session}/commit", {"fingerprint": "x", "on_conflict": "no"}, 422),
        ("get", "/api/sessions?state=lost", None, 422),
    ],
)
async def test_errors_map_to_http_codes(
    conn: Any, pool: asyncpg.Pool, method: str, path: str, body: Any, code: int
) -> None:
    session_id, _ = await agent_session(conn)
    async with client_for(pool) as client:
        url = path.replace("{session}", str(session_id))
        answer = await (client.get(url) if method == "get" else client.post(url, json=body))
    assert answer.status_code == code, answer.text
    if code == 404:
        assert answer.json()["detail"]["code"] in (
            "session_not_found",
            "operation_not_found",
            "history_not_found",
        )
    assert await base_orders(conn) == START


async def test_dependencies_guard_every_route(conn: Any, pool: asyncpg.Pool) -> None:
    def only_with_header(request: Request) -> None:
        if request.headers.get("x-reviewer") != "yes":
            raise HTTPException(403, "reviewers only")

    await agent_session(conn)
    async with client_for(pool, dependencies=[Depends(only_with_header)]) as client:
        assert (await client.get("/api/sessions")).status_code == 403
        assert (await client.get("/api/sessions", headers={"x-reviewer": "yes"})).status_code == 200


# ---------------------------------------------------------------------------------------
# create_review_app: the page's token, the Host check, the headers
# ---------------------------------------------------------------------------------------


def page_client(pool: asyncpg.Pool, host: str = "127.0.0.1") -> Client:
    app = create_review_app(pool, token="s3cret-token")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def test_the_page_opens_only_with_the_token(conn: Any, pool: asyncpg.Pool) -> None:
    await agent_session(conn)
    async with page_client(pool) as client:
        without = await client.get("/")
        wrong = await client.get("/", params={"token": "s3cret-tokem"})
        page = await client.get("/", params={"token": "s3cret-token"})
        script = await client.get("/static/app.js")
    assert without.status_code == wrong.status_code == 403
    assert "s3cret-token" not in without.text
    assert page.status_code == 200
    assert '<meta name="agentcow-token" content="s3cret-token">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert script.status_code == 200 and "textContent" in script.text
    assert "innerHTML" not in script.text


async def test_api_calls_need_the_token_and_a_local_host(conn: Any, pool: asyncpg.Pool) -> None:
    session_id, _ = await agent_session(conn)
    token = {"X-Agentcow-Token": "s3cret-token"}
    async with page_client(pool) as client:
        shown = (await client.get(f"/api/sessions/{session_id}/diff", headers=token)).json()
        body = {"fingerprint": shown["fingerprint"]}
        no_token = await client.post(f"/api/sessions/{session_id}/commit", json=body)
        read = await client.get("/api/sessions")
        cross = await client.post(
            f"/api/sessions/{session_id}/commit",
            json=body,
            headers={**token, "Sec-Fetch-Site": "cross-site"},
        )
    async with page_client(pool, host="attacker.example") as rebound:
        # a site that points its own name at 127.0.0.1 (DNS rebinding)
        foreign = await rebound.post(f"/api/sessions/{session_id}/commit", json=body, headers=token)
        foreign_page = await rebound.get("/", params={"token": "s3cret-token"})
    assert no_token.status_code == read.status_code == cross.status_code == 403
    assert foreign.status_code == foreign_page.status_code == 400
    assert await base_orders(conn) == START
    async with page_client(pool, host="localhost") as client:
        done = await client.post(f"/api/sessions/{session_id}/commit", json=body, headers=token)
    assert done.status_code == 200
    assert await base_orders(conn) == [
        (1, "open", "12.50"),
        (3, "paid", "30.00"),
        (10, "paid", "99.00"),
    ]


def test_an_app_takes_a_source_or_a_dsn() -> None:
    with pytest.raises(ValueError, match="not both"):
        create_review_app()
    with pytest.raises(ValueError, match="not both"):
        create_review_app(object(), dsn="postgresql://")
