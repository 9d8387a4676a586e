"""What a session changed, row by row, as a reviewer approves it.

A :class:`ChangeSet` holds one :class:`RowDiff` per key the commit would write, read in one
statement together with its :attr:`~ChangeSet.fingerprint`: the digest of exactly the
versions it shows. Passing that fingerprint as ``expected=`` to a commit makes the commit
refuse (:class:`~agentcow.errors.ReviewChangedError`) if the chosen changes are no longer
those (a write after the review, a later request writing under an approved operation).
"""

from __future__ import annotations

import enum
import io
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.commit import parents_first
from agentcow.description import TableDescription
from agentcow.errors import DependencyCycleError, TableNotFoundError
from agentcow.executor import Executor
from agentcow.identifiers import uuid_array_literal, uuid_literal, validate_uuid
from agentcow.operations import close_selection, dependencies_among, require_known
from agentcow.review import rendering
from agentcow.review.encoding import json_value
from agentcow.review.patch import changeset_sql
from agentcow.review.rendering import Judgement, terminal_console
from agentcow.review.validation import (
    InvalidRow,
    ModelRegistry,
    ValidationResult,
    invalid_rows,
    validate_diff,
)
from agentcow.review.values import Decoder, decode_row, decoder, parse_json
from agentcow.script import run_pinned
from agentcow.templates import render

IdLike = str | uuid.UUID
#: The version of ChangeSet.to_json's document; a change that breaks readers bumps it.
JSON_FORMAT = "agentcow.changeset/1"


