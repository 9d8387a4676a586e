"""The tables an agent is offered: the COW tables of the server's schema whose views its role
may read, described from the kit's registry and the tables' own definitions.

A name the agent gives is looked up among those first; nothing else is ever described, so
no argument of the agent's reaches a catalog query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.description import ForeignKey, TableDescription
from agentcow.executor import Executor
from agentcow.templates import render

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class AgentTable:
    """A COW table the role may read, and the writes its privileges allow."""

    name: str
    insert: bool
    update: bool
    delete: bool

    def listing(self) -> dict[str, Any]:
        writes = [kind for kind in ("insert", "update", "delete") if getattr(self, kind)]
        return {"table": self.name, "writes": writes}


async def agent_tables(executor: Executor, schema: str) -> list[AgentTable]:
    await require_kit(executor)
    rows = await executor.execute(render("agent_tables.sql", schema=schema))
    return [AgentTable(str(name), bool(i), bool(u), bool(d)) for name, i, u, d in rows]


async def find_table(executor: Executor, schema: str, name: str) -> AgentTable | None:
    return next((t for t in await agent_tables(executor, schema) if t.name == name), None)


async def describe(executor: Executor, schema: str, table: AgentTable) -> dict[str, Any]:
    """Columns, keys, checks and references of a table found by :func:`find_table`."""
    (entry,) = await registered_tables(executor, schema, table.name)
    t = await describe_current(executor, schema, entry)
    return {
        **table.listing(),
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "nullable": not c.not_null,
                "default": c.default,
                "identity": {"a": "ALWAYS", "d": "BY DEFAULT"}.get(c.identity),
                "generated": c.generated,
            }
            for c in t.columns
        ],
        "primary_key": list(t.primary_key.columns) if t.primary_key else None,
        "append_only": t.append_only,
        "unique": [list(u.columns) for u in t.unique_keys],
        "checks": [c.expression for c in t.checks],
        "references": [_reference(fk) for fk in t.foreign_keys],
        "referenced_by": [_referenced_by(fk) for fk in t.referenced_by],
        "tenant_column": t.tenancy.column,
        "read_only_for_tenants": t.tenancy.read_only,
        "notes": _notes(t),
    }


def _reference(fk: ForeignKey) -> dict[str, Any]:
    return {
        "columns": list(fk.child_columns),
        "table": fk.parent_table,
        "table_columns": list(fk.parent_columns),
        "on_delete": _ACTIONS.get(fk.on_delete, fk.on_delete),
        "on_update": _ACTIONS.get(fk.on_update, fk.on_update),
    }


def _referenced_by(fk: ForeignKey) -> dict[str, Any]:
    return {
        "table": fk.child_table,
        "columns": list(fk.child_columns),
        "table_columns": list(fk.parent_columns),
        "on_delete": _ACTIONS.get(fk.on_delete, fk.on_delete),
    }


def _notes(t: TableDescription) -> list[str]:
    notes = []
    if t.append_only:
        notes.append("no key tells its rows apart: in a session, INSERT only")
    if t.tenancy.column is not None:
        notes.append(
            f"rows belong to tenants ({t.tenancy.column}): a session bound to a tenant sees and "
            "writes only its own"
        )
    if t.tenancy.read_only:
        notes.append("read-only for sessions bound to a tenant")
    return notes
