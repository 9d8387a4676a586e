"""What the review page's tests (routes and browser) and docs/screenshots.py share: a
session of orders an agent changed in four operations, one building on another, with a
value written to look like markup; the page served by uvicorn in a thread; Debian's
Chromium."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn

from agentcow.web import create_review_app
from agentcow.web.app import review_url
from tests.helpers import base_table, make_cow, session

#: Debian's Chromium, and the options it runs with as root in a container.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: A row value the page must show as text: as markup it would run the agent's script.
XSS = (
    '<img src=x onerror="document.body.dataset.pwned=1">'
    "<script>document.body.dataset.pwned=2</script>"
)

DDL = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer int NOT NULL REFERENCES customers,
    status text NOT NULL DEFAULT 'open',
    total numeric(10, 2) NOT NULL,
    note text
);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');
INSERT INTO orders VALUES (1, 1, 'open', 10.00, NULL), (2, 1, 'open', 20.00, NULL),
    (3, 2, 'paid', 30.00, NULL);
"""

#: The stored orders before any commit: (id, status, total).
START = [(1, "open", "10.00"), (2, "open", "20.00"), (3, "paid", "30.00")]

#: What each operation runs, in order: ops[2] updates the row ops[1] inserts.
STEPS = (
    "UPDATE orders SET total = 12.50 WHERE id = 1",
    f"INSERT INTO orders (id, customer, total, note) VALUES (10, 2, 99.00, '{XSS}')",
    "UPDATE orders SET status = 'paid' WHERE id = 10",
    "DELETE FROM orders WHERE id = 2",
)


async def agent_session(conn: Any, *, tables: bool = True) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Deploy, enable the tables (unless done), and run :data:`STEPS` as one operation
    each in a new session; the session and its operations."""
    if tables:
        await make_cow(conn, DDL, "customers", "orders")
    session_id, ops = uuid.uuid4(), [uuid.uuid4() for _ in STEPS]
    for op, sql in zip(ops, STEPS, strict=True):
        async with session(conn, session_id, op):
            await conn.execute(sql)
    return session_id, ops


async def write_in(conn: Any, session_id: uuid.UUID, sql: str) -> uuid.UUID:
    """One more operation of the agent's in the session."""
    async with session(conn, session_id) as op:
        await conn.execute(sql)
    assert op is not None
    return op


async def base_orders(conn: Any) -> list[tuple[Any, ...]]:
    """The stored orders (the base, as production reads them)."""
    rows = await conn.fetch(
        f"SELECT id, status, total::text FROM {base_table('orders')} ORDER BY id"
    )
    return [tuple(row) for row in rows]


class ReviewServer:
    """``create_review_app`` under uvicorn in a thread, on a free port."""

    def __init__(self, dsn: str, **options: Any) -> None:
        self.app = create_review_app(dsn=dsn, **options)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ReviewServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return review_url("127.0.0.1", port, self.app.state.token)
