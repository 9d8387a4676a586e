"""Tables joined by foreign keys name each other in their trigger functions (cascades, key
checks): where the other table's rows and session versions live depends on whether it is
COW-enabled, and in which layout. When a table is enabled or disabled, the functions of its
COW-enabled neighbours are rendered again, in the same transaction, so that none of them
keeps writing the table itself (production, in the overlay layout) or a view that is gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from agentcow.catalog import describe_registered, registered_tables
from agentcow.description import ForeignKey, TableDescription
from agentcow.executor import Executor
from agentcow.naming import object_names
from agentcow.templates import dollar_tag, render_statements

#: (schema, table) of each table changing state: its description once enabled, None once
#: disabled.
Changes = Mapping[tuple[str, str], TableDescription | None]


def _seen(fk: ForeignKey, other: tuple[str, str], changes: Changes) -> ForeignKey:
    if other not in changes:
        return fk
    enabled = changes[other]
    return dataclasses.replace(
        fk,
        other_is_cow=enabled is not None,
        other_pk_columns=enabled.pk_columns if enabled else (),
        other_overlay_schema=enabled.overlay_schema if enabled else None,
        other_tenant_column=enabled.tenancy.column if enabled else None,
        other_tenant_type=enabled.tenant_type if enabled else None,
    )


def seen_after(t: TableDescription, changes: Changes) -> TableDescription:
    """``t`` as it will see the tables of ``changes`` once they changed state."""
    return dataclasses.replace(
        t,
        foreign_keys=tuple(
            _seen(fk, (fk.parent_schema, fk.parent_table), changes) for fk in t.foreign_keys
        ),
        referenced_by=tuple(
            _seen(fk, (fk.child_schema, fk.child_table), changes) for fk in t.referenced_by
        ),
    )


def _neighbours(tables: Iterable[TableDescription], changes: Changes) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for t in tables:
        found |= {(fk.parent_schema, fk.parent_table) for fk in t.foreign_keys if fk.other_is_cow}
        found |= {(fk.child_schema, fk.child_table) for fk in t.referenced_by if fk.other_is_cow}
    return found - set(changes)


def function_statements(t: TableDescription) -> list[str]:
    """CREATE OR REPLACE of the functions that name other tables."""
    names = object_names(t.name)
    return [
        statement
        for template in ("write_trigger.sql", "fk_checks.sql", "fk_statement_checks.sql")
        for statement in render_statements(
            template, t=t, names=names, tag=dollar_tag(), replace=True
        )
    ]


async def neighbour_statements(
    executor: Executor, described: Iterable[TableDescription], changes: Changes
) -> list[str]:
    """The functions of the COW tables joined by a foreign key to ``described`` (the tables
    changing state, as described before the change), rendered as they will see them."""
    statements: list[str] = []
    for schema, name in sorted(_neighbours(described, changes)):
        (entry,) = await registered_tables(executor, schema, name)
        t = await describe_registered(executor, schema, entry)
        statements += function_statements(seen_after(t, changes))
    return statements
