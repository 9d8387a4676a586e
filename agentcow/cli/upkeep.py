"""Looking after a database: ``status`` (kit, tables, pending sessions), ``sessions`` (the
registry) and ``gc`` (abandoned sessions, old history)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentcow.catalog import kit_version, registered_tables
from agentcow.cli.common import Debug, Dsn, ExitCode, Json, Output, Schema, database, fail, run
from agentcow.cli.cow_tables import table_data, tables_table
from agentcow.cli.durations import duration_text, parse_duration
from agentcow.cli.plans import require_schema
from agentcow.cli.render import add_row, text_table
from agentcow.enable import sessions_with_changes
from agentcow.executor import Executor
from agentcow.registry import (
    SESSION_STATES,
    DroppedSession,
    SessionRecord,
    gc_sessions,
    list_sessions,
    set_history_retention,
)
from agentcow.templates import render
from agentcow.versions import KIT_VERSION


class StateChoice(enum.StrEnum):
    """The states of :data:`agentcow.registry.SESSION_STATES`, as choices."""

    open = "open"
    committed = "committed"
    partially_committed = "partially_committed"
    discarded = "discarded"
    undone = "undone"


OlderThan = Annotated[
    str | None,
    typer.Option(
        "--older-than", metavar="DURATION", help="last entered longer ago than this (30m, 12h, 7d)"
    ),
]


async def retention_of(db: Executor) -> timedelta | None:
    """How long commits keep history for undo (None: forever)."""
    value = (await db.execute(render("kit_settings.sql")))[0][0]
    return value if isinstance(value, timedelta) else None


def seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def kept_for(value: timedelta | None) -> str:
    return "forever" if value is None else duration_text(value)


def status(
    schema: Schema = "public", dsn: Dsn = None, as_json: Json = False, debug: Debug = False
) -> None:
    """The kit's version, the COW tables of the schema (layout, tenant column) and the
    sessions holding changes in them; exit 3 when the kit must be deployed or upgraded."""
    problem: list[str] = []

    async def command() -> Output:
        async with database(dsn) as db:
            installed = await kit_version(db)
            tables: list[dict[str, Any]] = []
            pending: set[str] = set()
            retention: timedelta | None = None
            if installed == KIT_VERSION:
                await require_schema(db, schema)
                for entry in await registered_tables(db, schema):
                    sessions = await sessions_with_changes(db, entry.changes)
                    pending.update(sessions)
                    tables.append(table_data(entry, len(sessions)))
                retention = await retention_of(db)
            elif installed is None:
                problem.append("agentcow is not deployed in this database: run agentcow deploy")
            else:
                problem.append(
                    f"the database has agentcow kit {installed}, this package speaks "
                    f"{KIT_VERSION}: run agentcow deploy to upgrade it"
                )
        data = {
            "schema": schema,
            "kit_version": installed,
            "package_kit_version": KIT_VERSION,
            "kit_current": installed == KIT_VERSION,
            "history_retention_seconds": seconds(retention),
            "tables": tables,
            "pending_sessions": sorted(pending),
        }
        kit = "not deployed" if installed is None else installed
        lines: list[RenderableType] = [
            Text(f"agentcow kit: {kit} (this package: {KIT_VERSION})"),
            Text(f"history kept: {kept_for(retention)}"),
        ]
        if installed == KIT_VERSION:
            lines.append(
                tables_table(tables) if tables else Text(f"no COW table in schema {schema}")
            )
            lines.append(Text(f"sessions holding changes: {len(pending)}"))
        return Output(Group(*(lines if installed == KIT_VERSION else lines[:1])), data)

    run(command, as_json=as_json, debug=debug)
    if problem:
        fail(problem[0], ExitCode.UNAVAILABLE)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(sep=" ", timespec="seconds")


def _versions(counts: dict[str, int]) -> str:
    return ", ".join(f"{table}: {n}" for table, n in counts.items()) or "-"


def session_data(record: SessionRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


def sessions_table(records: list[SessionRecord]) -> Table:
    table = text_table("session", "state", "tenant", "label", "created", "last active", "pending")
    for r in records:
        cells = [
            str(r.session_id) + ("" if r.registered else " (raw)"),
            r.state,
            r.tenant or "-",
            r.label or "-",
            _when(r.created_at),
            _when(r.last_active_at),
            _versions(r.pending),
        ]
        add_row(table, cells)
    return table


def sessions(
    schema: Schema = "public",
    state: Annotated[
        list[StateChoice] | None,
        typer.Option("--state", help="only sessions in this state (repeat for several)"),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="only sessions bound to this tenant")
    ] = None,
    older_than: OlderThan = None,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """The sessions of the registry, oldest first, with the versions each holds per table."""
    age = None if older_than is None else parse_duration(older_than, "--older-than")
    states = None if not state else [s for s in SESSION_STATES if s in state]

    async def command() -> Output:
        async with database(dsn) as db:
            await require_schema(db, schema)
            found = await list_sessions(db, schema, state=states, tenant=tenant, older_than=age)
        if not found:
            return Output(Text("no session matches"), [])
        return Output(sessions_table(found), [session_data(r) for r in found])

    run(command, as_json=as_json, debug=debug)


def gc(
    schema: Schema = "public",
    older_than: OlderThan = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be discarded; change nothing")
    ] = False,
    history_retention: Annotated[
        str | None,
        typer.Option(
            "--history-retention",
            metavar="DURATION|forever",
            help="first set how long commits keep history for undo (kit-wide; the kit's owner)",
        ),
    ] = None,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Discard the open sessions of the schema last entered longer ago than --older-than, and
    prune history past its retention."""
    if older_than is None:
        fail(
            "gc needs --older-than DURATION (e.g. 1d): the age of an abandoned session",
            ExitCode.USAGE,
        )
    age = parse_duration(older_than, "--older-than")
    if history_retention is not None and dry_run:
        fail("--dry-run changes nothing: give --history-retention without it", ExitCode.USAGE)
    retention = (
        None
        if history_retention in (None, "forever")
        else parse_duration(history_retention, "--history-retention")
    )

    async def command() -> Output:
        async with database(dsn) as db:
            await require_schema(db, schema)
            if history_retention is not None:
                await set_history_retention(db, retention)
            if dry_run:
                found = await list_sessions(
                    db, schema, state=["open", "partially_committed"], older_than=age
                )
                dropped = [DroppedSession(r.session_id, r.pending) for r in found if r.registered]
            else:
                dropped = await gc_sessions(db, schema, older_than=age)
            kept = await retention_of(db)
        data = {
            "dry_run": dry_run,
            "older_than_seconds": int(age.total_seconds()),
            "history_retention_seconds": seconds(kept),
            "sessions": [dataclasses.asdict(d) for d in dropped],
        }
        verb = "would discard" if dry_run else "discarded"
        said = Text(f"{verb} {len(dropped)} session(s) last entered more than {older_than} ago")
        table = text_table("session", "versions")
        for d in dropped:
            add_row(table, [str(d.session_id), _versions(d.versions)])
        parts: list[RenderableType] = [said]
        if dropped:
            parts.append(table)
        parts.append(Text(f"history kept: {kept_for(kept)}"))
        return Output(Group(*parts), data)

    run(command, as_json=as_json, debug=debug)
