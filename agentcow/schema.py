"""Enabling and disabling every table of a schema at once, atomically."""

from __future__ import annotations

from collections.abc import Collection

from agentcow.catalog import find_relation, registered_tables, require_kit
from agentcow.description import Tenancy
from agentcow.enable import (
    CowPlan,
    PlannedEnable,
    Progress,
    disable_script,
    enable_script,
    prepare_enable,
    refused_error,
)
from agentcow.errors import InvalidIdentifierError, UnsupportedTableError
from agentcow.executor import Executor
from agentcow.naming import Layout
from agentcow.script import run_atomically
from agentcow.templates import render
from agentcow.tenancy import TenantColumns, schema_tenancies, tenant_column_type


async def enable_cow_schema(
    executor: Executor,
    schema: str = "public",
    exclude: set[str] | None = None,
    allow_deferred_fks: bool = False,
    *,
    layout: Layout = "rename",
    tenant_columns: TenantColumns = None,
    read_only_for_tenants: Collection[str] = (),
) -> list[str]:
    """Enable COW on every plain table of ``schema`` not yet enabled; returns those tables.
    ``layout``: as for ``enable_cow``.

    Tenant isolation (see ``enable_cow``): ``tenant_columns`` is a column name, the tenant
    column of every table that has it, or a mapping of table name to its tenant column;
    ``read_only_for_tenants`` names the tables that sessions bound to a tenant may only
    read. Tables with neither are shared by every tenant, for reading and writing.

    All tables are checked first and enabled in one transaction: if some cannot be enabled,
    one :class:`UnsupportedTableError` names each of them with its reasons (``.reasons``)
    and no table is changed. Tables without a primary key are enabled (see ``enable_cow``).
    """
    plan = await plan_enable_schema(
        executor,
        schema,
        exclude,
        allow_deferred_fks,
        layout=layout,
        tenant_columns=tenant_columns,
        read_only_for_tenants=read_only_for_tenants,
    )
    await run_atomically(executor, plan.statements)
    return plan.tables


async def plan_enable_schema(
    executor: Executor,
    schema: str = "public",
    exclude: set[str] | None = None,
    allow_deferred_fks: bool = False,
    *,
    layout: Layout = "rename",
    tenant_columns: TenantColumns = None,
    read_only_for_tenants: Collection[str] = (),
    progress: Progress | None = None,
) -> CowPlan:
    """What :func:`enable_cow_schema` does, without doing it; ``progress`` hears of each
    table checked."""
    await require_kit(executor)
    exclude = exclude or set()
    enabled_already = {t.name for t in await registered_tables(executor, schema)}
    rows = await executor.execute(render("plain_tables.sql", schema=schema))
    names = [name for (name,) in rows if name not in exclude and name not in enabled_already]
    tenancies = await _tenancies(executor, schema, names, tenant_columns, read_only_for_tenants)
    planned: list[PlannedEnable] = []
    refused: dict[str, list[str]] = {}
    for done, name in enumerate(names, 1):
        try:
            planned.append(
                await prepare_enable(
                    executor, name, None, schema, allow_deferred_fks, layout, tenancies[name]
                )
            )
        except UnsupportedTableError as error:
            refused.update(error.reasons)
        except InvalidIdentifierError as error:  # a name too long once suffixed
            refused[f"{schema}.{name}"] = [str(error)]
        if progress is not None:
            progress(name, done, len(names))
    if refused:
        raise refused_error(schema, refused, "fix them, or leave them out with exclude=")
    if not planned:
        return CowPlan([], [])
    return CowPlan(names, await enable_script(executor, planned))


async def _tenancies(
    executor: Executor,
    schema: str,
    names: list[str],
    tenant_columns: TenantColumns,
    read_only_for_tenants: Collection[str],
) -> dict[str, Tenancy]:
    """The tenant isolation of each table to enable; a single column name is looked up in
    each table's columns."""
    columns: dict[str, Collection[str]] = {name: () for name in names}
    if isinstance(tenant_columns, str):
        for name in names:
            relation = await find_relation(executor, schema, name)
            if relation and await tenant_column_type(executor, relation.oid, tenant_columns):
                columns[name] = (tenant_columns,)
    return schema_tenancies(columns, tenant_columns, read_only_for_tenants)


async def disable_cow_schema(
    executor: Executor,
    schema: str = "public",
    exclude: set[str] | None = None,
    revert_deferred_fks: bool = True,
    *,
    discard_changes: bool = False,
) -> list[str]:
    """Disable COW on every COW table of ``schema`` in one transaction; returns them."""
    plan = await plan_disable_schema(
        executor, schema, exclude, revert_deferred_fks, discard_changes=discard_changes
    )
    await run_atomically(executor, plan.statements)
    return plan.tables


async def plan_disable_schema(
    executor: Executor,
    schema: str = "public",
    exclude: set[str] | None = None,
    revert_deferred_fks: bool = True,
    *,
    discard_changes: bool = False,
) -> CowPlan:
    """What :func:`disable_cow_schema` does, without doing it."""
    await require_kit(executor)
    exclude = exclude or set()
    entries = [e for e in await registered_tables(executor, schema) if e.name not in exclude]
    if not entries:
        return CowPlan([], [])
    statements = await disable_script(
        executor, schema, entries, revert_deferred_fks, discard_changes
    )
    return CowPlan([entry.name for entry in entries], statements)
