"""Rows of a change table as Python values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Columns of a change table that are not the table's own; enable refuses tables using them
# (and any other name starting with ``_cow_``).
CHANGE_TABLE_RESERVED_FIELDS: frozenset[str] = frozenset(
    {"session_id", "operation_id", "_cow_seq", "_cow_kind", "_cow_old"}
)

_REMOVING_KINDS = frozenset({"D", "M"})


@dataclass
class CowWrite:
    """One version of one row written by an operation; equal when they address the same row."""

    table_name: str
    operation_id: uuid.UUID
    primary_key: dict[str, Any]
    data: dict[str, Any]
    is_delete: bool
    updated_at: datetime | None = None
    seq: int | None = None

    def __hash__(self) -> int:
        return hash(self.get_pk_tuple())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CowWrite):
            return NotImplemented
        return self.get_pk_tuple() == other.get_pk_tuple()

    @classmethod
    def from_row(cls, table_name: str, row: dict[str, Any], pk_columns: list[str]) -> CowWrite:
        return cls(
            table_name=table_name,
            operation_id=row["operation_id"],
            primary_key={column: row.get(column) for column in pk_columns},
            data={k: v for k, v in row.items() if k not in CHANGE_TABLE_RESERVED_FIELDS},
            is_delete=row.get("_cow_kind") in _REMOVING_KINDS,
            seq=row.get("_cow_seq"),
        )

    def get_pk_tuple(self) -> tuple[Any, ...]:
        return (self.table_name, tuple(sorted(self.primary_key.items())))
