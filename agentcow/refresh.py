"""Bringing overlays up to date after a migration altered their tables (overlay layout).

The overlay layout leaves the table itself alone, so a migration may alter it; its overlay
(view, change table, triggers) keeps the shape it was made with until ``refresh_cow``
rebuilds it: added columns are then shown to sessions, and columns dropped, renamed or
retyped stop failing their statements. PostgreSQL refuses to drop or retype a column the
overlay view reads: ``cow_migration`` drops the views around such a migration, in its
transaction, and makes them again before it commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from agentcow.catalog import (
    describe_stored,
    find_relation,
    overlay_columns,
    registered_tables,
    require_kit,
)
from agentcow.description import Grant, RegisteredTable, TableDescription
from agentcow.enable import cow_objects, sessions_with_changes
from agentcow.errors import PendingChangesError, UnsupportedTableError
from agentcow.executor import Executor
from agentcow.grants import read_grants
from agentcow.identifiers import derived_name
from agentcow.naming import is_reserved_column, object_names
from agentcow.script import run_atomically
from agentcow.templates import render_statements
from agentcow.twins import overlaid_tables, twin_script


async def _overlay_entries(
    executor: Executor, schema: str, tables: Sequence[str] | None
) -> list[RegisteredTable]:
    entries = [e for e in await registered_tables(executor, schema) if e.overlay_schema]
    if tables is not None:
        unknown = sorted(set(tables) - {e.name for e in entries})
        if unknown:
            raise UnsupportedTableError(
                f"not COW-enabled in the overlay layout in schema {schema}: {', '.join(unknown)}"
            )
        entries = [e for e in entries if e.name in tables]
    return entries


async def _refresh_statements(
    executor: Executor,
    entry: RegisteredTable,
    t: TableDescription,
    made: list[tuple[str, str]],
    grants: Sequence[Grant],
) -> list[str]:
    """The statements that rebuild ``t``'s overlay, keeping its pending versions when every
    column they hold is still there with its type; else refused, naming the sessions."""
    where = f"{t.schema}.{t.name}"
    now = {c.name: c.type for c in t.columns}
    lost = [name for name, type_ in made if now.get(name) != type_]
    reasons = []
    if set(t.pk_columns) != set(entry.pk_columns):
        reasons.append(
            f"its key is now {list(t.pk_columns)} (was {list(entry.pk_columns)}): disable COW "
            "and enable it again"
        )
    reserved = [c for c in now if is_reserved_column(c)]
    if reserved:
        reasons.append(f"agentcow reserves the names of its columns {reserved}")
    if entry.tenant_column is not None and t.tenant_type is None:
        reasons.append(
            f"its tenant column {entry.tenant_column!r} is gone: an overlay without it would "
            "show every tenant's rows; disable COW and enable it again"
        )
    if reasons:
        raise UnsupportedTableError(
            f"cannot refresh {where}: {'; '.join(reasons)}", {where: reasons}
        )
    if lost:
        pending = await sessions_with_changes(executor, entry.changes)
        if pending:
            raise PendingChangesError(
                f"cannot refresh {where}: columns {', '.join(lost)} were dropped, renamed or "
                f"given another type, and {len(pending)} session(s) hold versions of them "
                f"({', '.join(pending[:5])}); commit or discard them, then refresh_cow"
            )
    aside = derived_name(t.name, "_cow_refresh")
    kept = [name for name, type_ in made if now.get(name) == type_]
    functions = object_names(t.name).functions
    return [
        *render_statements("refresh.sql", step="begin", t=t, aside=aside, functions=functions),
        *cow_objects(
            t,
            grants,
            fill_changes=render_statements("refresh.sql", step="copy", t=t, aside=aside, kept=kept),
        ),
        *render_statements("refresh.sql", step="end", t=t, aside=aside),
    ]


async def refresh_cow(
    executor: Executor, schema: str = "public", tables: Sequence[str] | None = None
) -> list[str]:
    """Rebuild, in one transaction, the overlay of every overlay-layout table of ``schema``
    (or of ``tables``) that a migration altered; returns those tables.

    Call it after the migration, as the tables' owner, in the migration's transaction where
    the tool allows (:func:`cow_migration` does, for migrations that drop or retype
    columns). Pending session changes are kept: a column added since appears in them with
    the stored row's value (a new row's: the column's default). When a column that pending
    versions hold was dropped, renamed or retyped, :class:`PendingChangesError` names the
    sessions (commit or discard them first) and nothing changes. An overlay view dropped
    by other means is made again with the table's privileges.
    """
    await require_kit(executor)
    entries = await _overlay_entries(executor, schema, tables)
    return await _refresh(executor, schema, entries, {})


async def _refresh(
    executor: Executor,
    schema: str,
    entries: Sequence[RegisteredTable],
    grants: Mapping[str, Sequence[Grant]],
) -> list[str]:
    """Rebuild the overlays of ``entries`` that changed; their views get ``grants`` (by
    table), else the privileges they have, else their table's."""
    refreshed: list[str] = []
    overlaid = await overlaid_tables(executor)
    drop_twins, make_twins = await twin_script(executor, overlaid, overlaid)
    statements = drop_twins
    for entry in entries:
        t = await describe_stored(executor, schema, entry)
        made = await overlay_columns(executor, t)
        view = await find_relation(executor, *t.view)
        if made == [(c.name, c.type) for c in t.columns] and view is not None:
            continue
        kept = grants.get(entry.name)
        if kept is None:
            kept = await read_grants(executor, view.oid if view else t.relation.oid)
        statements += await _refresh_statements(executor, entry, t, made, kept)
        refreshed.append(entry.name)
    await run_atomically(executor, statements + make_twins)
    return refreshed


@asynccontextmanager
async def cow_migration(
    executor: Executor, schema: str = "public", tables: Sequence[str] | None = None
) -> AsyncIterator[None]:
    """Around a migration that drops or retypes columns of overlay-layout tables (``schema``'s,
    or ``tables``): their overlay views go first (PostgreSQL refuses to drop or retype a
    column a view reads), then ``refresh_cow`` rebuilds them with the privileges they had.

    Use it inside the migration's transaction: sessions then wait for the migration and
    find the new overlay. Outside one, sessions cannot be entered in between
    (:class:`OverlayMissingError`). When the block raises, nothing is rebuilt.
    """
    await require_kit(executor)
    entries = await _overlay_entries(executor, schema, tables)
    grants: dict[str, tuple[Grant, ...]] = {}
    overlaid = await overlaid_tables(executor)
    statements, _ = await twin_script(executor, overlaid, {})
    for entry in entries:
        view = (entry.overlay_schema or schema, entry.name)
        found = await find_relation(executor, *view)
        if found is not None:
            grants[entry.name] = await read_grants(executor, found.oid)
        statements += render_statements("detach.sql", view=view, changes=entry.changes)
    await run_atomically(executor, statements)
    yield
    await _refresh(executor, schema, entries, grants)
