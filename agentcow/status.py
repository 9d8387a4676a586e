"""What is deployed and enabled, for health checks and request middleware."""

from __future__ import annotations

from typing import TypedDict

from agentcow.catalog import kit_version, registered_tables, require_kit
from agentcow.executor import Executor
from agentcow.session import CowPostgresConfig


class CowStatus(TypedDict):
    enabled: bool
    tables_with_cow: list[str]
    changes_tables: list[str]
    cow_functions_deployed: bool


async def get_cow_status(executor: Executor, schema: str = "public") -> CowStatus:
    if await kit_version(executor) is None:
        return CowStatus(
            enabled=False, tables_with_cow=[], changes_tables=[], cow_functions_deployed=False
        )
    await require_kit(executor)  # a kit older than this package: deploy to upgrade it
    tables = await registered_tables(executor, schema)
    return CowStatus(
        enabled=bool(tables),
        tables_with_cow=[t.name for t in tables],
        changes_tables=[t.changes_name for t in tables],
        cow_functions_deployed=True,
    )


async def is_cow_enabled(
    executor: Executor, config: CowPostgresConfig, schema: str = "public"
) -> bool:
    """True when the request carries a session and the schema has COW tables to isolate."""
    if not config.is_active:
        return False
    return (await get_cow_status(executor, schema))["enabled"]
