"""A shop's API for AI agents, with agentcow.fastapi: every agent request runs in the
copy-on-write session of its agent run, and reviewers commit what they approve.

- An agent run is started by a reviewer (``POST /runs``): the application draws a session id
  and a bearer token, keeps the token's SHA-256 digest with the run's session and tenant in
  its own table (``app.agent_runs``), and hands the token out once.
- The agent calls ``GET /orders``, ``PATCH /orders/{id}`` and ``POST /agent/sql`` with that
  token. Each request's session is the run's, found from the token: no header, query or body
  names one. Its writes land in the session, inside its tenant; production is unchanged.
- Reviewers (their own tokens, ``app.reviewers``) list sessions, read operations and diffs,
  and commit exactly the diff they saw (its fingerprint) under ``/review``.

Set up once, as the tables' owner: ``await migrate(conn, agent_role="shop_agent")`` (it
returns the binding key) and ``await add_reviewer(conn, "ada")`` (her token). Run with::

    DATABASE_URL=postgresql://shop_owner@db/shop \\
    AGENT_DATABASE_URL=postgresql://shop_agent@db/shop \\
    AGENTCOW_BINDING_KEY=... uvicorn --factory examples.fastapi_app:create_app
"""

import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.binding import BINDING_KEY_ENV
from agentcow.fastapi import AgentRun, cow_session, lazy_pool, reviewer_router
from agentcow.naming import Layout
from agentcow.review.encoding import json_value

SCHEMA = Path(__file__).with_suffix(".sql")


@dataclass(frozen=True)
class Settings:
    """``database_url``: the application's role (owns the shop's tables, reads its own,
    reviews); ``agent_database_url``: the agents' login role, which ``migrate`` hardened;
    ``binding_key``: from ``migrate``, kept with the application's secrets."""

    database_url: str
    agent_database_url: str
    binding_key: str

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            os.environ["DATABASE_URL"],
            os.environ["AGENT_DATABASE_URL"],
            os.environ[BINDING_KEY_ENV],
        )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def migrate(conn: asyncpg.Connection, *, agent_role: str, layout: Layout = "overlay") -> str:
    """Once, as the tables' owner: the schema, the kit, copy-on-write on the shop's tables
    (each session inside its tenant), and ``agent_role`` left with the views only. Returns a
    new binding key."""
    await conn.execute(SCHEMA.read_text())
    db = AsyncpgExecutor(conn)
    await ac.deploy_cow_functions(db)
    await ac.enable_cow_schema(db, tenant_columns="tenant_id", layout=layout)
    report = await ac.harden_cow_schema(db, agent_roles=[agent_role])
    if report.failed:
        raise RuntimeError(f"hardening {agent_role} failed: {report.failed}")
    return await ac.create_binding_key(db, label="shop api")


async def add_reviewer(conn: asyncpg.Connection, name: str) -> str:
    """A reviewer's token (returned once; the table keeps its digest)."""
    token = secrets.token_urlsafe(32)
    await conn.execute("INSERT INTO app.reviewers VALUES ($1, $2)", digest(token), name)
    return token


# ---------------------------------------------------------------------------------------
# Who is calling: an agent run, or a reviewer, each by a bearer token the application issued
# ---------------------------------------------------------------------------------------

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_run(request: Request, credentials: Bearer) -> AgentRun:
    """The run whose token the request carries (401 for none, an unknown or a revoked one)."""
    if credentials is None:
        raise unauthorized()
    row = await request.app.state.pool.fetchrow(
        "SELECT session_id, tenant_id, label FROM app.agent_runs "
        "WHERE token_sha256 = $1 AND revoked_at IS NULL",
        digest(credentials.credentials),
    )
    if row is None:
        raise unauthorized()
    return AgentRun(session_id=row["session_id"], tenant_id=row["tenant_id"], label=row["label"])


