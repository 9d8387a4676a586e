"""Tenant isolation settings of COW tables: checked at enable, read from the catalog.

A table's tenant column holds each row's tenant; a session bound to a tenant sees and
writes only rows whose column equals its tenant (cast from the text the session was bound
with to the column's type, so the column's indexes serve). Tables without one are shared;
``read_only`` ones refuse every write of a tenant-bound session.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from agentcow.description import NO_TENANCY, TableDescription, Tenancy
from agentcow.errors import UnsupportedTableError
from agentcow.executor import Executor
from agentcow.templates import render

#: ``enable_cow_schema``'s ``tenant_columns``: one column name for every table that has it,
#: or table name -> column.
TenantColumns = str | Mapping[str, str] | None


async def tenant_column_type(executor: Executor, oid: int, column: str) -> tuple[str, bool] | None:
    """The tenant column's type (by schema and name) and whether it has an equality; None
    when the table has no such column."""
    rows = await executor.execute(render("catalog_tenant_column.sql", oid=oid, column=column))
    return (str(rows[0][0]), bool(rows[0][1])) if rows else None


async def tenancy_reasons(executor: Executor, t: TableDescription) -> list[str]:
    """Why ``t`` cannot have the tenant isolation it is described with (empty: it can)."""
    name = t.tenancy.column
    if name is None:
        return []
    column = next((c for c in t.columns if c.name == name), None)
    if column is None:
        return [f"it has no column {name!r} to hold each row's tenant (tenant_column)"]
    reasons = []
    if not column.not_null:
        reasons.append(
            f"its tenant column {name!r} allows NULL: a row without a tenant would belong to "
            "no tenant; make it NOT NULL"
        )
    if column.generated:
        reasons.append(f"its tenant column {name!r} is generated; name a stored column")
    found = await tenant_column_type(executor, t.relation.oid, name)
    if found is not None and not found[1]:
        reasons.append(
            f"its tenant column {name!r} has type {column.type}, which has no equality "
            "operator to compare tenants with"
        )
    return reasons


def schema_tenancies(
    tables: Mapping[str, Collection[str]],
    tenant_columns: TenantColumns,
    read_only_for_tenants: Collection[str],
) -> dict[str, Tenancy]:
    """The tenant isolation of each of ``tables`` (name -> its column names), from
    ``enable_cow_schema``'s arguments: a column name applies to every table that has it, a
    mapping names each table's column. Names of tables not in ``tables`` are refused."""
    if isinstance(tenant_columns, str):
        chosen = {t: tenant_columns for t, columns in tables.items() if tenant_columns in columns}
    else:
        chosen = dict(tenant_columns or {})
    if isinstance(read_only_for_tenants, str):
        raise TypeError("read_only_for_tenants takes a collection of table names, not a str")
    unknown = sorted((set(chosen) | set(read_only_for_tenants)) - set(tables))
    if unknown:
        reasons = {t: ["named in tenant_columns or read_only_for_tenants"] for t in unknown}
        raise UnsupportedTableError(
            f"tenant_columns and read_only_for_tenants name tables that enable_cow_schema "
            f"does not enable here (not plain tables of the schema, excluded, or enabled "
            f"already): {', '.join(unknown)}",
            reasons,
        )
    return {
        t: Tenancy(chosen.get(t), t in read_only_for_tenants)
        if t in chosen or t in read_only_for_tenants
        else NO_TENANCY
        for t in tables
    }
