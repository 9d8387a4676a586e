"""What ``enable``, ``disable`` and ``sql enable|disable`` share: their options, and the plan
(:class:`~agentcow.enable.CowPlan`) each option set makes. ``enable`` runs the plan, ``sql``
prints it: the same statements either way."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

import typer

from agentcow.catalog import require_kit
from agentcow.cli.common import ExitCode, fail
from agentcow.description import Tenancy
from agentcow.enable import CowPlan, Progress, plan_disable_tables, plan_enable_tables
from agentcow.errors import PendingChangesError
from agentcow.executor import Executor
from agentcow.naming import Layout
from agentcow.schema import plan_disable_schema, plan_enable_schema
from agentcow.templates import render


class LayoutChoice(enum.StrEnum):
    rename = "rename"
    overlay = "overlay"


Tables = Annotated[
    list[str] | None,
    typer.Argument(metavar="TABLE", help="the tables; none: every table of the schema"),
]
LayoutOption = Annotated[
    LayoutChoice,
    typer.Option("--layout", help="rename: a view takes the table's name; overlay: <schema>_cow"),
]
TenantColumn = Annotated[
    str | None,
    typer.Option(
        "--tenant-column",
        help="the NOT NULL column that holds each row's tenant (without TABLE: in every "
        "table that has it)",
    ),
]
ReadOnlyForTenants = Annotated[
    bool,
    typer.Option(
        "--read-only-for-tenants", help="sessions bound to a tenant may only read the TABLEs"
    ),
]
AllowDeferredFks = Annotated[
    bool,
    typer.Option(
        "--allow-deferred-fks",
        help="make NOT DEFERRABLE foreign keys DEFERRABLE (reverted on disable)",
    ),
]
KeyColumns = Annotated[
    str | None,
    typer.Option(
        "--pk",
        metavar="COL[,COL...]",
        help="one TABLE only: the NOT NULL unique key that tells rows apart ('': append-only)",
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option("--exclude", metavar="TABLE", help="without TABLE: leave this table out"),
]
DiscardChanges = Annotated[
    bool,
    typer.Option(
        "--discard-changes", help="disable even though sessions hold changes (they are lost)"
    ),
]


@dataclass(frozen=True)
class EnableOptions:
    """``enable``'s options, checked against each other before anything connects."""

    tables: list[str]
    schema: str
    layout: LayoutChoice
    tenant_column: str | None
    read_only_for_tenants: bool
    allow_deferred_fks: bool
    pk: str | None
    exclude: list[str]

    def __post_init__(self) -> None:
        if self.pk is not None and len(self.tables) != 1:
            fail("--pk names the key of one TABLE: give exactly one", ExitCode.USAGE)
        if self.read_only_for_tenants and not self.tables:
            fail("--read-only-for-tenants applies to the TABLEs named: name them", ExitCode.USAGE)
        if self.exclude and self.tables:
            fail("--exclude applies to a whole schema: name no TABLE with it", ExitCode.USAGE)

    @property
    def layout_name(self) -> Layout:
        return "overlay" if self.layout is LayoutChoice.overlay else "rename"

    @property
    def key_columns(self) -> list[str] | None:
        if self.pk is None:
            return None
        return [column.strip() for column in self.pk.split(",") if column.strip()]


async def require_schema(db: Executor, schema: str) -> None:
    """The kit is deployed (else exit 3), and ``schema`` exists: one line and exit 5 when it
    does not (a typo would find no table)."""
    await require_kit(db)
    if not await db.execute(render("schema_exists.sql", schema=schema)):
        fail(f"schema {schema} does not exist", ExitCode.NOT_FOUND)


async def enable_plan(
    db: Executor, options: EnableOptions, progress: Progress | None = None
) -> CowPlan:
    await require_schema(db, options.schema)
    if options.tables:
        return await plan_enable_tables(
            db,
            options.tables,
            options.key_columns,
            options.schema,
            options.allow_deferred_fks,
            layout=options.layout_name,
            tenancy=Tenancy(options.tenant_column, options.read_only_for_tenants),
            progress=progress,
        )
    return await plan_enable_schema(
        db,
        options.schema,
        set(options.exclude),
        options.allow_deferred_fks,
        layout=options.layout_name,
        tenant_columns=options.tenant_column,
        progress=progress,
    )


async def disable_plan(
    db: Executor, tables: list[str], schema: str, *, discard_changes: bool
) -> CowPlan:
    await require_schema(db, schema)
    try:
        if tables:
            return await plan_disable_tables(db, tables, schema, discard_changes=discard_changes)
        return await plan_disable_schema(db, schema, discard_changes=discard_changes)
    except PendingChangesError as error:
        # the API's advice, in the command's words
        text = str(error).replace("pass discard_changes=True", "give --discard-changes")
        raise PendingChangesError(text) from error
