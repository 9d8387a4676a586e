"""Row values as Python objects of their PostgreSQL types, from the JSON PostgreSQL renders.

Reviews read rows of many tables in one statement, so they travel as ``to_jsonb`` objects and
are decoded here by each column's type: the same objects whichever driver ran the query.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

Decoder = Callable[[Any], Any]


def _decimal(value: Any) -> Any:
    return Decimal(value) if isinstance(value, str | int) else value


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, str | int | Decimal) else value


def _json(value: Any) -> Any:
    """json and jsonb as ``json.loads`` gives them (and psycopg): fractions as float."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return value


def _bytes(value: Any) -> Any:
    return bytes.fromhex(value[2:]) if isinstance(value, str) and value.startswith("\\x") else value


def _isoformat(parse: Callable[[str], Any]) -> Decoder:
    """Dates and times; 'infinity' and the like (no Python equivalent) stay text."""

    def decode(value: Any) -> Any:
        try:
            return parse(value)
        except (TypeError, ValueError):
            return value

    return decode


_SCALARS: dict[str, Decoder] = {
    "numeric": _decimal,
    "real": _float,
    "double precision": _float,
    "bytea": _bytes,
    "json": _json,
    "jsonb": _json,
    "uuid": uuid.UUID,
    "date": _isoformat(date.fromisoformat),
    "timestamp with time zone": _isoformat(datetime.fromisoformat),
    "timestamp without time zone": _isoformat(datetime.fromisoformat),
    "time without time zone": _isoformat(time.fromisoformat),
    "time with time zone": _isoformat(time.fromisoformat),
}


def decoder(type_name: str) -> Decoder:
    """The decoder of a column whose (domain-resolved) type ``format_type`` prints as
    ``type_name``: ``numeric(10,2)``, ``timestamp(3) with time zone``, ``integer[]``, ...
    Types JSON already carries (integers, booleans) and types with no closer
    Python type (text, enums, intervals, network types) are kept as decoded."""
    if type_name.endswith("[]"):
        element = decoder(type_name[:-2])
        return lambda value: _each(value, element)
    base = _without_modifiers(type_name)
    scalar = _SCALARS.get(base)
    if scalar is None:
        return _identity
    return lambda value: None if value is None else scalar(value)


def _each(value: Any, element: Decoder) -> Any:
    if isinstance(value, list):
        return [_each(item, element) for item in value]
    return None if value is None else element(value)


def _identity(value: Any) -> Any:
    return value


def _without_modifiers(type_name: str) -> str:
    """``timestamp(3) with time zone`` -> ``timestamp with time zone``; ``numeric(10,2)`` ->
    ``numeric``; ``character varying(20)`` -> ``character varying``."""
    head, _, rest = type_name.partition("(")
    if not rest:
        return type_name
    return (head + rest.partition(")")[2]).strip()


def parse_json(text: str) -> Any:
    """JSON as PostgreSQL renders it; numbers with a fraction exact, as Decimal."""
    return json.loads(text, parse_float=Decimal)


def decode_row(row: Mapping[str, Any] | None, decoders: Mapping[str, Decoder]) -> Any:
    """A row (a ``to_jsonb`` object) with each known column decoded; other keys dropped."""
    if row is None:
        return None
    return {name: decode(row.get(name)) for name, decode in decoders.items()}
