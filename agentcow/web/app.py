"""The review page's application: the reviewer routes under ``/api``, the page at ``/``
and its static files (plain HTML, CSS and JavaScript shipped in the package: no build step).

Local-only by design. The process draws a token; ``agentcow review`` prints the page's
address with it (``/?token=...``), the page is served only to a request that carries it, and
the page sends it with every API call (a header no other site can set without reading the
page first, which the browser does not let it do). Requests must name an allowed ``Host``
(a site that points its own name at 127.0.0.1 gets nothing), and the page forbids inline
scripts and framing (Content-Security-Policy) besides rendering every value as text.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentcow.connections import Link, Source, async_source
from agentcow.review.policy import Policy
from agentcow.web.routes import reviewer_router

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "X-Agentcow-Token"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class _SecurityHeaders:
    """Adds :data:`_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.decode() not in _HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _pool_source(app: FastAPI) -> Source:
    """A source over the pool the app's lifespan opens (routes are made before it is)."""

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Link]:
        async with async_source(app.state.pool).connect(reset=False) as link:
            yield link

    return Source(acquire)


def create_review_app(
    source: object = None,
    *,
    dsn: str | None = None,
    schema: str = "public",
    policy: Policy | None = None,
    token: str | None = None,
    hosts: Iterable[str] = (),
) -> FastAPI:
    """The review page's app over ``source`` (a pool or connection, as
    :class:`~agentcow.review.Reviewer` takes), or over an asyncpg pool it opens on ``dsn``
    when it starts. ``token`` (drawn when not given; ``app.state.token``) opens the page and
    authorizes its API calls; ``hosts`` adds allowed ``Host`` names to the local ones."""
    if (source is None) == (dsn is None):
        raise ValueError("give a source (pool or connection) or a dsn, not both")
    secret = token or secrets.token_urlsafe(32)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if dsn is None:
            yield
            return
        import asyncpg

        app.state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="agentcow review", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.token = secret

    def authorized(request: Request) -> None:
        """The page's token on every API call, and no other site's request."""
        given = request.headers.get(TOKEN_HEADER, "")
        if not secrets.compare_digest(given.encode(), secret.encode()):
            raise HTTPException(403, "missing or wrong review token: reload the page")
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise HTTPException(403, "cross-site request refused")

    app.include_router(
        reviewer_router(
            _pool_source(app) if source is None else source,
            schema=schema,
            policy=policy,
            dependencies=[Depends(authorized)],
        ),
        prefix="/api",
    )
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(token: str = "") -> HTMLResponse:
        if not secrets.compare_digest(token.encode(), secret.encode()):
            return HTMLResponse(_FORBIDDEN, status_code=403)
        return HTMLResponse(
            page.replace("__TOKEN__", html.escape(secret)).replace(
                "__SCHEMA__", html.escape(schema)
            )
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    allowed = [*LOCAL_HOSTS, *hosts]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)
    app.add_middleware(_SecurityHeaders)
    return app


_FORBIDDEN = (
    "<!doctype html><title>agentcow review</title><p>Open the address "
    "<code>agentcow review</code> printed: it carries the page's token.</p>"
)


def review_url(host: str, port: int, token: str) -> str:
    """The page's address, token included."""
    return f"http://{host}:{port}/?token={token}"
