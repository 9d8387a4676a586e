"""The review page in a real browser: Debian's Chromium driven by Playwright, the page
served by uvicorn (``create_review_app`` on the test database, in a thread), the database
checked with real queries. Without /usr/bin/chromium these tests skip, except under CI
(``CI`` set), where they fail: CI must run them (``make test`` installs it)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import TestDatabase
from tests.helpers import make_cow, session
from tests.review_web_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    START,
    XSS,
    ReviewServer,
    agent_session,
    base_orders,
    write_in,
)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: CI runs the browser tests (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture
def review_server(database: TestDatabase) -> Iterator[ReviewServer]:
    _require_chromium()
    with ReviewServer(database.owner_dsn) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    _require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Browser, server: ReviewServer) -> Page:
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(server.url)
    page.set_default_timeout(10_000)
    setattr(page, "errors", errors)  # noqa: B010 (read back by the tests)
    return page


def op_row(page: Page, number: int) -> Any:
    return page.locator("#operations tbody tr").nth(number - 1)


async def open_session(page: Page, session_id: object) -> None:
    await page.locator(f'#sessions tr[data-session="{session_id}"]').click()
    await expect(page.locator("#session-id")).to_have_text(str(session_id))


async def test_select_see_the_closure_preview_and_commit(
    conn: Any, review_server: ReviewServer, browser: Browser
) -> None:
    session_id, ops = await agent_session(conn)
    page = await open_page(browser, review_server)
    await expect(page.locator("#sessions tbody tr")).to_have_count(1)
    await open_session(page, session_id)
    await expect(page.locator("#operations tbody tr")).to_have_count(4)
    await expect(op_row(page, 3).locator("td.needs")).to_have_text("#2")

    # each operation's rows: #1 updates order 1's total, #4 deletes order 2
    await op_row(page, 1).locator("button").click()
    await expect(page.locator("#op-rows tr.update td.changed")).to_have_text(["10.00", "12.50"])
    await op_row(page, 4).locator("button").click()
    await expect(page.locator("#op-rows-title")).to_contain_text("#4")
    deleted = page.locator("#op-rows tr.delete")
    await expect(deleted).to_have_count(1)
    await expect(deleted.locator("td.key")).to_have_text("id=2")
    await expect(page.locator("#op-rows tr.update")).to_have_count(0)

    # #3 updates the row #2 inserts: ticking #3 ticks #2, shown as needed by #3
    await op_row(page, 3).locator("input").check()
    await expect(op_row(page, 2).locator("input")).to_be_checked()
    await expect(op_row(page, 2)).to_have_class("selected implied")
    await expect(op_row(page, 2)).to_contain_text("needed by #3")
    for number in (1, 4):
        await expect(op_row(page, number).locator("input")).not_to_be_checked()
    await expect(page.locator(f'#graph g[data-op="{ops[1]}"]')).to_have_class("node implied")
    await expect(page.locator(f'#graph g[data-op="{ops[2]}"]')).to_have_class("node chosen")
    await expect(page.locator("#graph path.arc.on")).to_have_count(1)

    await page.click("#preview")
    await expect(page.locator("#preview-what")).to_have_text("of #2, #3")
    await expect(page.locator("#summary")).to_have_text("1 insert(s), 0 update(s), 0 delete(s)")
    fingerprint = await page.locator("#fingerprint").text_content()
    assert fingerprint is not None and len(fingerprint) == 64
    inserted = page.locator("#diff tr.insert")
    await expect(inserted).to_have_count(1)
    await expect(inserted.locator("td.key")).to_have_text("id=10")
    # the agent's markup is shown as the text it is, and never ran
    await expect(inserted.locator("td").last).to_have_text(XSS)
    assert await page.locator("#diff img, #diff script").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None

    await page.click("#commit")
    await expect(page.locator("#message.success")).to_have_text("Committed orders: 1 row(s).")
    assert await base_orders(conn) == [*START, (10, "paid", "99.00")]
    await expect(page.locator("#operations tbody tr")).to_have_count(2)
    assert [await op_row(page, n).get_attribute("data-op") for n in (1, 2)] == [
        str(ops[0]),
        str(ops[3]),
    ]
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_write_after_the_preview_refuses_the_commit(
    conn: Any, review_server: ReviewServer, browser: Browser
) -> None:
    session_id, _ = await agent_session(conn)
    page = await open_page(browser, review_server)
    await open_session(page, session_id)
    await page.click("#preview-all")
    await expect(page.locator("#summary")).to_have_text("1 insert(s), 1 update(s), 1 delete(s)")
    # the deletion is listed, with the row it removes
    deleted = page.locator("#diff tr.delete")
    await expect(deleted).to_have_count(1)
    await expect(deleted.locator("td.key")).to_have_text("id=2")
    await expect(deleted).to_contain_text("20.00")
    updated = page.locator("#diff tr.update")
    await expect(updated).to_have_count(2)  # before and after
    await expect(updated.locator("td.changed")).to_have_text(["10.00", "12.50"])

    await write_in(conn, session_id, "UPDATE orders SET total = 0 WHERE id = 3")
    await page.click("#commit")
    await expect(page.locator("#message.error")).to_contain_text("nothing was committed")
    await expect(page.locator("#preview-panel")).to_be_hidden()
    assert await base_orders(conn) == START

    await expect(page.locator("#operations tbody tr")).to_have_count(5)
    await page.click("#preview-all")
    await expect(page.locator("#summary")).to_have_text("1 insert(s), 2 update(s), 1 delete(s)")
    await page.click("#commit")
    await expect(page.locator("#message.success")).to_be_visible()
    assert await base_orders(conn) == [
        (1, "open", "12.50"),
        (3, "paid", "0.00"),
        (10, "paid", "99.00"),
    ]


async def test_discard_then_commit_then_undo(
    conn: Any, review_server: ReviewServer, browser: Browser
) -> None:
    session_id, ops = await agent_session(conn)
    page = await open_page(browser, review_server)
    await open_session(page, session_id)
    await op_row(page, 2).locator("input").check()  # #3 builds on it: the discard takes both
    await page.click("#discard")
    await expect(page.locator("#message.success")).to_have_text("Discarded orders: 1 row(s).")
    await expect(page.locator("#operations tbody tr")).to_have_count(2)

    await page.click("#preview-all")
    await expect(page.locator("#summary")).to_have_text("0 insert(s), 1 update(s), 1 delete(s)")
    await page.click("#commit")
    await expect(page.locator("#message.success")).to_have_text("Committed orders: 2 row(s).")
    assert await base_orders(conn) == [(1, "open", "12.50"), (3, "paid", "30.00")]
    await expect(page.locator("#session-state")).to_have_text("committed")
    await expect(page.locator("#pending")).to_be_hidden()
    await expect(page.locator("#history-ops tbody tr")).to_have_count(2)
    await expect(page.locator("#history tr.delete td.key")).to_have_text("id=2")

    await page.click("#undo-all")
    await expect(page.locator("#message.success")).to_contain_text("Undone: orders: 2 row(s)")
    assert await base_orders(conn) == START
    await expect(page.locator("#session-state")).to_have_text("undone")
    await page.check("#show-closed")
    await expect(page.locator("#sessions tbody tr")).to_have_count(2)  # and the undo session
    assert page.errors == []  # type: ignore[attr-defined]
    assert {str(ops[0]), str(ops[3])} == {
        await row.get_attribute("data-op")
        for row in await page.locator("#history-ops tbody tr").all()
    }


async def test_conflicts_and_policy_results_are_shown(
    conn: Any, database: TestDatabase, browser: Browser
) -> None:
    from agentcow.review.policy import Policy

    _require_chromium()
    session_id, _ = await agent_session(conn)
    await conn.execute("UPDATE orders SET status = 'shipped' WHERE id = 1")  # production
    policy = Policy.from_mapping({"tables": {"orders": {"forbid_deletes": True}}})
    with ReviewServer(database.owner_dsn, policy=policy) as server:
        page = await open_page(browser, server)
        await open_session(page, session_id)
        conflict = page.locator("#conflicts table.conflict")
        await expect(conflict).to_have_count(1)
        await expect(page.locator("#conflicts h4")).to_have_text(
            "orders id=1: production updated it (mergeable)"
        )
        await expect(conflict.locator("td.changed")).to_have_count(0)  # no column clashes
        await page.click("#preview-all")
        await expect(page.locator("#policy .decision strong")).to_have_text("BLOCKED")
        await expect(page.locator("#policy .reasons")).to_have_text(
            "orders: deletes are forbidden (1 row(s))"
        )
        await expect(page.locator("#diff tr.delete.blocked td.fail")).to_have_text(
            "deletes are forbidden"
        )
        await expect(page.locator("#commit")).to_be_disabled()
    assert await base_orders(conn) == [(1, "shipped", "10.00"), *START[1:]]


async def test_markup_in_names_keys_and_json_is_text(
    conn: Any, review_server: ReviewServer, browser: Browser
) -> None:
    table, column = "<b>t</b>", "<img src=x onerror=document.body.dataset.pwned=3>"
    await make_cow(
        conn,
        f'CREATE TABLE "{table}" (k text PRIMARY KEY, "{column}" text, doc jsonb)',
        table,
    )
    session_id = uuid.uuid4()
    async with session(conn, session_id):
        await conn.execute(
            f'INSERT INTO "{table}" VALUES ($1, $1, $2)', XSS, json.dumps({"html": XSS})
        )
    page = await open_page(browser, review_server)
    await open_session(page, session_id)
    await expect(op_row(page, 1).locator("td").nth(3)).to_have_text(table)
    await page.click("#preview-all")
    await expect(page.locator("#diff h4")).to_have_text(f"{table}  +1 ~0 \N{MINUS SIGN}0")
    await expect(page.locator("#diff th").nth(4)).to_have_text(column)
    row = page.locator("#diff tr.insert")
    await expect(row.locator("td.key")).to_have_text(f"k={XSS}")
    await expect(row.locator("td").nth(4)).to_have_text(XSS)
    await expect(row.locator("td").nth(5)).to_have_text(
        json.dumps({"html": XSS}, separators=(",", ":"))
    )
    assert await page.locator("main img, main script, main b").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None
