"""Turning copy-on-write on and off for tables (each call atomic)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentcow.catalog import (
    describe_stored,
    describe_table,
    find_relation,
    registered_tables,
    require_kit,
    table_dependents,
)
from agentcow.description import NO_TENANCY, Grant, RegisteredTable, TableDescription, Tenancy
from agentcow.errors import PendingChangesError, TableNotFoundError, UnsupportedTableError
from agentcow.executor import Executor
from agentcow.grants import grant_statements, read_grants
from agentcow.identifiers import derived_name, quote_ident
from agentcow.naming import LAYOUTS, OVERLAY_SUFFIX, Layout, is_reserved_column, object_names
from agentcow.neighbours import neighbour_statements, seen_after
from agentcow.script import run_atomically
from agentcow.templates import dollar_tag, render, render_statements
from agentcow.tenancy import tenancy_reasons
from agentcow.twins import after, overlaid_tables, twin_script

_KIND_NAMES = {
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "S": "a sequence",
    "i": "an index",
    "c": "a composite type",
    "p": "a partitioned table",
}


def _unsupported_reasons(
    t: TableDescription, pk_cols: Sequence[str] | None, dependents: Sequence[str]
) -> list[str]:
    """Why ``t`` cannot be enabled (every reason, so one pass can fix them all); empty: it can.

    A table without a primary key is supported: a NOT NULL unique key stands in for it, and
    without one the table is append-only in sessions."""
    if t.relation.kind != "r":
        kind = _KIND_NAMES.get(t.relation.kind, f"a relation of kind {t.relation.kind!r}")
        return [f"it is {kind}; COW works on plain tables only"]
    reasons: list[str] = []
    if t.relation.is_partition:
        reasons.append("it is a partition; partitioned tables are not supported")
    if t.relation.inherits:
        reasons.append("it takes part in table inheritance; not supported")
    if pk_cols is not None and set(pk_cols) != set(t.pk_columns):
        reasons.append(
            f"pk_cols {list(pk_cols)} match neither its primary key nor one of its NOT NULL "
            f"unique keys (its key: {list(t.pk_columns)})"
        )
    reserved = [c for c in t.column_names if is_reserved_column(c)]
    if reserved:
        reasons.append(
            f"agentcow reserves the names of its columns {reserved} for its change table"
        )
    if t.relation.row_security:
        reasons.append("it has row-level security enabled; not supported yet")
    if t.exclusions:
        reasons.append(f"it has exclusion constraints {list(t.exclusions)}; not supported")
    if dependents:
        reasons.append(
            f"it is used by {list(dependents)}; after the rename they would read the base "
            "table and bypass sessions. Drop them, enable COW, then recreate them"
        )
    return reasons


async def _taken_names(executor: Executor, t: TableDescription) -> list[str]:
    """Names enable would create, or (overlay) hide from the agent's unqualified SQL."""
    if t.overlay_schema:
        wanted = [t.view, t.changes, t.row_type, (t.schema, t.changes_name)]
    else:
        wanted = [t.base, t.changes]
    return [
        f"{schema}.{name} already exists"
        for schema, name in wanted
        if await find_relation(executor, schema, name) is not None
    ]


async def _overlay_schema_reasons(executor: Executor, schema: str, overlay: str) -> list[str]:
    """An overlay schema is agentcow's alone: made by enable, or refused."""
    rows = await executor.execute(render("overlay_schemas.sql"))
    registered = [(str(owner), str(found)) for owner, found in rows]
    if (schema, overlay) in registered:
        return []
    if any(schema == found for _, found in registered):
        return [f"schema {schema} is agentcow's overlay schema of another schema"]
    if await executor.execute(render("schema_exists.sql", schema=overlay)):
        return [
            f"schema {overlay} exists and is not agentcow's: the overlay layout puts the views "
            f"of {schema}'s tables there; rename or drop it"
        ]
    return []


@dataclass(frozen=True)
class PlannedEnable:
    """A table enable found supported: described as it will be (its layout, the keys made
    deferrable), with the privileges its view takes over."""

    t: TableDescription
    make_deferrable: tuple[str, ...]
    grants: tuple[Grant, ...]


async def enable_script(executor: Executor, planned: Sequence[PlannedEnable]) -> list[str]:
    """The statements that enable the ``planned`` tables together: each sees the others (and
    its COW-enabled neighbours see it) as enabled."""
    changes = {(p.t.schema, p.t.name): p.t for p in planned}
    before = await overlaid_tables(executor)
    drop_twins, make_twins = await twin_script(
        executor, before, after(before, enabled=[p.t for p in planned])
    )
    statements = drop_twins
    for p in planned:
        statements += enable_statements(seen_after(p.t, changes), p.make_deferrable, p.grants)
    statements += await neighbour_statements(executor, [p.t for p in planned], changes)
    return statements + make_twins


