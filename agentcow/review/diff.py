"""What a session changed, row by row, as a reviewer approves it.

A :class:`ChangeSet` holds one :class:`RowDiff` per key the commit would write, read in one
statement together with its :attr:`~ChangeSet.fingerprint`: the digest of exactly the
versions it shows. Passing that fingerprint as ``expected=`` to a commit makes the commit
refuse (:class:`~agentcow.errors.ReviewChangedError`) if the chosen changes are no longer
those (a write after the review, a later request writing under an approved operation).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.description import TableDescription
from agentcow.errors import TableNotFoundError
from agentcow.executor import Executor
from agentcow.identifiers import uuid_array_literal, uuid_literal, validate_uuid
from agentcow.operations import close_selection, dependencies_among, require_known
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
    column_types: dict[str, dict[str, str]] = field(repr=False, default_factory=dict)
    """Each table's columns and their types (``format_type``, domains resolved)."""
    key_columns: dict[str, tuple[str, ...]] = field(repr=False, default_factory=dict)

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
    if table is not None and not entries:
        raise TableNotFoundError(f"COW is not enabled on {schema}.{table}")
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
        column_types=types,
        key_columns={t.name: t.pk_columns for t in tables},
    )


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


def _decode_key(
    key: Mapping[str, Any], columns: Sequence[str], decoders: Mapping[str, Decoder]
) -> dict[str, Any]:
    return {name: decoders[name](key.get(name)) for name in columns if name in key}
