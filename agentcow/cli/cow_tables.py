"""COW tables as the commands show them: one JSON object per table (``enable``, ``status``)
and the Rich table people read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from agentcow.cli.render import add_row, text_table
from agentcow.description import RegisteredTable


def dotted(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def table_data(entry: RegisteredTable, pending_sessions: int | None = None) -> dict[str, Any]:
    """The JSON shape of a COW table (README, *The agentcow command*)."""
    where = entry.overlay_schema or entry.schema
    data: dict[str, Any] = {
        "schema": entry.schema,
        "table": entry.name,
        "layout": "overlay" if entry.overlay_schema else "rename",
        "view": dotted(where, entry.name),
        "base_table": dotted(entry.schema, entry.base_name),
        "changes_table": dotted(where, entry.changes_name),
        "key_columns": list(entry.pk_columns),
        "tenant_column": entry.tenant_column,
        "read_only_for_tenants": entry.tenant_read_only,
        "deferrable_fks": list(entry.deferrable_fks),
        "objects_version": entry.objects_version,
    }
    if pending_sessions is not None:
        data["pending_sessions"] = pending_sessions
    return data


def tables_table(rows: Sequence[dict[str, Any]]) -> Table:
    """``rows`` of :func:`table_data` as a Rich table (every cell plain text: names are
    never read as markup)."""
    pending = bool(rows) and "pending_sessions" in rows[0]
    table = text_table("table", "layout", "view", "change table", "key", "tenant column")
    if pending:
        table.add_column("sessions", justify="right", overflow="fold")
    for row in rows:
        tenant = row["tenant_column"] or "-"
        if row["read_only_for_tenants"]:
            tenant += " (read-only for tenants)"
        cells = [
            row["table"],
            row["layout"],
            row["view"],
            row["changes_table"],
            ", ".join(row["key_columns"]) or "(none: append-only)",
            tenant,
        ]
        if pending:
            cells.append(str(row["pending_sessions"]))
        add_row(table, cells)
    return table