def enable_statements(
    t: TableDescription, make_deferrable: Sequence[str], grants: Sequence[Grant]
) -> list[str]:
    """The statements that make ``t`` (described before the change, with its ``grants``)
    a COW table."""
    return [
        *render_statements("enable.sql", step="begin", t=t, make_deferrable=make_deferrable),
        *cow_objects(t, grants),
        *render_statements("enable.sql", step="end", t=t, make_deferrable=make_deferrable),
    ]


def cow_objects(
    t: TableDescription, grants: Sequence[Grant], fill_changes: Sequence[str] = ()
) -> list[str]:
    """The objects of a COW table: its change table (then ``fill_changes``, before any
    trigger on it exists), functions, view (with ``grants``) and triggers."""
    names = object_names(t.name)
    create_view, *view_rest = render_statements(
        "view.sql", t=t, names=names, tag=dollar_tag(), replace=False
    )
    return [
        *(render_statements("row_type.sql", t=t) if t.overlay_schema else ()),
        *render_statements("changes_table.sql", t=t),
        *fill_changes,
        *render_statements(
            "identity_function.sql", t=t, names=names, tag=dollar_tag(), replace=False
        ),
        *render_statements("floor_function.sql", t=t, names=names, tag=dollar_tag(), replace=False),
        # the view's operators are bound when it is created: pg_catalog's only
        *render_statements("search_path.sql", step="pin"),
        create_view,
        *render_statements("search_path.sql", step="restore"),
        *view_rest,
        *grant_statements(grants, source=t.base, target=t.view, move=not t.overlay_schema),
        *render_statements("write_trigger.sql", t=t, names=names, tag=dollar_tag(), replace=False),
        *render_statements("fk_checks.sql", t=t, names=names, tag=dollar_tag(), replace=False),
        *render_statements(
            "fk_statement_checks.sql", t=t, names=names, tag=dollar_tag(), replace=False
        ),
        *render_statements("read_only_trigger.sql", t=t, names=names, tag=dollar_tag()),
        *render_statements("limit_trigger.sql", t=t, names=names),
        *render_statements("ownership.sql", t=t, functions=_created_functions(t)),
    ]


def _created_functions(t: TableDescription) -> list[str]:
    names = object_names(t.name)
    functions = [names.write_function]
    if not t.append_only:
        functions.append(names.floor_function)
    if t.parents_checked_per_row:
        functions.append(names.parent_check_function)
    if t.children_checked_per_row:
        functions.append(names.children_check_function)
    if t.parents_checked_per_statement or t.children_checked_per_statement:
        functions.append(names.statement_check_function)
    if t.identity_columns:
        functions.append(names.identity_function)
    if t.tenancy.read_only:
        functions.append(names.read_only_function)
    return functions


async def sessions_with_changes(executor: Executor, changes: tuple[str, str]) -> list[str]:
    rows = await executor.execute(render("sessions_with_changes.sql", changes=changes))
    return [str(row[0]) for row in rows]


