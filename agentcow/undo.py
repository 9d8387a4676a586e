"""Undoing a committed session, or some of its operations, from the history commits keep.

Each commit records, per key it applied, the base row before and after it
(``agentcow.history``). An undo writes the rows before back under a session of its own (the
*undo session*) and commits that session in the same block, so it gets everything a commit
does: locks, conflict checks against what the commit wrote (a row changed since is a
conflict, with the same ``on_conflict`` policies), foreign-key order, history of its own
(undoing the undo session redoes), and a registry entry.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agentcow.commit import cascade_message, checked_ids, commit_statement, parents_first
from agentcow.conflicts import (
    Conflict,
    ConflictPolicy,
    cascades_in_error,
    check_policy,
    conflicts_in_error,
)
from agentcow.description import TableDescription
from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import (
    AlreadyUndoneError,
    CascadeConflictError,
    CommitConflictError,
    HistoryNotFoundError,
    OperationNotFoundError,
)
from agentcow.executor import Executor
from agentcow.identifiers import Sql, uuid_literal, validate_uuid
from agentcow.operations import Dependency, close_selection, session_tables
from agentcow.script import run_atomically, run_pinned
from agentcow.templates import render

IdLike = str | uuid.UUID

#: The undo block's error when another undo marked some of its rows first.
ALREADY_UNDONE_MESSAGE = "agentcow: rows of this undo were undone meanwhile"


@dataclass(frozen=True)
class Undone:
    """What :func:`undo` reverted: the operations (the chosen ones and those that built on
    them), the keys restored per table, and the undo session that holds the restoring
    commit (undo it to redo)."""

    session_id: uuid.UUID
    undo_session_id: uuid.UUID
    operation_ids: tuple[uuid.UUID, ...]
    rows: dict[str, int]


@dataclass(frozen=True)
class HistoryEntry:
    """One history row: a key of a table as one commit left it (``before``/``after`` as
    PostgreSQL renders the rows in JSON; ``undone``: an undo reverted it)."""

    history_id: int
    table: str
    key: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    operations: tuple[uuid.UUID, ...]
    undone: bool


def _entry(item: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        history_id=int(item["history_id"]),
        table=item["table"],
        key=item["key"],
        before=item["before"],
        after=item["after"],
        operations=tuple(uuid.UUID(op) for op in item["operations"]),
        undone=bool(item["undone"]),
    )


def _values(image: dict[str, Any] | None, columns: Sequence[str]) -> str | None:
    """The columns' values in a row image, comparable across tables; None when the row is
    absent or a value is null (a null references nothing, holds no unique value)."""
    if image is None or any(image.get(c) is None for c in columns):
        return None
    return json.dumps([image[c] for c in columns], sort_keys=True, default=str)


def _gained(e: HistoryEntry, columns: Sequence[str]) -> str | None:
    """The value the commit gave this key's row in ``columns`` (None if it kept it)."""
    value = _values(e.after, columns)
    return value if value is not None and value != _values(e.before, columns) else None


def _lost(e: HistoryEntry, columns: Sequence[str]) -> str | None:
    """The value this key's row gave up in ``columns`` in the commit (None if it kept it)."""
    value = _values(e.before, columns)
    return value if value is not None and value != _values(e.after, columns) else None


def _arcs(sources: Iterable[HistoryEntry], targets: Iterable[HistoryEntry]) -> list[Dependency]:
    """``(a, b)`` for every operation a of the sources and b of the targets."""
    targets = list(targets)
    return [(a, b) for s in sources for t in targets for a in s.operations for b in t.operations]


def undo_dependencies(
    entries: Sequence[HistoryEntry], tables: dict[str, TableDescription]
) -> list[Dependency]:
    """``(depends_on, operation)`` pairs among the committed operations, from what their
    commits wrote: undoing ``depends_on`` needs ``operation`` undone too. An operation builds
    on one that wrote the same key before it (or in the same commit: one history row holds
    both), took a reference to a value it created, took a unique value it released, or
    removed a value it had stopped referencing (so that undoing the latter alone would bring
    a reference to a value that is gone)."""
    arcs: list[Dependency] = []
    by_key: dict[tuple[str, str], list[HistoryEntry]] = defaultdict(list)
    for e in entries:
        by_key[(e.table, json.dumps(e.key, sort_keys=True, default=str))].append(e)
    for same in by_key.values():
        for i, e in enumerate(same):
            arcs += _arcs([e], same[i:])  # the same commit both ways, later commits onwards
    per_table: dict[str, list[HistoryEntry]] = defaultdict(list)
    for e in entries:
        per_table[e.table].append(e)
    for name, rows in per_table.items():
        t = tables[name]
        for fk in t.foreign_keys:
            parents = per_table.get(fk.parent_table, []) if fk.parent_schema == t.schema else []
            arcs += _value_arcs(parents, fk.parent_columns, rows, fk.child_columns)
        for unique in t.unique_keys:
            arcs += _value_arcs(rows, unique.columns, rows, unique.columns, unique=True)
    return arcs


