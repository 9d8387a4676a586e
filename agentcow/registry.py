"""The session registry as a reviewer reads it: which sessions exist, how each stands, and
clearing away the ones agents abandoned.

Commits and discards record a session's state inside their own atomic block (a failed one
records nothing); the registry is written only by the kit's SECURITY DEFINER functions, so
no agent can change what it says. Sessions written with raw settings (never entered through
``apply_cow_variables``) are listed from the change tables, as ``registered=False``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agentcow.catalog import registered_tables, require_kit
from agentcow.executor import Executor
from agentcow.script import run_pinned
from agentcow.templates import render

SessionState = Literal["open", "committed", "partially_committed", "discarded", "undone"]
SESSION_STATES: tuple[SessionState, ...] = (
    "open",
    "committed",
    "partially_committed",
    "discarded",
    "undone",
)


@dataclass(frozen=True)
class SessionRecord:
    """One session. ``pending``: versions it holds per table of the schema listed.
    Timestamps are None for a session never entered through ``apply_cow_variables``
    (``registered`` False) until a commit or discard records it."""

    session_id: uuid.UUID
    registered: bool
    tenant: str | None
    label: str | None
    created_at: datetime | None
    last_active_at: datetime | None
    state: SessionState
    committed_by: str | None
    committed_at: datetime | None
    undone_by: str | None
    undone_at: datetime | None
    pending: dict[str, int]


@dataclass(frozen=True)
class DroppedSession:
    """A session :func:`gc_sessions` discarded, with the versions it dropped per table."""

    session_id: uuid.UUID
    versions: dict[str, int]


def interval_text(value: timedelta) -> str:
    """A ``timedelta`` as the text of an interval (microseconds exact)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return f"{micros} microseconds"


def _timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _record(item: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=uuid.UUID(item["session_id"]),
        registered=bool(item["registered"]),
        tenant=item["tenant"],
        label=item["label"],
        created_at=_timestamp(item["created_at"]),
        last_active_at=_timestamp(item["last_active_at"]),
        state=item["state"],
        committed_by=item["committed_by"],
        committed_at=_timestamp(item["committed_at"]),
        undone_by=item["undone_by"],
        undone_at=_timestamp(item["undone_at"]),
        pending={str(k): int(v) for k, v in item["pending"].items()},
    )


def _states(state: SessionState | Sequence[SessionState] | None) -> list[str] | None:
    if state is None:
        return None
    chosen: list[str] = [state] if isinstance(state, str) else list(state)
    unknown = [s for s in chosen if s not in SESSION_STATES]
    if unknown:
        raise ValueError(f"state must be among {', '.join(SESSION_STATES)}, not {unknown}")
    return chosen


async def list_sessions(
    executor: Executor,
    schema: str = "public",
    *,
    state: SessionState | Sequence[SessionState] | None = None,
    tenant: object = None,
    older_than: timedelta | None = None,
) -> list[SessionRecord]:
    """The sessions the caller may review (a role that owns COW tables sees every recorded
    session; any other role none), oldest first, with their pending versions in ``schema``'s
    tables. Filters: ``state`` (one or several), ``tenant`` (compared as text), and
    ``older_than`` (last entered longer ago than that)."""
    await require_kit(executor)
    tables = await registered_tables(executor, schema)
    rows = await run_pinned(
        executor,
        render(
            "list_sessions.sql",
            tables=tables,
            states=_states(state),
            tenant=None if tenant is None else str(tenant),
            older_than=None if older_than is None else interval_text(older_than),
        ),
        "session pg_catalog.text",
    )
    return [_record(json.loads(text)) for (text,) in rows]


async def gc_sessions(
    executor: Executor, schema: str = "public", *, older_than: timedelta
) -> list[DroppedSession]:
    """Discard, in one statement, every open (or partially committed) session last entered
    longer than ``older_than`` ago: its versions in the COW tables of ``schema`` the caller
    owns go, and the registry records it discarded (committed, for one partially committed).
    A session being written at that moment is left alone. Also prunes the caller's history
    past its retention. Sessions never entered through ``apply_cow_variables`` carry no time
    of activity and are never collected. Returns what was dropped."""
    await require_kit(executor)
    rows = await executor.execute(
        render("gc_sessions.sql", schema=schema, older_than=interval_text(older_than))
    )
    dropped: dict[uuid.UUID, dict[str, int]] = {}
    for session, table, versions in rows:
        counts = dropped.setdefault(uuid.UUID(str(session)), {})
        if table is not None:
            counts[str(table)] = int(versions)
    return [DroppedSession(session, counts) for session, counts in dropped.items()]


async def set_history_retention(executor: Executor, retention: timedelta | None) -> None:
    """How long commits keep their rows for :func:`~agentcow.undo.undo` (kit-wide; the
    kit's owner only). ``None`` keeps them forever; ``timedelta(0)`` keeps none (commits
    then record no history). Older rows are pruned at each commit and by
    :func:`gc_sessions`."""
    await require_kit(executor)
    await executor.execute(
        render(
            "history_retention.sql",
            retention=None if retention is None else interval_text(retention),
        )
    )
