"""What the differential tests share: the twin schemas and running a statement on them.

Schema ``plain`` holds ordinary tables, schema ``cow`` the same tables under copy-on-write
(see ``tests/differential_programs.py`` for the tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from tests.differential_programs import TABLES, snapshot_sql

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

PLAIN, COW = "plain", "cow"
RESET = "TRUNCATE {tables} RESTART IDENTITY".format(
    tables=", ".join(
        [f"{PLAIN}.{name}" for name in TABLES] + [f"{COW}.{name}_base" for name in TABLES]
    )
)


@dataclass(frozen=True)
class Outcome:
    """What a statement did: its rows, columns and command tag, or its SQLSTATE."""

    sqlstate: str | None = None
    message: str = ""
    status: str | None = None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()

    def same_as(self, other: Outcome) -> bool:
        # Error messages may differ (a CHECK is raised from the change table); the promise
        # is the SQLSTATE.
        return (self.sqlstate, self.status, self.columns, self.rows) == (
            other.sqlstate,
            other.status,
            other.columns,
            other.rows,
        )

    def __str__(self) -> str:
        if self.sqlstate is not None:
            return f"ERROR {self.sqlstate}: {self.message}"
        return f"{self.status} columns={list(self.columns)} rows={list(self.rows)}"


async def run_statement(conn: Connection, sql: str, ordered: bool) -> Outcome:
    """Runs one statement in a savepoint (rolled back if it fails)."""
    try:
        async with conn.transaction():
            statement = await conn.prepare(sql)
            records = await statement.fetch()
            status = statement.get_statusmsg()
            columns = tuple(a.name for a in statement.get_attributes())
    except asyncpg.PostgresError as exc:
        message = " ".join(str(exc).split())
        return Outcome(sqlstate=exc.sqlstate, message=message)
    rows = [tuple(record) for record in records]
    if not ordered:
        rows.sort(key=repr)
    return Outcome(status=status, columns=columns, rows=tuple(rows))


async def snapshot(conn: Connection, schema: str, suffix: str = "") -> dict[str, list[str]]:
    record = await conn.fetchrow(snapshot_sql(schema, suffix))
    assert record is not None
    return {name: list(record[name]) for name in TABLES}
