"""What the differential tests share: the twin schemas and running a statement on them.

Schema ``plain`` holds ordinary tables, schema ``cow`` the same tables under copy-on-write
(see ``tests/differential_programs.py`` for the tables), in the layout under test. A
session's statements name the COW tables' views (``VIEWS``): schema ``cow`` in the rename
layout, its overlay schema ``cow_cow`` in the overlay layout. Statements without a session
name schema ``cow``, as production does: the views, which write the base (rename), or the
tables themselves (overlay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import asyncpg

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.agent.upserts import rewrite_for
from tests.differential_programs import TABLES, snapshot_sql
from tests.helpers import OVERLAY, base_table, kit_schema

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

PLAIN, COW = "plain", "cow"
#: Where a session's statements find the COW tables: their views.
VIEWS = kit_schema(COW)
#: What the base tables' names add to the tables' (read with ``snapshot(conn, COW, ...)``).
BASE_SUFFIX = "" if OVERLAY else "_base"
RESET = "TRUNCATE {tables} RESTART IDENTITY".format(
    tables=", ".join(
        [f"{PLAIN}.{name}" for name in TABLES] + [base_table(name, COW) for name in TABLES]
    )
)


@dataclass(frozen=True)
class Outcome:
    """What a statement did: its rows, columns and command tag, or its error: SQLSTATE,
    message, DETAIL and the fields naming the constraint, table, schema and column."""

    sqlstate: str | None = None
    message: str = ""
    status: str | None = None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    detail: str | None = None
    fields: tuple[str | None, ...] = ()

    @classmethod
    def failed(cls, exc: asyncpg.PostgresError) -> Outcome:
        # The schemas differ by name only: the COW side's error must name its own schema.
        schema = COW if exc.schema_name == PLAIN else exc.schema_name
        return cls(
            sqlstate=exc.sqlstate,
            message=exc.message,
            detail=exc.detail,
            fields=(exc.constraint_name, exc.table_name, schema, exc.column_name),
        )

    def same_as(self, other: Outcome, any_row: bool = False) -> bool:
        """Equal; with ``any_row``, the values in the DETAILs (which row failed) aside."""
        if not any_row:
            return self == other
        return replace(self, detail=_without_values(self.detail)) == replace(
            other, detail=_without_values(other.detail)
        )

    def __str__(self) -> str:
        if self.sqlstate is not None:
            constraint, table, schema, column = self.fields or (None,) * 4
            return (
                f"ERROR {self.sqlstate}: {self.message} DETAIL: {self.detail} "
                f"(constraint {constraint}, table {schema}.{table}, column {column})"
            )
        return f"{self.status} columns={list(self.columns)} rows={list(self.rows)}"


def _without_values(detail: str | None) -> str | None:
    """A DETAIL with its values left out: ``Key (a)=(...) already exists.``, ``Failing row
    contains (a, b) = (...).``, ``Failing row contains (...).``"""
    if detail is None:
        return None
    for marker in (") = (", ")=("):
        if marker in detail:
            head, tail = detail.split(marker, 1)
            return head + marker + "..." + tail[tail.rfind(")") :]
    if detail.startswith("Failing row contains ("):
        return "Failing row contains (...)."
    return detail


async def run_statement(conn: Connection, sql: str, ordered: bool) -> Outcome:
    """Runs one statement in a savepoint (rolled back if it fails)."""
    try:
        async with conn.transaction():
            statement = await conn.prepare(sql)
            records = await statement.fetch()
            status = statement.get_statusmsg()
            columns = tuple(a.name for a in statement.get_attributes())
    except asyncpg.PostgresError as exc:
        return Outcome.failed(exc)
    rows = [tuple(record) for record in records]
    if not ordered:
        rows.sort(key=repr)
    return Outcome(status=status, columns=columns, rows=tuple(rows))


async def snapshot(conn: Connection, schema: str, suffix: str = "") -> dict[str, list[str]]:
    record = await conn.fetchrow(snapshot_sql(schema, suffix))
    assert record is not None
    return {name: list(record[name]) for name in TABLES}


async def base_snapshot(conn: Connection) -> dict[str, list[str]]:
    """The COW tables' base tables, read directly."""
    return await snapshot(conn, COW, BASE_SUFFIX)


async def run_in_session(conn: Connection, sql: str, ordered: bool) -> Outcome:
    """Runs one statement of a session as the agent-facing entries do
    (:class:`agentcow.CowSession`): an upsert into a COW view as its rewrite
    (``agentcow.agent.upserts.rewrite_for``), reporting the command tag, columns and rows
    the agent's own statement gives. In a savepoint, as :func:`run_statement`."""
    try:
        async with conn.transaction():
            rewrite = await rewrite_for(AsyncpgExecutor(conn), sql)
            statement = await conn.prepare(sql if rewrite is None else rewrite.sql)
            records = await statement.fetch()
            status = statement.get_statusmsg()
            columns = tuple(a.name for a in statement.get_attributes())
    except asyncpg.PostgresError as exc:
        return Outcome.failed(exc)
    rows = [tuple(record) for record in records]
    if rewrite is not None:
        status = rewrite.status(status, rows)
        if rewrite.counts_only:
            rows, columns = [], ()
    if not ordered:
        rows.sort(key=repr)
    return Outcome(status=status, columns=columns, rows=tuple(rows))
