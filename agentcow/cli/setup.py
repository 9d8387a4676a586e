"""Setting a database up: ``deploy`` (the kit), ``enable`` and ``disable`` (tables)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from agentcow.catalog import kit_version, registered_tables
from agentcow.cli.common import Debug, Dsn, Json, Output, Schema, database, run
from agentcow.cli.cow_tables import dotted, table_data, tables_table
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
from agentcow.deploy import deploy_cow_functions
from agentcow.enable import Progress as PlanProgress
from agentcow.script import run_atomically

#: ``enable`` shows its progress (on a terminal) from this many tables on.
PROGRESS_FROM_TABLES = 10


def deploy(dsn: Dsn = None, as_json: Json = False, debug: Debug = False) -> None:
    """Install the agentcow kit, or upgrade it to this package's version (safe to repeat)."""

    async def command() -> Output:
        async with database(dsn) as db:
            before = await kit_version(db)
            await deploy_cow_functions(db)
            after = await kit_version(db)
        if before == after:
            said = f"agentcow kit {after} is deployed already: nothing to do"
        elif before is None:
            said = f"agentcow kit {after} installed"
        else:
            said = f"agentcow kit upgraded from {before} to {after}"
        data = {"installed_before": before, "installed": after, "changed": before != after}
        return Output(Text(said), data)

    run(command, as_json=as_json, debug=debug)


@contextmanager
def table_progress(shown: bool) -> Iterator[PlanProgress | None]:
    """A Rich progress bar on standard error, per table checked, when ``shown`` and standard
    error is a terminal and there are at least :data:`PROGRESS_FROM_TABLES` tables; then a
    spinner while the tables are enabled together."""
    console = Console(stderr=True)
    if not shown or not console.is_terminal:
        yield None
        return
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("checking tables")

    def heard(table: str, done: int, total: int) -> None:
        if total < PROGRESS_FROM_TABLES:
            return
        if not bar.live.is_started:
            bar.start()
        description = f"checked {table}" if done < total else f"enabling {total} tables"
        bar.update(task, description=description, completed=done, total=total)

    try:
        yield heard
    finally:
        bar.stop()


def enable(
    tables: Tables = None,
    schema: Schema = "public",
    layout: LayoutOption = LayoutChoice.rename,
    tenant_column: TenantColumn = None,
    read_only_for_tenants: ReadOnlyForTenants = False,
    allow_deferred_fks: AllowDeferredFks = False,
    pk: KeyColumns = None,
    exclude: Exclude = None,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Put tables under copy-on-write (no TABLE: every table of the schema not enabled yet),
    all of them in one transaction."""
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

    async def command() -> Output:
        async with database(dsn) as db:
            with table_progress(not as_json) as progress:
                plan = await enable_plan(db, options, progress)
                await run_atomically(db, plan.statements)
            enabled = [
                table_data(entry)
                for entry in await registered_tables(db, schema)
                if entry.name in plan.tables
            ]
        if not enabled:
            return Output(Text(f"nothing to enable in {schema}: COW-enabled already"), [])
        said = Text(f"COW enabled on {len(enabled)} table(s) of {schema}:")
        return Output(Group(said, tables_table(enabled)), enabled)

    run(command, as_json=as_json, debug=debug)


def disable(
    tables: Tables = None,
    schema: Schema = "public",
    discard_changes: DiscardChanges = False,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Give tables back their plain form (no TABLE: every COW table of the schema), all of
    them in one transaction; refused (exit 4) while sessions hold changes for them."""

    async def command() -> Output:
        async with database(dsn) as db:
            plan = await disable_plan(db, tables or [], schema, discard_changes=discard_changes)
            await run_atomically(db, plan.statements)
        data = [{"schema": schema, "table": name} for name in plan.tables]
        if not data:
            return Output(Text(f"nothing to disable in {schema}: no COW table named"), data)
        names = ", ".join(dotted(schema, name) for name in plan.tables)
        return Output(Text(f"COW disabled on {len(data)} table(s): {names}"), data)

    run(command, as_json=as_json, debug=debug)
