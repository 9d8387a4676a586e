"""Names of the objects agentcow derives from a table name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from agentcow.identifiers import derived_name

RESERVED_COLUMNS = frozenset({"session_id", "operation_id"})
RESERVED_PREFIX = "_cow_"

#: Where a COW table's view lives: in the table's place ("rename", agent-cow's), or in the
#: overlay schema beside the table's, the table left as it is ("overlay").
Layout = Literal["rename", "overlay"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
#: The overlay schema of schema ``s`` is ``s`` + this.
OVERLAY_SUFFIX = "_cow"


@dataclass(frozen=True)
class ObjectNames:
    floor_function: str
    write_function: str
    write_trigger: str
    parent_check_function: str
    children_check_function: str
    statement_check_function: str
    statement_start_trigger: str
    statement_end_trigger: str
    identity_function: str
    read_only_function: str
    read_only_trigger: str
    limit_trigger: str

    @property
    def functions(self) -> tuple[str, ...]:
        return (
            self.read_only_function,
            self.floor_function,
            self.write_function,
            self.parent_check_function,
            self.children_check_function,
            self.statement_check_function,
            self.identity_function,
        )


def object_names(table: str) -> ObjectNames:
    return ObjectNames(
        floor_function=derived_name(table, "_cow_floor"),
        write_function=derived_name(table, "_cow_write"),
        write_trigger="agentcow_write",
        parent_check_function=derived_name(table, "_cow_check_parents"),
        children_check_function=derived_name(table, "_cow_check_children"),
        statement_check_function=derived_name(table, "_cow_check_statement"),
        statement_start_trigger="agentcow_statement_start",
        statement_end_trigger="agentcow_statement_end",
        identity_function=derived_name(table, "_cow_identity"),
        read_only_function=derived_name(table, "_cow_read_only"),
        read_only_trigger="agentcow_read_only",
        limit_trigger="agentcow_row_limit",
    )


def is_reserved_column(name: str) -> bool:
    return name in RESERVED_COLUMNS or name.startswith(RESERVED_PREFIX)