def _value_arcs(
    owners: Sequence[HistoryEntry],
    owner_columns: Sequence[str],
    users: Sequence[HistoryEntry],
    user_columns: Sequence[str],
    *,
    unique: bool = False,
) -> list[Dependency]:
    """Arcs through a value: owners (parents) creating a value users (children) then took,
    and users dropping a value owners then removed; for a unique key (owners and users the
    same rows), a row releasing a value another took."""
    created: dict[str, list[HistoryEntry]] = defaultdict(list)
    removed: dict[str, list[HistoryEntry]] = defaultdict(list)
    for o in owners:
        if (value := _gained(o, owner_columns)) is not None:
            created[value].append(o)
        if (value := _lost(o, owner_columns)) is not None:
            removed[value].append(o)
    arcs: list[Dependency] = []
    for u in users:
        took, dropped = _gained(u, user_columns), _lost(u, user_columns)
        if unique:
            if took is not None:
                arcs += _arcs([r for r in removed.get(took, []) if r is not u], [u])
            continue
        if took is not None:
            arcs += _arcs(created.get(took, []), [u])
        if dropped is not None:
            arcs += _arcs([u], removed.get(dropped, []))
    return arcs


def _id_array(ids: Iterable[int]) -> Sql:
    return Sql("'{" + ",".join(str(int(i)) for i in ids) + "}'::pg_catalog.int8[]")


async def _history(executor: Executor, session_id: IdLike, schema: str) -> list[HistoryEntry]:
    rows = await run_pinned(
        executor,
        render("history_rows.sql", session=uuid_literal(session_id, "session id"), schema=schema),
        "entry pg_catalog.text",
    )
    return [_entry(json.loads(text, parse_float=Decimal)) for (text,) in rows]


async def session_history(
    executor: Executor, session_id: IdLike, schema: str = "public"
) -> list[HistoryEntry]:
    """What the session's commits wrote to ``schema``'s tables, one entry per key and
    commit, oldest first (the caller's tables only): what :func:`undo` can revert."""
    return await _history(executor, validate_uuid(session_id, "session id"), schema)


def _choose(
    session_id: IdLike,
    entries: Sequence[HistoryEntry],
    operation_ids: Sequence[uuid.UUID] | None,
    tables: dict[str, TableDescription],
    include_dependents: bool,
) -> tuple[list[HistoryEntry], list[uuid.UUID]]:
    """The history rows to undo and the operations they belong to, closed under dependents."""
    if not entries:
        raise HistoryNotFoundError(
            f"session {session_id} has no committed history in these tables (never committed "
            "there, history past its retention or turned off, or tables the caller does not "
            "own)"
        )
    live = [e for e in entries if not e.undone]
    if operation_ids is None:
        if not live:
            raise AlreadyUndoneError(f"session {session_id} was undone already")
        chosen = list(dict.fromkeys(op for e in live for op in e.operations))
        return live, chosen
    live_ops = {op for e in live for op in e.operations}
    all_ops = {op for e in entries for op in e.operations}
    undone = [op for op in operation_ids if op in all_ops and op not in live_ops]
    if undone:
        raise AlreadyUndoneError(
            f"operation(s) {', '.join(map(str, undone))} of session {session_id} "
            "were undone already"
        )
    unknown = [op for op in operation_ids if op not in all_ops]
    if unknown:
        raise OperationNotFoundError(
            f"no row session {session_id} committed in these tables belongs to operation(s) "
            f"{', '.join(map(str, unknown))}"
        )
    closed = close_selection(
        operation_ids,
        undo_dependencies(live, tables),
        committing=False,
        extend=include_dependents,
    )
    return [e for e in live if set(e.operations) & set(closed)], closed


