"""Overlay twins of the views a user defined over overlay-layout tables.

A view ``s.v`` over an overlay table reads the table itself, production; its twin
``s_cow.v`` is the same query read through the overlays, so an agent in a session (whose
search_path puts ``s_cow`` first) sees its own changes through ``v`` too. Twins are made for
the views of schemas that have an overlay, are rebuilt whole whenever overlays change
(enable, disable, refresh), and are agentcow's: views of an overlay schema that are not a
table's overlay view.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from agentcow.description import TableDescription
from agentcow.executor import Executor
from agentcow.grants import grant_statements, read_grants
from agentcow.identifiers import quote_ident
from agentcow.templates import render, render_statements

#: view options PostgreSQL stores in reloptions, as "name=value"
_OPTION = re.compile(r"^(security_barrier|security_invoker|check_option)=([a-z]+)$")

Overlaid = dict[tuple[str, str], tuple[str, int]]  # (schema, table) -> (overlay schema, oid)


async def overlaid_tables(executor: Executor) -> Overlaid:
    """The overlay-layout tables as the registry has them."""
    rows = await executor.execute(render("catalog_overlay_tables.sql"))
    return {(str(s), str(t)): (str(o), int(oid)) for s, t, o, oid in rows}


def after(
    overlaid: Overlaid,
    enabled: Iterable[TableDescription] = (),
    disabled: Iterable[tuple[str, str]] = (),
) -> Overlaid:
    """``overlaid`` once ``enabled`` (overlay-layout descriptions) and ``disabled`` changed."""
    gone = set(disabled)
    result = {k: v for k, v in overlaid.items() if k not in gone}
    for t in enabled:
        if t.overlay_schema:
            result[(t.schema, t.name)] = (t.overlay_schema, t.relation.oid)
    return result


async def _twins(executor: Executor, overlaid: Overlaid) -> list[tuple[str, str]]:
    """The twins that exist: views of overlay schemas that are no table's overlay view."""
    schemas = sorted({overlay for overlay, _ in overlaid.values()})
    if not schemas:
        return []
    views = {(overlay, table) for (_, table), (overlay, _) in overlaid.items()}
    rows = await executor.execute(render("catalog_views.sql", schemas=schemas))
    return [(str(s), str(v)) for s, v in rows if (str(s), str(v)) not in views]


async def twin_script(
    executor: Executor, before: Overlaid, later: Overlaid
) -> tuple[list[str], list[str]]:
    """(statements that drop the twins made for ``before``, to run before overlay views
    change; statements that make the twins ``later`` needs, to run after)."""
    drop = [
        statement
        for twin in await _twins(executor, before)
        for statement in render_statements("twin.sql", step="drop", twin=twin)
    ]
    if not later:
        return drop, []
    overlay_of = {schema: overlay for (schema, _), (overlay, _) in later.items()}
    taken = {(overlay, name) for (_, name), (overlay, _) in later.items()}
    rows = await executor.execute(
        render(
            "catalog_dependent_views.sql",
            tables=sorted(oid for _, oid in later.values()),
            overlay_schemas=sorted(set(overlay_of.values())),
        )
    )
    create: list[str] = []
    for oid, schema, name, owner, reloptions in rows:
        overlay = overlay_of.get(str(schema))
        twin = (overlay, str(name)) if overlay else None
        if twin is None or twin in taken:
            continue  # a view of a schema without overlays; a name an overlay holds
        create += _twin_statements(
            (str(schema), str(name)), twin, str(owner), reloptions, overlay_of
        )
        create += grant_statements(
            await read_grants(executor, int(oid)), source=(schema, name), target=twin, move=False
        )
    return drop, create


def _twin_statements(
    view: tuple[str, str],
    twin: tuple[str, str],
    owner: str,
    reloptions: Sequence[str],
    overlay_of: dict[str, str],
) -> list[str]:
    schemas = [view[0], *sorted(set(overlay_of) - {view[0]})]
    print_path = ", ".join(quote_ident(s) for s in schemas)
    session_path = ", ".join(
        f"{quote_ident(overlay_of[s])}, {quote_ident(s)}" if s in overlay_of else quote_ident(s)
        for s in schemas
    )
    options = []
    for option in reloptions:
        match = _OPTION.match(option)
        if match:
            options.append(f"{match[1]} = {match[2]}")
    return render_statements(
        "twin.sql",
        step="create",
        view=view,
        twin=twin,
        owner=owner,
        options=", ".join(options),
        print_path=print_path,
        session_path=session_path,
    )
