"""Reads a table's shape from the PostgreSQL catalog into a :class:`TableDescription`.

Everything the templates render comes from this description, so the DDL and trigger code
always match the table as it is, not as someone remembered it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from agentcow.description import (
    NO_TENANCY,
    Check,
    Column,
    ForeignKey,
    RegisteredTable,
    Relation,
    TableDescription,
    Tenancy,
    UniqueKey,
)
from agentcow.errors import (
    KitVersionError,
    NotDeployedError,
    StaleOverlayError,
    TableNotFoundError,
)
from agentcow.executor import Executor
from agentcow.templates import render
from agentcow.tenancy import tenant_column_type
from agentcow.versions import KIT_VERSION, OBJECTS_VERSION


async def kit_version(executor: Executor) -> str | None:
    """The deployed kit version, or None when the kit is not deployed."""
    if not (await executor.execute(render("kit_present.sql")))[0][0]:
        return None
    rows = await executor.execute(render("kit_version.sql"))
    return str(rows[0][0]) if rows else None


async def require_kit(executor: Executor) -> None:
    """The kit this package speaks is deployed (older ones are upgraded by deploying)."""
    version = await kit_version(executor)
    if version is None:
        raise NotDeployedError(
            "agentcow is not deployed in this database: call deploy_cow_functions(executor) first"
        )
    if version != KIT_VERSION:
        raise KitVersionError(
            f"the database has agentcow kit {version}, this package speaks {KIT_VERSION}: "
            "call deploy_cow_functions(executor) to upgrade it"
        )


async def describe_current(
    executor: Executor, schema: str, entry: RegisteredTable
) -> TableDescription:
    """Describe a COW table whose objects have this package's version (operations, conflicts
    and commits read columns that older versions lack)."""
    if entry.objects_version != OBJECTS_VERSION:
        raise KitVersionError(
            f"{schema}.{entry.name} was enabled with layout {entry.objects_version}; its owner "
            f"must call upgrade_cow_tables(executor, schema={schema!r}) to bring it to "
            f"{OBJECTS_VERSION}"
        )
    return await describe_registered(executor, schema, entry)


async def describe_stored(
    executor: Executor, schema: str, entry: RegisteredTable
) -> TableDescription:
    """Describe a COW table's base table as it is now, with the key and the layout recorded
    when it was enabled."""
    return await describe_table(
        executor,
        schema,
        entry.name,
        key_columns=entry.pk_columns,
        overlay_schema=entry.overlay_schema,
        relation_name=entry.base_name,
        tenancy=entry.tenancy,
    )


async def describe_registered(
    executor: Executor, schema: str, entry: RegisteredTable
) -> TableDescription:
    """Describe a COW table as its objects (view, change table, triggers) know it. In the
    overlay layout the table may have been altered since: columns added since are left out
    (the overlay does not show them until refresh_cow); a column the overlay reads that is
    gone or has another type raises :class:`StaleOverlayError`."""
    t = await describe_stored(executor, schema, entry)
    if t.overlay_schema is None:
        return t
    made = await overlay_columns(executor, t)
    now = {c.name: c.type for c in t.columns}
    changed = [
        f"column {name} {'is gone' if name not in now else f'is now {now[name]}'}"
        for name, type_ in made
        if now.get(name) != type_
    ]
    if changed:
        raise StaleOverlayError(
            f"{schema}.{t.name} changed since its overlay was made ({'; '.join(changed)}): "
            f"its owner must call refresh_cow(executor, schema={schema!r})",
            [f"{schema}.{t.name}"],
        )
    return known_columns_only(t, {name for name, _ in made})


async def overlay_columns(executor: Executor, t: TableDescription) -> list[tuple[str, str]]:
    """(name, type) of the columns an overlay was made with: its row type's."""
    rows = await executor.execute(render("catalog_row_type.sql", type=t.row_type))
    return [(str(name), str(type_)) for name, type_ in rows]


def known_columns_only(t: TableDescription, known: set[str]) -> TableDescription:
    """``t`` less the columns (and the keys over them) its overlay does not know."""

    def known_all(columns: Sequence[str]) -> bool:
        return known.issuperset(columns)

    return dataclasses.replace(
        t,
        columns=tuple(c for c in t.columns if c.name in known),
        unique_keys=tuple(u for u in t.unique_keys if known_all(u.columns)),
        foreign_keys=tuple(fk for fk in t.foreign_keys if known_all(fk.child_columns)),
        referenced_by=tuple(fk for fk in t.referenced_by if known_all(fk.parent_columns)),
        lookup_columns=tuple(c for c in t.lookup_columns if c in known),
    )


async def registered_tables(
    executor: Executor, schema: str, table: str | None = None
) -> list[RegisteredTable]:
    rows = await executor.execute(render("registry.sql", schema=schema, table=table))
    return [
        RegisteredTable(
            schema, name, base, changes, tuple(pk), tuple(fks), version, overlay, tenant, read_only
        )
        for name, base, changes, pk, fks, version, overlay, tenant, read_only in rows
    ]


async def find_relation(executor: Executor, schema: str, relation: str) -> Relation | None:
    rows = await executor.execute(render("catalog_relation.sql", schema=schema, relation=relation))
    return Relation(*rows[0]) if rows else None