class DiffType(enum.StrEnum):
    """What a commit does to a key: the base gains, changes or loses its row."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class RowDiff:
    """One key of one table: the stored row now (``old``, None for an insert) and the row the
    commit would write (``new``, None for a delete), every column with its PostgreSQL type.
    A key change shows as a delete of the old key and an insert at the new one."""

    schema: str
    table: str
    diff_type: DiffType
    pk: dict[str, Any]
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    operations: tuple[uuid.UUID, ...]
    """The operations that wrote this key, in the order of their first write to it."""

    def changed_columns(self) -> list[str]:
        """Columns whose value differs between ``old`` and ``new`` (all of the row's columns
        for an insert or a delete)."""
        if self.old is None or self.new is None:
            return list((self.new or self.old or {}).keys())
        return [name for name, value in self.new.items() if self.old.get(name) != value]

    def validate(self, registry: ModelRegistry | None = None) -> ValidationResult:
        """The final image checked against its table's SafeModel (see
        :mod:`agentcow.review.validation`); a delete has none, nothing is checked."""
        return validate_diff(self, registry)


@dataclass(frozen=True)
class TableShape:
    """What renderings of a table's rows need: its key, each column's value type
    (``format_type``, domains resolved), and which columns a patch must not write."""

    name: str
    key_columns: tuple[str, ...]
    types: dict[str, str]
    generated: frozenset[str]
    always_identity: bool


@dataclass
class ChangeSet:
    """The changes a commit of ``operation_ids`` (None: the whole session) would apply to
    ``schema`` (to ``table`` only, when set), in write order."""

    session_id: uuid.UUID
    schema: str
    operation_ids: tuple[uuid.UUID, ...] | None
    table: str | None
    diffs: list[RowDiff]
    fingerprint: str
    tables: dict[str, TableShape] = field(repr=False, default_factory=dict)
    """The tables in scope, parents before the tables that reference them."""

    @property
    def is_empty(self) -> bool:
        return not self.diffs

    @property
    def summary(self) -> dict[str, int]:
        """Rows per kind of change; every kind is present, zero or not."""
        counts = {kind.value: 0 for kind in DiffType}
        for row in self.diffs:
            counts[row.diff_type.value] += 1
        return counts

    def table_summary(self) -> dict[str, dict[str, int]]:
        """:attr:`summary` per table, tables in the order of their first change."""
        tables: dict[str, dict[str, int]] = {}
        for row in self.diffs:
            counts = tables.setdefault(row.table, {kind.value: 0 for kind in DiffType})
            counts[row.diff_type.value] += 1
        return tables

    @property
    def is_valid(self) -> bool:
        """Every final image passes its table's SafeModel (default registry)."""
        return not self.validate_all()

    def validate_all(self, registry: ModelRegistry | None = None) -> list[InvalidRow]:
        """The rows whose final image their table's SafeModel refuses (empty: all valid)."""
        return invalid_rows(self.diffs, registry)

    def by_table(self) -> dict[str, list[RowDiff]]:
        grouped: dict[str, list[RowDiff]] = {}
        for row in self.diffs:
            grouped.setdefault(row.table, []).append(row)
        return grouped

    def to_json(self, *, indent: int | None = None) -> str:
        """The documented JSON form (README, "Diff JSON"): ``format`` names its version."""
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "session_id": str(self.session_id),
                "schema": self.schema,
                "table": self.table,
                "operation_ids": None
                if self.operation_ids is None
                else [str(op) for op in self.operation_ids],
                "fingerprint": self.fingerprint,
                "summary": self.summary,
                "tables": self.table_summary(),
                "diffs": [
                    {
                        "table": row.table,
                        "type": row.diff_type.value,
                        "pk": _json_row(row.pk),
                        "old": _json_row(row.old),
                        "new": _json_row(row.new),
                        "changed_columns": row.changed_columns(),
                        "operations": [str(op) for op in row.operations],
                    }
                    for row in self.diffs
                ],
            },
            indent=indent,
        )

    def to_sql(self) -> str:
        """The statements the commit applies, as a patch to read or run (see
        :func:`agentcow.review.patch.changeset_sql`)."""
        return changeset_sql(self)

    def print(
        self,
        file: IO[str] | None = None,
        *,
        judgement: Judgement | None = None,
        limit: int | None = None,
    ) -> None:
        """The dashboard, to ``file`` (standard output by default): colours and PASS/FAIL
        badges on a terminal, plain text with no escape codes anywhere else. ``limit``
        shortens inserts and updates per table; deletes are always listed."""
        self.render(terminal_console(file), judgement=judgement, limit=limit)

    def display(self, *, judgement: Judgement | None = None, limit: int | None = None) -> str:
        """The dashboard as a string: with colours when standard output is a terminal,
        plain text otherwise (SafeAgentDB's ``display``)."""
        buffer = io.StringIO()
        colours = terminal_console().is_terminal
        console = (
            terminal_console(buffer)
            if not colours
            else Console(file=buffer, force_terminal=True, highlight=False, soft_wrap=True)
        )
        self.render(console, judgement=judgement, limit=limit)
        return buffer.getvalue()

    def render(
        self, console: Console, *, judgement: Judgement | None = None, limit: int | None = None
    ) -> None:
        """The dashboard on a Rich console of the caller's (its colours, its file)."""
        rendering.render(self, console, judgement=judgement, limit=limit)

    def __iter__(self) -> Iterator[RowDiff]:
        return iter(self.diffs)

    def __len__(self) -> int:
        return len(self.diffs)