def overlay_schema_of(schema: str, layout: Layout) -> str | None:
    """The schema that holds a table's overlay objects: None in the rename layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return derived_name(schema, OVERLAY_SUFFIX) if layout == "overlay" else None


async def prepare_enable(
    executor: Executor,
    table_name: str,
    pk_cols: Sequence[str] | None,
    schema: str,
    allow_deferred_fks: bool,
    layout: Layout = "rename",
    tenancy: Tenancy = NO_TENANCY,
) -> PlannedEnable:
    """Check that the table can be enabled with ``tenancy`` (else
    :class:`UnsupportedTableError`)."""
    overlay = overlay_schema_of(schema, layout)
    if tenancy.column is not None:
        quote_ident(tenancy.column)  # InvalidIdentifierError before it nears SQL
    t = await describe_table(
        executor, schema, table_name, key_columns=pk_cols, overlay_schema=overlay, tenancy=tenancy
    )
    # views over the table: refused in the rename layout (they would read the base); the
    # overlay layout makes twins of them (agentcow.twins)
    dependents = () if overlay else await table_dependents(executor, t)
    reasons = _unsupported_reasons(t, pk_cols, dependents) + await _taken_names(executor, t)
    if t.relation.kind == "r":
        reasons += await tenancy_reasons(executor, t)
    if overlay:
        reasons += await _overlay_schema_reasons(executor, schema, overlay)
    if reasons:
        where = f"{schema}.{table_name}"
        raise UnsupportedTableError(
            f"cannot enable COW on {where}: {'; '.join(reasons)}", {where: reasons}
        )
    make_deferrable = (
        [fk.name for fk in t.foreign_keys if not fk.deferrable] if allow_deferred_fks else []
    )
    if make_deferrable:
        t = dataclasses.replace(
            t,
            foreign_keys=tuple(
                dataclasses.replace(fk, deferrable=True) if fk.name in make_deferrable else fk
                for fk in t.foreign_keys
            ),
        )
    return PlannedEnable(t, tuple(make_deferrable), await read_grants(executor, t.relation.oid))


async def disable_script(
    executor: Executor,
    schema: str,
    entries: Sequence[RegisteredTable],
    revert_deferred_fks: bool,
    discard_changes: bool,
) -> list[str]:
    """Check that the tables can be disabled and return the statements that disable them
    together (their COW-enabled neighbours then see them as plain tables)."""
    if not discard_changes:
        for entry in entries:
            pending = await sessions_with_changes(executor, entry.changes)
            if pending:
                raise PendingChangesError(
                    f"cannot disable COW on {schema}.{entry.name}: {len(pending)} session(s) "
                    f"still hold changes ({', '.join(pending[:5])}); commit or discard them, "
                    "or pass discard_changes=True"
                )
    described = [await describe_stored(executor, schema, entry) for entry in entries]
    before = await overlaid_tables(executor)
    drop_twins, make_twins = await twin_script(
        executor, before, after(before, disabled=[(schema, e.name) for e in entries])
    )
    statements = drop_twins
    for entry, t in zip(entries, described, strict=True):
        # the rename layout's view held the table's privileges: the table takes them back
        view = None if t.overlay_schema else await find_relation(executor, *t.view)
        view_grants = await read_grants(executor, view.oid) if view is not None else ()
        statements += [
            *render_statements("disable.sql", step="begin", t=t, discard_changes=discard_changes),
            *grant_statements(view_grants, source=t.view, target=t.base, move=True),
            *render_statements(
                "disable.sql",
                step="end",
                t=t,
                functions=object_names(entry.name).functions,
                revert_deferrable=entry.deferrable_fks if revert_deferred_fks else (),
            ),
        ]
    changes = {(schema, t.name): None for t in described}
    statements += await neighbour_statements(executor, described, changes)
    return statements + make_twins


async def enabled_already(
    executor: Executor, schema: str, table_name: str, layout: Layout, tenancy: Tenancy
) -> bool:
    """Whether ``schema.table_name`` is COW-enabled in ``layout`` with ``tenancy`` already;
    :class:`UnsupportedTableError` when it is, but in another layout or with another tenant
    isolation (disable first)."""
    overlay = overlay_schema_of(schema, layout)
    for entry in await registered_tables(executor, schema, table_name):
        if entry.overlay_schema == overlay and entry.tenancy == tenancy:
            return True
        where = f"{schema}.{table_name}"
        if entry.overlay_schema != overlay:
            reason = (
                f"it is COW-enabled in the {'overlay' if entry.overlay_schema else 'rename'} "
                "layout already; disable COW first to change its layout"
            )
        else:
            reason = (
                f"it is COW-enabled already with tenant_column={entry.tenant_column!r}, "
                f"read_only_for_tenants={entry.tenant_read_only}; disable COW first to change "
                "its tenant isolation"
            )
        raise UnsupportedTableError(f"cannot enable COW on {where}: {reason}", {where: [reason]})
    return False


@dataclass(frozen=True)
class CowPlan:
    """What enabling or disabling would do: the tables it changes, and the statements that
    do it, which apply together (:func:`agentcow.script.run_atomically`, or printed as one
    ``DO`` block by :func:`agentcow.script.atomic_block`)."""

    tables: list[str]
    statements: list[str]


#: Told each table's name, how many tables were checked and how many there are, as a plan
#: is made (enabling a large schema reads the catalog for minutes).
Progress = Callable[[str, int, int], None]


def refused_error(schema: str, refused: dict[str, list[str]], hint: str) -> UnsupportedTableError:
    """One error naming every table refused, with its reasons."""
    listed = "".join(f"\n  {table}: {'; '.join(why)}" for table, why in refused.items())
    return UnsupportedTableError(
        f"cannot enable COW on {len(refused)} table(s) of schema {schema} (nothing was "
        f"changed; {hint}):{listed}",
        refused,
    )


async def plan_enable_tables(
    executor: Executor,
    tables: Sequence[str],
    pk_cols: Sequence[str] | None = None,
    schema: str = "public",
    allow_deferred_fks: bool = False,
    *,
    layout: Layout = "rename",
    tenancy: Tenancy = NO_TENANCY,
    progress: Progress | None = None,
) -> CowPlan:
    """The plan that enables ``tables`` together, as :func:`enable_cow` does one (those
    enabled already as asked are left out). A refused table raises its
    :class:`UnsupportedTableError`; several, one error naming each."""
    await require_kit(executor)
    names = list(dict.fromkeys(tables))
    planned: list[PlannedEnable] = []
    errors: list[UnsupportedTableError] = []
    for done, name in enumerate(names, 1):
        try:
            if not await enabled_already(executor, schema, name, layout, tenancy):
                planned.append(
                    await prepare_enable(
                        executor, name, pk_cols, schema, allow_deferred_fks, layout, tenancy
                    )
                )
        except UnsupportedTableError as error:
            errors.append(error)
        if progress is not None:
            progress(name, done, len(names))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        refused = {table: why for error in errors for table, why in error.reasons.items()}
        raise refused_error(schema, refused, "fix them, or leave them out")
    if not planned:
        return CowPlan([], [])
    return CowPlan([p.t.name for p in planned], await enable_script(executor, planned))


async def enable_cow(
    executor: Executor,
    table_name: str,
    pk_cols: list[str] | None = None,
    schema: str = "public",
    allow_deferred_fks: bool = False,
    *,
    layout: Layout = "rename",
    tenant_column: str | None = None,
    read_only_for_tenants: bool = False,
) -> None:
    """Put ``schema.table_name`` under copy-on-write; a no-op when it already is, in that
    layout and with that tenant isolation (else :class:`UnsupportedTableError`: disable
    first).

    ``layout="rename"`` (agent-cow's): the table becomes ``<name>_base`` and a view takes its
    name, for every client. ``layout="overlay"``: the table stays as it is for production;
    the view is ``<schema>_cow.<name>``, which sessions reach through the ``search_path``
    that entering a session sets, and writes through it without a session are refused.

    Rows are told apart by the primary key; without one, by a NOT NULL unique key (``pk_cols``
    picks which); without either, the table is append-only in sessions (``pk_cols=[]`` asks
    for that even when such a key exists).

    With ``allow_deferred_fks``, the table's NOT DEFERRABLE foreign keys become DEFERRABLE
    INITIALLY IMMEDIATE (and go back on disable), so commits can defer them.

    ``tenant_column`` (NOT NULL) holds each row's tenant: a session bound to a tenant
    (``apply_cow_variables(..., tenant_id=...)``) sees only its tenant's rows, and a write
    that would leave its tenant fails at the statement (42501). ``read_only_for_tenants``
    refuses every write of such sessions (shared reference tables).
    """
    plan = await plan_enable_tables(
        executor,
        [table_name],
        pk_cols,
        schema,
        allow_deferred_fks,
        layout=layout,
        tenancy=Tenancy(tenant_column, read_only_for_tenants),
    )
    await run_atomically(executor, plan.statements)


async def plan_disable_tables(
    executor: Executor,
    tables: Sequence[str],
    schema: str = "public",
    revert_deferred_fks: bool = True,
    *,
    discard_changes: bool = False,
) -> CowPlan:
    """The plan that disables ``tables`` together, as :func:`disable_cow` does one (tables
    that are not COW-enabled are left out; one that does not exist raises
    :class:`TableNotFoundError`)."""
    await require_kit(executor)
    entries: list[RegisteredTable] = []
    for name in dict.fromkeys(tables):
        registered = await registered_tables(executor, schema, name)
        if not registered and await find_relation(executor, schema, name) is None:
            raise TableNotFoundError(f"table {schema}.{name} does not exist")
        entries += registered
    if not entries:
        return CowPlan([], [])
    statements = await disable_script(
        executor, schema, entries, revert_deferred_fks, discard_changes
    )
    return CowPlan([entry.name for entry in entries], statements)


async def disable_cow(
    executor: Executor,
    table_name: str,
    schema: str = "public",
    revert_deferred_fks: bool = True,
    *,
    discard_changes: bool = False,
) -> None:
    """Give ``schema.table_name`` back its table; a no-op when COW is not enabled on it.

    Refused while sessions hold changes for the table, unless ``discard_changes`` is set.
    """
    plan = await plan_disable_tables(
        executor, [table_name], schema, revert_deferred_fks, discard_changes=discard_changes
    )
    await run_atomically(executor, plan.statements)
