"""Quoting and validation of everything that reaches SQL text: names, literals and ids."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from agentcow.errors import InvalidIdentifierError, InvalidIdError

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1 on a stock PostgreSQL build


class Sql(str):
    """Text that is safe to splice into SQL: produced by a quoting function or by the catalog."""

    __slots__ = ()

    def __html__(self) -> str:
        # Templates render with autoescape on (so macros return markup); SQL is never escaped.
        return self


def quote_ident(name: str) -> Sql:
    """Always double-quote, so case, spaces, quotes and reserved words survive unchanged."""
    if not isinstance(name, str) or not name:
        raise InvalidIdentifierError(f"invalid SQL identifier: {name!r}")
    name = str.__str__(name)  # a plain str: Markup.replace would HTML-escape
    if "\x00" in name:
        raise InvalidIdentifierError(f"SQL identifiers cannot contain NUL: {name!r}")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifierError(
            f"identifier {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes"
        )
    return Sql('"' + name.replace('"', '""') + '"')


def quote_literal(value: str) -> Sql:
    """A standard-conforming string literal (E'' is never needed: backslashes stay literal)."""
    value = str.__str__(value)  # a plain str: Markup.replace would HTML-escape
    if "\x00" in value:
        raise InvalidIdentifierError("SQL text cannot contain NUL")
    return Sql("'" + value.replace("'", "''") + "'")


def qualified(schema: str, name: str) -> Sql:
    return Sql(f"{quote_ident(schema)}.{quote_ident(name)}")


def validate_uuid(value: str | uuid.UUID, what: str = "id") -> uuid.UUID:
    """Parse a session or operation id; anything else is refused before it nears SQL."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidIdError(f"{what} must be a UUID, got {value!r}")


def uuid_literal(value: str | uuid.UUID, what: str = "id") -> Sql:
    return Sql(f"'{validate_uuid(value, what)}'::uuid")


def uuid_array_literal(values: Iterable[str | uuid.UUID], what: str = "operation id") -> Sql:
    ids = ",".join(str(validate_uuid(v, what)) for v in values)
    return Sql(f"'{{{ids}}}'::uuid[]")


def derived_name(table: str, suffix: str) -> str:
    """The name of an object derived from a table; refused when PostgreSQL would truncate it."""
    name = table + suffix
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifierError(
            f"table name {table!r} is too long: {name!r} would exceed {MAX_IDENTIFIER_BYTES} bytes"
        )
    return name
