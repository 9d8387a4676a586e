"""Bringing tables enabled under an older kit up to this package's layout."""

from __future__ import annotations

from agentcow.catalog import describe_registered, registered_tables, require_kit
from agentcow.executor import Executor
from agentcow.naming import object_names
from agentcow.script import run_atomically
from agentcow.templates import dollar_tag, render_statements
from agentcow.versions import OBJECTS_VERSION


async def upgrade_cow_tables(executor: Executor, schema: str = "public") -> list[str]:
    """Upgrade every COW table of ``schema`` whose objects predate this package, in one
    transaction; returns the tables upgraded. Run it as the tables' owner, after
    ``deploy_cow_functions``. Sessions keep their changes."""
    await require_kit(executor)
    upgraded: list[str] = []
    statements: list[str] = []
    for entry in await registered_tables(executor, schema):
        if entry.objects_version == OBJECTS_VERSION:
            continue
        t = await describe_registered(executor, schema, entry)
        statements += render_statements(
            "upgrade_table.sql",
            t=t,
            names=object_names(t.name),
            tag=dollar_tag(),
            replace=True,
            objects_version=OBJECTS_VERSION,
            from_version=entry.objects_version,
        )
        upgraded.append(entry.name)
    if statements:
        await run_atomically(executor, statements)
    return upgraded
