"""Table privileges: read from the catalog, moved between a table and its view."""

from __future__ import annotations

from collections.abc import Iterable

from agentcow.description import Grant
from agentcow.executor import Executor
from agentcow.identifiers import qualified
from agentcow.templates import render, render_statements

# Privileges that follow the name the application uses (the view). REFERENCES and MAINTAIN
# stay with the base table, where foreign keys and maintenance actually happen.
MOVABLE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"})
# Privileges an overlay view shares with its table (which keeps its own): a view has no use
# for TRUNCATE, and TRIGGER there would let a role hang code on the session's writes.
SHARED_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


async def read_grants(executor: Executor, oid: int) -> tuple[Grant, ...]:
    rows = await executor.execute(render("catalog_grants.sql", oid=oid))
    return tuple(
        Grant(grantee, privilege, grantable, column)
        for grantee, privilege, grantable, column in rows
    )


def grant_statements(
    grants: Iterable[Grant], *, source: tuple[str, str], target: tuple[str, str], move: bool
) -> list[str]:
    """Give ``target`` the privileges ``grants`` (read from ``source``): moved, as between
    a table and the view that takes its name; else shared, as with an overlay view."""
    kept = [g for g in grants if g.privilege in (MOVABLE_PRIVILEGES if move else SHARED_PRIVILEGES)]
    return render_statements(
        "grants.sql",
        grants=kept,
        source=qualified(*source),
        target=qualified(*target),
        move=move,
    )