async def current_reviewer(request: Request, credentials: Bearer) -> str:
    """The reviewer whose token the request carries, by name."""
    if credentials is None:
        raise unauthorized()
    name = await request.app.state.pool.fetchval(
        "SELECT name FROM app.reviewers WHERE token_sha256 = $1", digest(credentials.credentials)
    )
    if name is None:
        raise unauthorized()
    return str(name)


# ---------------------------------------------------------------------------------------
# What goes in and out
# ---------------------------------------------------------------------------------------


class Order(BaseModel):
    id: int
    customer: str
    status: str
    total: Decimal


class OrderChange(BaseModel):
    status: Literal["open", "shipped", "cancelled"] | None = None
    total: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)


class Statement(BaseModel):
    sql: str = Field(description="one SQL statement, values inline")


class StatementResult(BaseModel):
    rowcount: int
    columns: list[str]
    rows: list[list[Any]]


class NewRun(BaseModel):
    tenant_id: int
    label: str = Field(min_length=1, max_length=200)


class StartedRun(BaseModel):
    session_id: uuid.UUID
    token: str = Field(description="the agent's bearer token: shown once, kept as a digest")


# ---------------------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    config = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            asyncpg.create_pool(config.database_url, min_size=1, max_size=4) as pool,
            asyncpg.create_pool(config.agent_database_url, min_size=1, max_size=8) as agents,
        ):
            app.state.pool, app.state.agent_pool = pool, agents
            yield

    app = FastAPI(title="shop", lifespan=lifespan)
    agent_session = cow_session(
        current_run, lazy_pool(lambda: app.state.agent_pool), binding_key=config.binding_key
    )
    Session = Annotated[ac.CowSession, Depends(agent_session)]
    Reviewer = Annotated[str, Depends(current_reviewer)]

    @app.get("/orders")
    async def list_orders(session: Session) -> list[Order]:
        """The orders the run sees: its tenant's, with its session's changes."""
        rows = await session.query("SELECT id, customer, status, total FROM orders ORDER BY id")
        return [Order(**row) for row in rows]

    @app.patch("/orders/{order_id}")
    async def change_order(order_id: int, change: OrderChange, session: Session) -> Order:
        """Change an order's status or total, in the run's session."""
        rows = await session.query(
            "UPDATE orders SET status = coalesce($1, status), total = coalesce($2, total) "
            "WHERE id = $3 RETURNING id, customer, status, total",
            [change.status, change.total, order_id],
        )
        if not rows:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no order {order_id}")
        return Order(**rows[0])

    @app.post("/agent/sql")
    async def run_sql(statement: Statement, session: Session) -> StatementResult:
        """Run one statement of the agent's in its session (checked by the SQL guard)."""
        result = await session.execute(statement.sql)
        return StatementResult(
            rowcount=result.rowcount,
            columns=list(result.columns),
            rows=[[json_value(value) for value in row] for row in result.rows],
        )

    @app.post("/runs", status_code=status.HTTP_201_CREATED)
    async def start_run(new: NewRun, request: Request, reviewer: Reviewer) -> StartedRun:
        """Start an agent run for a tenant: its session, and its token (shown once)."""
        token, session_id = secrets.token_urlsafe(32), uuid.uuid4()
        await request.app.state.pool.execute(
            "INSERT INTO app.agent_runs (token_sha256, session_id, tenant_id, label, started_by) "
            "VALUES ($1, $2, $3, $4, $5)",
            digest(token),
            session_id,
            new.tenant_id,
            new.label,
            reviewer,
        )
        return StartedRun(session_id=session_id, token=token)

    # Sessions, operations, diffs, commits (with the fingerprint of the diff reviewed),
    # discards and undo, as the application's own role; reviewers only.
    app.include_router(
        reviewer_router(
            lazy_pool(lambda: app.state.pool), dependencies=[Depends(current_reviewer)]
        ),
        prefix="/review",
    )
    return app