def _row_key(
    uniques: Sequence[UniqueKey], columns: Sequence[Column], key_columns: Sequence[str] | None
) -> UniqueKey | None:
    """The key that tells rows apart in a table without a primary key: a unique key whose
    columns are all NOT NULL (and not deferrable, so commit's ON CONFLICT can use it) does
    that job exactly as a primary key would. ``key_columns`` picks one (the registry's
    record, or enable's ``pk_cols``); else the one with the fewest columns, then by name.
    None: the table is append-only in sessions."""
    not_null = {c.name for c in columns if c.not_null}
    candidates = sorted(
        (u for u in uniques if not u.deferrable and not_null.issuperset(u.columns)),
        key=lambda u: (len(u.columns), u.name),
    )
    if key_columns is not None:
        return next((u for u in candidates if set(u.columns) == set(key_columns)), None)
    return candidates[0] if candidates else None


def _catalog_context(relation: Relation) -> dict[str, Any]:
    """What the catalog_*.sql templates read of a relation."""
    return {"oid": relation.oid, "server_version": relation.server_version}


async def describe_table(
    executor: Executor,
    schema: str,
    name: str,
    *,
    key_columns: Sequence[str] | None = None,
    overlay_schema: str | None = None,
    relation_name: str | None = None,
    tenancy: Tenancy = NO_TENANCY,
) -> TableDescription:
    """Describe ``schema.name`` as stored in ``relation_name`` (the base table once enabled:
    see :func:`describe_registered`), for the layout ``overlay_schema`` says and the tenant
    isolation ``tenancy`` says (checked at enable by :func:`agentcow.tenancy.tenancy_reasons`;
    ``tenant_type`` stays None when the column is missing).

    Without a primary key, a NOT NULL unique key stands in for it (see :func:`_row_key`):
    ``key_columns`` picks which."""
    relation_name = relation_name or name
    relation = await find_relation(executor, schema, relation_name)
    if relation is None:
        raise TableNotFoundError(f"table {schema}.{name} does not exist")
    context = _catalog_context(relation)
    columns = tuple(
        Column(
            name=n, type=t, not_null=nn, default=d, identity=i, generated=g, sequence=s, virtual=v
        )
        for n, t, nn, d, i, g, s, v in await executor.execute(
            render("catalog_columns.sql", **context)
        )
    )
    checks = tuple(
        Check(name, expression)
        for name, expression in await executor.execute(render("catalog_checks.sql", **context))
    )
    primary_key: UniqueKey | None = None
    uniques: list[UniqueKey] = []
    exclusions: list[str] = []
    fks: list[ForeignKey] = []
    incoming: list[ForeignKey] = []
    for (
        side,
        conname,
        kind,
        cols,
        deferrable,
        deferred,
        other_schema,
        other_table,
        other_is_cow,
        ref_cols,
        upd,
        dele,
        match,
        set_cols,
        nulls_not_distinct,
        other_pk_cols,
        other_overlay_schema,
        other_tenant_column,
        other_tenant_type,
    ) in await executor.execute(render("catalog_constraints.sql", **context)):
        if side == "own" and kind == "p":
            primary_key = UniqueKey(conname, tuple(cols))
        elif side == "own" and kind == "u":
            uniques.append(UniqueKey(conname, tuple(cols), nulls_not_distinct, deferrable))
        elif side == "own" and kind == "x":
            exclusions.append(conname)
        elif kind == "f":
            own = side == "own"
            fk = ForeignKey(
                name=conname,
                child_schema=schema if own else other_schema,
                child_table=name if own else other_table,
                child_columns=tuple(cols),
                parent_schema=other_schema if own else schema,
                parent_table=other_table if own else name,
                parent_columns=tuple(ref_cols),
                on_update=upd,
                on_delete=dele,
                match_full=match == "f",
                deferrable=deferrable,
                initially_deferred=deferred,
                delete_set_columns=tuple(set_cols),
                other_is_cow=other_is_cow,
                other_pk_columns=tuple(other_pk_cols),
                other_overlay_schema=other_overlay_schema,
                other_tenant_column=other_tenant_column,
                other_tenant_type=other_tenant_type,
            )
            (fks if own else incoming).append(fk)
    tenant_type = None
    if tenancy.column is not None:
        found = await tenant_column_type(executor, relation.oid, tenancy.column)
        tenant_type = found[0] if found else None
    lookup_columns: tuple[str, ...] = ()
    if primary_key is None:
        primary_key = _row_key(uniques, columns, key_columns)
        uniques = [u for u in uniques if u is not primary_key]
    if primary_key is None:
        rows = await executor.execute(render("catalog_lookup_columns.sql", **context))
        lookup_columns = tuple(row[0] for row in rows)
    return TableDescription(
        schema=schema,
        name=name,
        relation=relation,
        columns=columns,
        primary_key=primary_key,
        unique_keys=tuple(uniques),
        checks=checks,
        exclusions=tuple(exclusions),
        foreign_keys=tuple(fks),
        referenced_by=tuple(incoming),
        lookup_columns=lookup_columns,
        overlay_schema=overlay_schema,
        tenancy=tenancy,
        tenant_type=tenant_type,
    )


async def table_dependents(executor: Executor, t: TableDescription) -> tuple[str, ...]:
    """Views, materialized views and SQL-bodied functions that name the table (what enable
    must refuse: after the rename they would read the base table)."""
    rows = await executor.execute(render("catalog_dependents.sql", **_catalog_context(t.relation)))
    return tuple(row[0] for row in rows)
