"""Per-session limits, so that one agent cannot hold other sessions or production: row
versions written, statement time, lock waits and idle time in a transaction.

Limits live in kit tables only the kit's functions write (``agentcow.set_limits``), for the
kit's owner or a role that may act as the owner of a COW table, never for an agent role.
Time limits are applied transaction-locally whenever a request enters the session; the row
limit is counted once per statement by a trigger on every COW view.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from agentcow.catalog import require_kit
from agentcow.executor import Executor
from agentcow.identifiers import uuid_literal
from agentcow.registry import interval_text
from agentcow.templates import render

IdLike = str | uuid.UUID


@dataclass(frozen=True)
class SessionLimits:
    """The limits that apply to a session (``None``: none) and the row versions it has
    written while a row limit applied."""

    max_rows: int | None
    statement_timeout: timedelta | None
    lock_timeout: timedelta | None
    idle_timeout: timedelta | None
    rows_written: int = 0


def _interval(value: timedelta | None, what: str) -> str | None:
    if value is None:
        return None
    if value <= timedelta(0):
        raise ValueError(f"{what} must be positive, got {value!r}")
    return interval_text(value)


def _limits_sql(
    *,
    session: str | None,
    role: str | None,
    max_rows: int | None,
    statement_timeout: timedelta | None,
    lock_timeout: timedelta | None,
    idle_timeout: timedelta | None,
) -> str:
    if max_rows is not None and (isinstance(max_rows, bool) or max_rows < 0):
        raise ValueError(f"max_rows must be a non-negative int, got {max_rows!r}")
    return render(
        "set_limits.sql",
        session=session,
        role=role,
        max_rows=None if max_rows is None else int(max_rows),
        statement_timeout=_interval(statement_timeout, "statement_timeout"),
        lock_timeout=_interval(lock_timeout, "lock_timeout"),
        idle_timeout=_interval(idle_timeout, "idle_timeout"),
    )


async def set_session_limits(
    executor: Executor,
    session_id: IdLike,
    *,
    max_rows: int | None = None,
    statement_timeout: timedelta | None = None,
    lock_timeout: timedelta | None = None,
    idle_timeout: timedelta | None = None,
) -> None:
    """Replace the limits of one session (``None`` falls back to the role's defaults; all
    ``None`` removes them). Takes effect at the session's next request (time limits) or
    statement (rows). ``max_rows`` counts row versions written from now on (an UPDATE that
    changes a key writes two); the statement that would pass it fails with SQLSTATE 54000
    and keeps nothing."""
    sql = _limits_sql(
        session=uuid_literal(session_id, "session id"),
        role=None,
        max_rows=max_rows,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_timeout=idle_timeout,
    )
    await require_kit(executor)
    await executor.execute(sql)


async def set_default_limits(
    executor: Executor,
    *,
    role: str | None = None,
    max_rows: int | None = None,
    statement_timeout: timedelta | None = None,
    lock_timeout: timedelta | None = None,
    idle_timeout: timedelta | None = None,
) -> None:
    """Replace the default limits of sessions entered by login ``role`` (``None``: every
    role); the kit's owner only. A session's own limits win over its role's, which win over
    everyone's."""
    sql = _limits_sql(
        session=None,
        role="public" if role is None else role,
        max_rows=max_rows,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_timeout=idle_timeout,
    )
    await require_kit(executor)
    await executor.execute(sql)


def _timedelta(micros: object) -> timedelta | None:
    return None if micros is None else timedelta(microseconds=int(str(micros)))


async def get_session_limits(
    executor: Executor, session_id: IdLike, *, role: str | None = None
) -> SessionLimits:
    """The limits that apply to ``session_id`` when login ``role`` enters it (``None``: a
    role without defaults of its own), with the rows it wrote while limited (for the roles
    that may set limits)."""
    await require_kit(executor)
    [(max_rows, statement, lock, idle, written)] = await executor.execute(
        render("limits_info.sql", session=uuid_literal(session_id, "session id"), role=role)
    )
    return SessionLimits(
        max_rows=None if max_rows is None else int(max_rows),
        statement_timeout=_timedelta(statement),
        lock_timeout=_timedelta(lock),
        idle_timeout=_timedelta(idle),
        rows_written=int(written),
    )
