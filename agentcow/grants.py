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


async def read_grants(executor: Executor, oid: int) -> tuple[Grant, ...]:
    rows = await executor.execute(render("catalog_grants.sql", oid=oid))
    return tuple(
        Grant(grantee, privilege, grantable, column)
        for grantee, privilege, grantable, column in rows
    )


def grant_statements(
    grants: Iterable[Grant], *, source: tuple[str, str], target: tuple[str, str]
) -> list[str]:
    movable = [g for g in grants if g.privilege in MOVABLE_PRIVILEGES]
    return render_statements(
        "grants.sql", grants=movable, source=qualified(*source), target=qualified(*target)
    )
