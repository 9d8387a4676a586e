"""Bringing tables enabled under an older kit up to this package's layout."""

from __future__ import annotations

from agentcow.catalog import describe_table, registered_tables, require_kit
from agentcow.executor import Executor
from agentcow.naming import object_names
from agentcow.script import run_atomically
from agentcow.templates import dollar_tag, render_statements
from agentcow.versions import TABLE_LAYOUT


async def upgrade_cow_tables(executor: Executor, schema: str = "public") -> list[str]:
    """Upgrade every COW table of ``schema`` whose objects predate this package, in one
    transaction; returns the tables upgraded. Run it as the tables' owner, after
    ``deploy_cow_functions``. Sessions keep their changes."""
    await require_kit(executor)
    upgraded: list[str] = []
    statements: list[str] = []
    for entry in await registered_tables(executor, schema):
        if entry.layout == TABLE_LAYOUT:
            continue
        t = await describe_table(executor, schema, entry.name, entry.base_name)
        statements += render_statements(
            "upgrade_table.sql",
            t=t,
            names=object_names(t.name),
            tag=dollar_tag(),
            replace=True,
            layout=TABLE_LAYOUT,
            from_layout=entry.layout,
        )
        upgraded.append(entry.name)
    if statements:
        await run_atomically(executor, statements)
    return upgraded
