"""The README's Python example runs as written, against a real database."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from tests.postgres_server import TestDatabase

README = Path(__file__).resolve().parent.parent / "README.md"

SCHEMA = """
CREATE TABLE orders (
    id serial PRIMARY KEY,
    status text NOT NULL DEFAULT 'open',
    total numeric(10, 2) NOT NULL
);
INSERT INTO orders (total) VALUES (120.00), (35.50);
"""


def readme_example() -> str:
    """The README's runnable blocks (those that await, not indented: a list item's snippets
    are tested where their feature is), in order: one example in parts."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.M)
    runnable = [block for block in blocks if "await " in block]
    assert len(runnable) == 3, (
        "the README should hold the quick start, the review example and the diff example"
    )
    return "\n".join(runnable)


async def test_readme_example_runs(conn: Any, database: TestDatabase) -> None:
    await conn.execute(SCHEMA)
    source = "async def example(dsn):\n" + textwrap.indent(readme_example(), "    ")
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)
    await namespace["example"](database.owner_dsn)
    rows = await conn.fetch("SELECT id, status, total::text FROM orders ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, "shipped", "108.00"),
        (2, "cancelled", "30.00"),
        (11, "open", "0.00"),
    ]
    assert await conn.fetchval("SELECT count(*) FROM orders_changes") == 0
