"""Reading PostgreSQL's error fields from whatever exception a driver raised.

Executors pass driver exceptions through untouched. asyncpg and psycopg put the SQLSTATE on
the exception; SQLAlchemy wraps it (``.orig``, then ``__cause__`` for asyncpg). The DETAIL
field is ``.detail`` (asyncpg) or ``.diag.message_detail`` (psycopg).
"""

from __future__ import annotations

from collections.abc import Iterator


def _chain(error: BaseException) -> Iterator[object]:
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), getattr(current, "__cause__", None)]


def postgres_error_fields(error: BaseException) -> tuple[str, str, str] | None:
    """``(sqlstate, message, detail)`` of the PostgreSQL error behind ``error``, if any.

    A wrapper may carry the SQLSTATE without the other fields (SQLAlchemy's asyncpg
    adapter): the innermost exception that has a message wins.
    """
    found: tuple[str, str, str] | None = None
    for candidate in _chain(error):
        sqlstate = getattr(candidate, "sqlstate", None)
        if not isinstance(sqlstate, str):
            continue
        diag = getattr(candidate, "diag", None)
        message = getattr(candidate, "message", None) or getattr(diag, "message_primary", None)
        detail = getattr(candidate, "detail", None) or getattr(diag, "message_detail", None)
        fields = (sqlstate, str(message or ""), str(detail or ""))
        if found is None or (message and not found[1]):
            found = fields
    return found


def postgres_error_hint(error: BaseException) -> str | None:
    """The HINT field of the PostgreSQL error behind ``error``, if it has one."""
    for candidate in _chain(error):
        hint = getattr(candidate, "hint", None) or getattr(
            getattr(candidate, "diag", None), "message_hint", None
        )
        if hint:
            return str(hint)
    return None
