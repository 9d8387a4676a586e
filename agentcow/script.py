"""Runs several statements as one, so that they apply together or not at all.

An executor may be in autocommit mode, or inside the caller's transaction; a single ``DO``
block is atomic in both cases and joins the caller's transaction when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentcow.executor import Executor, TransactionAware
from agentcow.templates import dollar_tag, render


def atomic_block(statements: Sequence[str]) -> str:
    tag = dollar_tag()
    body = "\n".join(statement.rstrip().rstrip(";") + ";" for statement in statements)
    return f"DO {tag}\nBEGIN\n{body}\nEND\n{tag}"


async def run_atomically(executor: Executor, statements: Sequence[str]) -> None:
    """One ``DO`` block; sent without preparing it where the executor can (its text is new
    every time: a commit's names its session and digest)."""
    if not statements:
        return
    block = atomic_block(statements)
    if isinstance(executor, TransactionAware):
        await executor.run(block)
    else:
        await executor.execute(block)


async def run_pinned(executor: Executor, query: str, columns: str) -> list[tuple[Any, ...]]:
    """Rows of a review query (a plain SELECT, run with the caller's rights), with operators
    and functions resolved in ``pg_catalog`` only (``agentcow.pinned_query``): nothing an
    agent created in a schema on the caller's ``search_path`` runs with the caller's rights.
    ``columns`` is the query's column definition list, types schema-qualified
    (``"a pg_catalog.uuid, b pg_catalog.int8"``: a temporary type could shadow a bare name); one
    statement, so it holds on pools too."""
    return await executor.execute(render("pinned.sql", query=query, columns=columns))
