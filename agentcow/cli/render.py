"""Rich tables for the commands' human output: every cell plain text (a name is never read
as markup) and folded, never cut, when the terminal (or a pipe's 80 columns) is narrow."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text


def text_table(*headers: str) -> Table:
    table = Table()
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def add_row(table: Table, cells: Iterable[str]) -> None:
    table.add_row(*(Text(cell) for cell in cells))