def _conflict_message(conflicts: Sequence[Conflict], policy: ConflictPolicy) -> str:
    shown = "; ".join(f"{c.table} {c.key}" for c in conflicts[:5])
    more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
    what = "cannot be merged" if policy == "merge" else "changed since the commit"
    return (
        f"nothing undone: {len(conflicts)} row(s) {what}: {shown}{more}. See .conflicts "
        "(base_then: what the commit wrote; session: what the undo would restore); undo with "
        "on_conflict='merge' or 'overwrite'"
    )


async def undo(
    executor: Executor,
    session_id: IdLike,
    *,
    operation_ids: Sequence[IdLike] | None = None,
    schema: str = "public",
    on_conflict: str = "fail",
    include_dependents: bool = False,
    allow_cascades: bool = False,
) -> Undone:
    """Revert what a session committed to ``schema``'s tables (or only the chosen
    operations), atomically: each key gets back the base row it had before the commit (none,
    for a row the commit inserted), where the base still holds exactly what the commit wrote.
    A row changed since is a conflict: ``on_conflict="fail"`` refuses the undo
    (:class:`CommitConflictError`), ``"merge"`` restores the columns nobody changed since,
    ``"overwrite"`` restores anyway. Operations that built on a chosen one must be undone
    with it (:class:`OperationsNotClosedError`, or ``include_dependents=True`` adds them).
    Removing a row the commit inserted that stored rows now reference through a cascading
    foreign key is refused (:class:`CascadeConflictError`) unless ``allow_cascades``.
    Undoing rows undone already raises :class:`AlreadyUndoneError`; a session without
    history :class:`HistoryNotFoundError`. Only the tables' owner can undo."""
    session = validate_uuid(session_id, "session id")
    policy = check_policy(on_conflict)
    chosen = None if operation_ids is None else checked_ids(operation_ids)
    described = {t.name: t for t in await session_tables(executor, schema)}
    entries = [e for e in await _history(executor, session, schema) if e.table in described]
    rows, closed = _choose(session, entries, chosen, described, include_dependents)
    tables = parents_first([described[name] for name in dict.fromkeys(e.table for e in rows)])
    undo_session, undo_operation = uuid.uuid4(), uuid.uuid4()
    ids = _id_array(e.history_id for e in rows)
    # The undo session is written by this block alone: no digest to check (watched empty).
    commit = commit_statement(
        executor,
        tables,
        uuid_literal(undo_session),
        None,
        policy,
        ([], ""),
        approved=None,
        allow_cascades=allow_cascades,
    )
    block = render(
        "undo.sql",
        tables=tables,
        session=uuid_literal(session),
        undo_session=uuid_literal(undo_session),
        undo_operation=uuid_literal(undo_operation),
        ids=ids,
        count=len(rows),
        already_message=ALREADY_UNDONE_MESSAGE,
        commit=Sql(commit),
    )
    try:
        await run_atomically(executor, [block])
    except Exception as error:
        cascades = cascades_in_error(error)
        if cascades is not None:
            raise CascadeConflictError(cascade_message(cascades), cascades) from error
        found = conflicts_in_error(error)
        if found is not None:
            raise CommitConflictError(_conflict_message(found, policy), found) from error
        fields = postgres_error_fields(error)
        if fields is not None and fields[1] == ALREADY_UNDONE_MESSAGE:
            raise AlreadyUndoneError(
                f"another undo of session {session} took some of these rows meanwhile; "
                "nothing was undone by this call"
            ) from error
        raise
    return Undone(session, undo_session, tuple(closed), _restored(rows))


def _restored(rows: Sequence[HistoryEntry]) -> dict[str, int]:
    """Keys per table whose row the undo changes: the earliest row before differs from the
    latest row after (as undo.sql decides)."""
    spans: dict[tuple[str, str], list[HistoryEntry]] = defaultdict(list)
    for e in rows:
        spans[(e.table, json.dumps(e.key, sort_keys=True, default=str))].append(e)
    counts: dict[str, int] = defaultdict(int)
    for (table, _), entries in spans.items():
        entries.sort(key=lambda e: e.history_id)
        if entries[0].before != entries[-1].after:
            counts[table] += 1
    return dict(counts)
