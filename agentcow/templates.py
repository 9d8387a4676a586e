"""Renders the SQL templates in ``sql/``.

Every value a template prints must come out of a quoting filter (``ident``, ``literal``) or be
catalog-produced SQL marked with ``catalog``; printing a plain string is a render error, so no
name can reach SQL unquoted by accident.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from functools import cache
from typing import Any

import jinja2
import markupsafe

from agentcow.identifiers import Sql, qualified, quote_ident, quote_literal
from agentcow.resources import templates_dir

_SEPARATOR = re.compile(r"^--;[ \t]*$", re.MULTILINE)


def _finalize(value: Any) -> Any:
    # Markup is what a macro returns: it was assembled from already-quoted pieces.
    if isinstance(value, Sql | markupsafe.Markup | bool | int):
        return value
    raise jinja2.TemplateError(
        f"refusing to print unquoted value {value!r}: pass it through |ident or |literal"
    )


def _columns(names: Iterable[str], prefix: str | None = None) -> Sql:
    """``"a", "b"`` or, with a prefix (itself an identifier or NEW/OLD), ``p."a", p."b"``."""
    head = "" if prefix is None else f"{str.__str__(prefix)}."
    return Sql(", ".join(head + quote_ident(n) for n in names))


def _catalog(text: str) -> Sql:
    """Mark SQL text produced by PostgreSQL itself (format_type, pg_get_expr) as safe."""
    return Sql(str.__str__(text))


def _qualified(name: tuple[str, str]) -> Sql:
    """``"schema"."name"`` from a (schema, name) pair (the descriptions' relations)."""
    return qualified(*name)


def dollar_tag() -> Sql:
    """A dollar-quote tag that no identifier, default or literal can contain by chance."""
    return Sql(f"$cow_{secrets.token_hex(8)}$")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=True,  # only so macros return Markup; _finalize lets no plain str through
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ident"] = quote_ident
    env.filters["literal"] = quote_literal
    env.filters["columns"] = _columns
    env.filters["catalog"] = _catalog
    env.filters["qualified"] = _qualified
    env.globals["dollar_tag"] = dollar_tag
    return env


def render(template: str, **context: Any) -> str:
    """Render ``sql/<template>`` and return its SQL text."""
    return str.__str__(_environment().get_template(template).render(**context)).strip()


def render_statements(template: str, **context: Any) -> list[str]:
    """Render a template whose statements are separated by lines holding only ``--;``."""
    text = render(template, **context)
    return [part.strip() for part in _SEPARATOR.split(text) if part.strip()]
