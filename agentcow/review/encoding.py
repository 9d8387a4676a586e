"""Row values as text for the formats a review leaves the process in: JSON and SQL.

Decoded values (see :mod:`agentcow.review.values`) go back to the text PostgreSQL reads for
their type, so a JSON consumer or a patch sees exactly the value the diff holds.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from agentcow.identifiers import Sql, quote_literal


def value_text(value: Any) -> str:
    """A non-NULL scalar as PostgreSQL's input text for its type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, default=_json_default, sort_keys=False)
    return str(value)


def json_value(value: Any) -> Any:
    """A value as the JSON format carries it: JSON's own types where they are exact
    (integers, booleans, text, json/jsonb documents), else PostgreSQL's text for the value
    (numeric as a string, so no digit is lost; timestamps in ISO 8601; bytea as ``\\x`` hex;
    uuid; non-finite floats)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return value
    return value_text(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID | datetime | date | time | bytes):
        return value_text(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def sql_literal(value: Any, type_name: str) -> Sql:
    """``'text'::type`` (or NULL) for a value of a column whose type ``format_type`` gives."""
    if value is None:
        return Sql("NULL")
    if type_name in ("json", "jsonb"):
        text = json.dumps(value, default=_json_default)
    elif isinstance(value, list):
        text = _array_text(value)
    else:
        text = value_text(value)
    return Sql(f"{quote_literal(text)}::{type_name}")


def _array_text(items: list[Any]) -> str:
    """An array's input text: ``{"a","b",NULL}``, nested for more dimensions."""
    parts = []
    for item in items:
        if item is None:
            parts.append("NULL")
        elif isinstance(item, list):
            parts.append(_array_text(item))
        else:
            text = value_text(item)
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"
