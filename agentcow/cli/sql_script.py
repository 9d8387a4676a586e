"""``agentcow sql enable|disable``: the SQL that ``enable`` or ``disable`` would run, for a
migration tool to apply (``psql -f``, an Alembic revision).

The script is made from the catalog as it is now and changes nothing: it is planned inside
a transaction that is rolled back (read-only when the kit is current). It is one ``DO`` block,
atomic wherever it runs, that first checks the kit it was made for is deployed. ``--with-kit``
puts the kit's own migration (install or upgrade) before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import typer

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.catalog import kit_version
from agentcow.cli.common import (
    Debug,
    Dsn,
    Json,
    Output,
    Schema,
    emit,
    require_dsn,
    run,
    show_help_without_command,
)
from agentcow.cli.plans import (
    AllowDeferredFks,
    DiscardChanges,
    EnableOptions,
    Exclude,
    KeyColumns,
    LayoutChoice,
    LayoutOption,
    ReadOnlyForTenants,
    Tables,
    TenantColumn,
    disable_plan,
    enable_plan,
)
from agentcow.deploy import deploy_cow_functions, migration_plan
from agentcow.enable import CowPlan
from agentcow.errors import NotDeployedError
from agentcow.executor import Executor
from agentcow.script import atomic_block
from agentcow.templates import render, render_statements
from agentcow.versions import KIT_VERSION

app = typer.Typer(
    name="sql",
    help="Print the SQL of enable or disable, for a migration tool; changes nothing.",
)


@app.callback(invoke_without_command=True)
def sql(context: typer.Context) -> None:
    """Print the SQL of enable or disable, for a migration tool; changes nothing."""
    show_help_without_command(context)


WithKit = Annotated[
    bool,
    typer.Option(
        "--with-kit",
        help="put the kit's install or upgrade (what agentcow deploy runs) before the script",
    ),
]


@asynccontextmanager
async def rolled_back(dsn: str | None, *, read_only: bool) -> AsyncIterator[Executor]:
    """An executor inside a transaction that is always rolled back."""
    connection = await asyncpg.connect(require_dsn(dsn))
    try:
        transaction = connection.transaction(readonly=read_only)
        await transaction.start()
        try:
            yield AsyncpgExecutor(connection)
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


def kit_script(installed: str | None) -> str:
    """What ``deploy`` runs to bring the kit from ``installed`` to this package's version,
    as one ``DO`` block (empty when it is current)."""
    steps = migration_plan(installed)
    if not steps:
        return ""
    guard = render("deploy_guard.sql", installed=installed)
    return atomic_block([guard, *(step.read_text() for step in steps)]) + ";\n"


async def printed(
    dsn: str | None,
    action: str,
    schema: str,
    with_kit: bool,
    make_plan: Callable[[Executor], Coroutine[Any, Any, CowPlan]],
) -> Output:
    """Plan in a rolled-back transaction (after deploying the kit there, with ``with_kit``)
    and print the script."""
    async with rolled_back(dsn, read_only=True) as probe:
        installed = await kit_version(probe)
    kit = kit_script(installed) if with_kit else ""
    if installed != KIT_VERSION and not with_kit:
        found = "no agentcow kit" if installed is None else f"agentcow kit {installed}"
        raise NotDeployedError(
            f"the database has {found}, the script needs {KIT_VERSION}: deploy it first "
            "(agentcow deploy), or print the kit's migration too with --with-kit"
        )
    async with rolled_back(dsn, read_only=not kit) as db:
        if kit:
            await deploy_cow_functions(db)
        plan = await make_plan(db)
    body = ""
    if plan.statements:
        guard = render_statements("script_guard.sql", version=KIT_VERSION)
        body = atomic_block([*guard, *plan.statements]) + ";\n"
    # names may hold line breaks: in a -- comment one would end it
    tables = " ".join(", ".join(plan.tables).split()) or "none (nothing to do)"
    where = " ".join(schema.split())
    needs = (
        "the kit's migration comes first"
        if kit
        else f"needs agentcow kit {KIT_VERSION} deployed (agentcow deploy)"
    )
    header = (
        f"-- agentcow {action} in schema {where}: {tables}\n"
        f"-- made from this database's catalog as it is now: apply it before other changes "
        f"to these tables; {needs}\n"
    )
    text = header + kit + body
    data = {
        "action": action,
        "schema": schema,
        "tables": plan.tables,
        "kit_included": bool(kit),
        "kit_version": KIT_VERSION,
        "sql": text,
    }
    return Output(text, data)


def show(output: Output, *, as_json: bool) -> None:
    """The script as it is: no Rich markup, wrapping or highlighting may touch SQL."""
    if as_json:
        emit(output, as_json=True)
    else:
        typer.echo(str(output.human), nl=False)


@app.command("enable")
def sql_enable(
    tables: Tables = None,
    schema: Schema = "public",
    layout: LayoutOption = LayoutChoice.rename,
    tenant_column: TenantColumn = None,
    read_only_for_tenants: ReadOnlyForTenants = False,
    allow_deferred_fks: AllowDeferredFks = False,
    pk: KeyColumns = None,
    exclude: Exclude = None,
    with_kit: WithKit = False,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Print the SQL that `agentcow enable` would run with these options."""
    options = EnableOptions(
        tables or [],
        schema,
        layout,
        tenant_column,
        read_only_for_tenants,
        allow_deferred_fks,
        pk,
        exclude or [],
    )

    async def command() -> None:
        async def plan(db: Executor) -> CowPlan:
            return await enable_plan(db, options)

        show(await printed(dsn, "enable", schema, with_kit, plan), as_json=as_json)

    run(command, as_json=as_json, debug=debug)


@app.command("disable")
def sql_disable(
    tables: Tables = None,
    schema: Schema = "public",
    discard_changes: DiscardChanges = False,
    with_kit: WithKit = False,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Print the SQL that `agentcow disable` would run with these options."""

    async def command() -> None:
        async def plan(db: Executor) -> CowPlan:
            return await disable_plan(db, tables or [], schema, discard_changes=discard_changes)

        show(await printed(dsn, "disable", schema, with_kit, plan), as_json=as_json)

    run(command, as_json=as_json, debug=debug)
