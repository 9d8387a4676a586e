"""``agentcow review`` as a person starts it: a process that prints the page's address
(with its token) and serves the page and the API there until stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from agentcow.cli import app
from tests.conftest import TestDatabase
from tests.review_web_support import agent_session

ROOT = Path(__file__).resolve().parent.parent


async def test_serves_the_page_at_the_address_it_prints(
    conn: Any, database: TestDatabase, tmp_path: Path
) -> None:
    session_id, _ = await agent_session(conn)
    policy = tmp_path / "policy.toml"
    policy.write_text("[tables.orders]\nforbid_deletes = true\n")
    command = [sys.executable, "-m", "agentcow", "review", "--port", "0", "--no-open"]
    command += ["--policy", str(policy)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENTCOW_DSN": database.owner_dsn}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        found = re.fullmatch(
            r"agentcow review: (http://127\.0\.0\.1:\d+/)\?token=([\w-]+)  \(Ctrl\+C stops it\)\n",
            line,
        )
        assert found, line
        base, token = found.groups()
        async with httpx.AsyncClient(base_url=base) as client:
            page = await client.get("/", params={"token": token})
            shut = await client.get("/")
            diff = await client.get(
                f"/api/sessions/{session_id}/diff", headers={"X-Agentcow-Token": token}
            )
    finally:
        server.terminate()
        server.wait(10)
    assert page.status_code == 200 and "agentcow review" in page.text
    assert shut.status_code == 403
    assert diff.json()["policy"]["reasons"] == ["orders: deletes are forbidden (1 row(s))"]


def test_a_database_without_the_kit_is_one_line(database: TestDatabase) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["review", "--dsn", database.owner_dsn, "--no-open"])
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("agentcow: error: agentcow is not deployed")
    assert "Traceback" not in result.stderr


def test_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    no_dsn = runner.invoke(
        app, ["review", "--no-open"], env={"AGENTCOW_DSN": "", "DATABASE_URL": ""}
    )
    assert no_dsn.exit_code == 2
    assert "agentcow: error: give --dsn" in no_dsn.stderr
    bad = tmp_path / "policy.toml"
    bad.write_text("[tables.orders]\nmax_deleted = -1\n")
    refused = runner.invoke(app, ["review", "--dsn", "postgresql://", "--policy", str(bad)])
    assert refused.exit_code == 2
    assert "invalid policy: tables.orders.max_deleted" in refused.stderr
