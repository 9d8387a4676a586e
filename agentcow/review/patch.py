"""A ChangeSet as SQL: the statements its commit applies, for a person to read or run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agentcow.identifiers import Sql
from agentcow.review.encoding import sql_literal
from agentcow.templates import render

if TYPE_CHECKING:
    from agentcow.review.diff import ChangeSet, RowDiff, TableShape

Row = tuple[str, tuple[str, str], dict[str, Sql], dict[str, Sql], bool]


def changeset_sql(changes: ChangeSet) -> str:
    """The patch (sql/patch.sql): one transaction, deletes of referencing tables first,
    then updates and inserts of referenced tables first. A key change is a delete of the
    old key and an insert of the new one; the commit itself moves such rows in place where
    other rows reference their values, which a deferred check lets this patch do too."""
    summary = ", ".join(f"{n} {kind.lower()}" for kind, n in changes.summary.items())
    return render(
        "patch.sql",
        session=str(changes.session_id),
        fingerprint=changes.fingerprint,
        summary=Sql(summary),
        rows=list(_rows(changes)),
    )


def _rows(changes: ChangeSet) -> Iterator[Row]:
    grouped = changes.by_table()
    order = [name for name in changes.tables if name in grouped]
    for name in reversed(order):
        for row in grouped[name]:
            if row.diff_type == "DELETE":
                yield _row(changes, row, changes.tables[name])
    for name in order:
        for kind in ("UPDATE", "INSERT"):
            for row in grouped[name]:
                if row.diff_type == kind:
                    yield _row(changes, row, changes.tables[name])


def _row(changes: ChangeSet, row: RowDiff, shape: TableShape) -> Row:
    values: Mapping[str, Any] = {}
    if row.diff_type == "UPDATE":
        values = {c: (row.new or {})[c] for c in row.changed_columns()}
    elif row.diff_type == "INSERT":
        values = row.new or {}
    return (
        row.diff_type.value,
        (changes.schema, row.table),
        {c: sql_literal(v, shape.types[c]) for c, v in row.pk.items()},
        {c: sql_literal(v, shape.types[c]) for c, v in values.items() if c not in shape.generated},
        shape.always_identity,
    )