async def diff(
    executor: Executor,
    session_id: IdLike,
    *,
    operation_ids: Sequence[IdLike] | None = None,
    schema: str = "public",
    table: str | None = None,
) -> ChangeSet:
    """The changes a commit of the session (or of ``operation_ids``, with every operation
    they depend on) would apply to ``schema``, or to ``table`` alone.

    Pass the result's :attr:`~ChangeSet.fingerprint` as ``expected=`` to the matching
    commit: ``commit_cow_session_schema`` / ``commit_cow_operations_schema`` (with the same
    operations; ``include_dependencies=True`` when they lacked some), or the one-table
    ``commit_cow_session`` / ``commit_cow_operations`` for a diff of ``table``.
    """
    session = uuid_literal(session_id, "session id")
    chosen = (
        None
        if operation_ids is None
        else [validate_uuid(op, "operation id") for op in operation_ids]
    )
    await require_kit(executor)
    entries = await registered_tables(executor, schema, table)
    if not entries:
        where = schema if table is None else f"{schema}.{table}"
        raise TableNotFoundError(f"COW is not enabled on {where}")
    tables = [await describe_current(executor, schema, entry) for entry in entries]
    closed = await _closed(executor, tables, session_id, chosen, schema)
    operations = None if closed is None else uuid_array_literal(sorted(closed, key=str))
    types = await _value_types(executor, tables)
    rows = await run_pinned(
        executor,
        render("diff.sql", tables=tables, session=session, operations=operations),
        "table_name pg_catalog.text, kind pg_catalog.text, key pg_catalog.text, "
        "old pg_catalog.text, new pg_catalog.text, operations pg_catalog.uuid[], "
        "seq pg_catalog.int8",
    )
    decoders = {
        name: {c: decoder(t) for c, t in columns.items()} for name, columns in types.items()
    }
    by_name = {t.name: t for t in tables}
    diffs: list[RowDiff] = []
    fingerprint = ""
    for name, kind, key, old, new, ops, _ in rows:
        if kind == "#":
            fingerprint = str(new)
            continue
        described = by_name[name]
        row_decoders = decoders[name]
        diffs.append(
            RowDiff(
                schema=schema,
                table=name,
                diff_type=DiffType(kind),
                pk=_decode_key(parse_json(key), described.pk_columns, row_decoders),
                old=decode_row(None if old is None else parse_json(old), row_decoders),
                new=decode_row(None if new is None else parse_json(new), row_decoders),
                operations=tuple(uuid.UUID(str(op)) for op in ops),
            )
        )
    return ChangeSet(
        session_id=validate_uuid(session_id, "session id"),
        schema=schema,
        operation_ids=None if closed is None else tuple(closed),
        table=table,
        diffs=diffs,
        fingerprint=fingerprint,
        tables={
            t.name: TableShape(
                name=t.name,
                key_columns=t.pk_columns,
                types=types[t.name],
                generated=frozenset(c.name for c in t.columns if c.generated),
                always_identity=bool(t.always_identity_columns),
            )
            for t in _parents_first(tables)
        },
    )


def _parents_first(tables: Sequence[TableDescription]) -> list[TableDescription]:
    """Referenced tables first where the keys allow it (a cycle keeps the given order)."""
    try:
        return parents_first(tables)
    except DependencyCycleError:
        return list(tables)


async def _closed(
    executor: Executor,
    tables: Sequence[TableDescription],
    session_id: IdLike,
    chosen: list[uuid.UUID] | None,
    schema: str,
) -> list[uuid.UUID] | None:
    """The chosen operations and every operation they depend on (None: all); an id the
    session never wrote is an error, as for a commit."""
    if chosen is None:
        return None
    await require_known(executor, session_id, chosen, schema)
    dependencies = await dependencies_among(executor, tables, session_id=session_id)
    return close_selection(chosen, dependencies, committing=True, extend=True)


async def _value_types(
    executor: Executor, tables: Sequence[TableDescription]
) -> dict[str, dict[str, str]]:
    """Each table's columns (those its description knows) and their value types."""
    if not tables:
        return {}
    rows = await run_pinned(
        executor,
        render("catalog_value_types.sql", relations=[t.base for t in tables]),
        "position pg_catalog.int4, name pg_catalog.text, type pg_catalog.text",
    )
    found: dict[int, dict[str, str]] = {}
    for position, name, type_name in rows:
        found.setdefault(position, {})[name] = type_name
    return {
        t.name: {c.name: found.get(i, {}).get(c.name, c.type) for c in t.columns}
        for i, t in enumerate(tables, start=1)
    }


def _json_row(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {c: json_value(v) for c, v in row.items()}


def _decode_key(
    key: Mapping[str, Any], columns: Sequence[str], decoders: Mapping[str, Decoder]
) -> dict[str, Any]:
    return {name: decoders[name](key.get(name)) for name in columns if name in key}
