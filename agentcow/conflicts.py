"""Conflicts between a session and base writes made since the session first wrote a row.

The first version of each key a session writes records the stored row it started from (or
that there was none). At commit, a key whose stored row differs from that baseline is a
conflict, unless the session ended with exactly the row the base now has.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import TableNotFoundError
from agentcow.executor import Executor
from agentcow.identifiers import uuid_array_literal, uuid_literal
from agentcow.operations import session_tables
from agentcow.script import run_pinned
from agentcow.templates import render

IdLike = str | uuid.UUID
ConflictPolicy = Literal["fail", "overwrite", "merge"]
CONFLICT_POLICIES: tuple[ConflictPolicy, ...] = ("fail", "overwrite", "merge")


@dataclass(frozen=True)
class Conflict:
    """One key of one table: the stored row when the session first wrote it (``base_then``),
    now (``base_now``) and as the session has it (``session``); ``None`` means no row.
    Values are as PostgreSQL renders them in JSON, numbers with a fraction as ``Decimal``
    (exact: ``numeric`` keeps its scale)."""

    table: str
    key: dict[str, Any]
    base_then: dict[str, Any] | None
    base_now: dict[str, Any] | None
    session: dict[str, Any] | None
    columns: tuple[str, ...]
    """Columns the session and the base both changed, to different values."""
    mergeable: bool
    """``on_conflict="merge"`` resolves it: the row exists on all sides, no column clashes."""

    @property
    def kind(self) -> Literal["updated", "deleted", "inserted"]:
        """What the base did to the row meanwhile."""
        if self.base_then is None:
            return "inserted"
        return "deleted" if self.base_now is None else "updated"


@dataclass(frozen=True)
class Cascade:
    """A stored row a commit would write through a cascading foreign key (``constraint``,
    from ``parent_table``) although no chosen version shows it: ``row`` as it is stored,
    ``key`` its primary key when its table is COW-enabled (else None). Values as in
    :class:`Conflict`."""

    table: str
    constraint: str
    parent_table: str
    key: dict[str, Any] | None
    row: dict[str, Any]


def check_policy(on_conflict: str) -> ConflictPolicy:
    for policy in CONFLICT_POLICIES:
        if on_conflict == policy:
            return policy
    raise ValueError(
        f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {on_conflict!r}"
    )


#: The commit block's error message for conflicts; its DETAIL lists them as JSON.
CONFLICT_MESSAGE = "agentcow: commit refused, rows changed in the base since the session wrote them"
#: At most this many conflicts per table travel in that DETAIL (get_cow_conflicts lists all).
CONFLICT_LIMIT = 1000


#: The commit block's error message for unseen cascades; its DETAIL lists them as JSON.
CASCADE_MESSAGE = "agentcow: commit refused, it would cascade to rows the review did not show"


def cascades_in_error(error: BaseException) -> list[Cascade] | None:
    """The unseen cascades a failed commit block reported, or None for any other error."""
    fields = postgres_error_fields(error)
    if fields is None or fields[:2] != ("40001", CASCADE_MESSAGE):
        return None
    return [
        Cascade(
            table=item["table_name"],
            constraint=item["constraint_name"],
            parent_table=item["parent_table"],
            key=item["key"],
            row=item["row"],
        )
        for item in json.loads(fields[2], parse_float=Decimal)
    ]


def conflict_from_json(item: dict[str, Any]) -> Conflict:
    """A conflict as sql/_conflicts.sql renders it (conflict_rows, as one JSON object)."""
    return Conflict(
        table=item["table_name"],
        key=item["key"],
        base_then=item["base_then"],
        base_now=item["base_now"],
        session=item["session_row"],
        columns=tuple(item["columns"]),
        mergeable=bool(item["mergeable"]),
    )


def conflicts_in_error(error: BaseException) -> list[Conflict] | None:
    """The conflicts a failed commit block reported, or None for any other error."""
    fields = postgres_error_fields(error)
    if fields is None:
        return None
    sqlstate, message, detail = fields
    if sqlstate != "40001" or message != CONFLICT_MESSAGE:
        return None
    return [conflict_from_json(item) for item in json.loads(detail, parse_float=Decimal)]


async def get_cow_conflicts(
    executor: Executor,
    session_id: IdLike,
    operation_ids: Sequence[IdLike] | None = None,
    *,
    schema: str = "public",
    table: str | None = None,
) -> list[Conflict]:
    """What a commit of the session (or of the chosen operations) would meet, committing
    nothing. Limit it to one table with ``table``."""
    session = uuid_literal(session_id, "session id")
    operations = None if operation_ids is None else uuid_array_literal(operation_ids)
    tables = [t for t in await session_tables(executor, schema) if table in (None, t.name)]
    if table is not None and not tables:
        raise TableNotFoundError(f"COW is not enabled on {schema}.{table}")
    # Rows appended to an append-only table (no key) cannot meet a base change.
    tables = [t for t in tables if not t.append_only]
    if not tables:
        return []
    rows = await run_pinned(
        executor,
        render("conflicts.sql", tables=tables, session=session, operations=operations),
        "conflict pg_catalog.text",
    )
    return [conflict_from_json(json.loads(text, parse_float=Decimal)) for (text,) in rows]
