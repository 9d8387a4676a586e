"""Runs several statements as one, so that they apply together or not at all.

An executor may be in autocommit mode, or inside the caller's transaction; a single ``DO``
block is atomic in both cases and joins the caller's transaction when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentcow.executor import Executor
from agentcow.templates import dollar_tag


def atomic_block(statements: Sequence[str]) -> str:
    tag = dollar_tag()
    body = "\n".join(statement.rstrip().rstrip(";") + ";" for statement in statements)
    return f"DO {tag}\nBEGIN\n{body}\nEND\n{tag}"


async def run_atomically(executor: Executor, statements: Sequence[str]) -> None:
    if statements:
        await executor.execute(atomic_block(statements))
