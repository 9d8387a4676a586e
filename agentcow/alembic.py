"""Copy-on-write operations for Alembic revisions: ``op.deploy_cow()`` (with
``op.upgrade_cow_tables()`` after a kit upgrade), ``op.enable_cow(...)``,
``op.disable_cow(...)``, their schema-wide forms, ``op.refresh_cow(...)`` and
``with op.alter_cow_table(...)`` around an ``ALTER TABLE`` of a COW table.

Importing this module registers them (``env.py`` imports it once). Each runs the kit's own
function on the migration's connection, inside Alembic's transaction: a revision that fails
halfway leaves nothing applied. The kit reads the catalog to write its statements (what the
table looks like, what is enabled, which sessions hold changes), so offline mode
(``alembic upgrade --sql``) cannot print them and is refused with
:class:`OfflineMigrationError`.

Alembic's connection is synchronous; the kit's coroutines run on it through
:func:`agentcow.blocking.run_blocking` (they never wait for an event loop), so this works
with a sync engine and with an async one whose ``env.py`` migrates in ``run_sync``.

The operations are also :class:`~alembic.operations.MigrateOperation` objects, for
``process_revision_directives`` hooks: ``reverse()`` turns an enable into a disable (and a
disable built by that reverse back into its enable), an ``alter_cow_table`` block into the
block of its reversed operations, and each renders as the call that runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, ClassVar

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import render_op
from alembic.operations import MigrateOperation, Operations
from alembic.operations.ops import OpContainer

from agentcow.adapters.sqlalchemy import SQLAlchemySyncExecutor
from agentcow.blocking import blocking_context, run_blocking
from agentcow.catalog import registered_tables, require_kit
from agentcow.deploy import deploy_cow_functions
from agentcow.enable import disable_cow, enable_cow
from agentcow.errors import CowError, UnsupportedTableError
from agentcow.executor import Executor
from agentcow.naming import Layout
from agentcow.refresh import cow_migration, refresh_cow
from agentcow.schema import disable_cow_schema, enable_cow_schema
from agentcow.upgrade import upgrade_cow_tables

__all__ = [
    "AlterCowTableOp",
    "DeployCowOp",
    "DisableCowOp",
    "DisableCowSchemaOp",
    "EnableCowOp",
    "EnableCowSchemaOp",
    "OfflineMigrationError",
    "RefreshCowOp",
    "UpgradeCowTablesOp",
]


class OfflineMigrationError(CowError, RuntimeError):
    """An agentcow operation ran in Alembic's offline mode (``--sql``): its statements depend
    on the database's catalog, which offline mode cannot read."""


def _executor(operations: Operations, name: str) -> Executor:
    """The migration's own connection, as an executor; refused in offline mode."""
    if operations.migration_context.as_sql:
        raise OfflineMigrationError(
            f"op.{name}() reads the database's catalog to write its SQL, so offline mode "
            "(alembic --sql) cannot print it: run this migration against the database"
        )
    return SQLAlchemySyncExecutor(operations.get_bind())


class _CowOp(MigrateOperation):
    """A kit call as an operation: its dataclass fields are the call's arguments."""

    name: ClassVar[str]

    def render(self, prefix: str) -> str:
        """The call that runs this operation in a revision: fields without a default first,
        the others by keyword when they differ from it."""
        args = []
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if not field.metadata.get("rendered", True):
                continue
            value = getattr(self, field.name)
            if field.default is dataclasses.MISSING:
                args.append(repr(value))
            elif value != field.default:
                args.append(f"{field.name}={value!r}")
        return f"{prefix}{self.name}({', '.join(args)})"


#: A field that only ``reverse()`` reads: how the table was enabled, for the disable that
#: undoes that enable.
_NOT_RENDERED: Mapping[str, Any] = {"rendered": False}


@Operations.register_operation("deploy_cow")
@dataclasses.dataclass(eq=False)
class DeployCowOp(_CowOp):
    name = "deploy_cow"

    @classmethod
    def deploy_cow(cls, operations: Operations) -> None:
        """Install the agentcow kit (schema ``agentcow``) or upgrade it in place. A
        downgrade leaves it: other revisions' tables may use it."""
        operations.invoke(cls())


@Operations.implementation_for(DeployCowOp)
def _deploy(operations: Operations, op: DeployCowOp) -> None:
    run_blocking(deploy_cow_functions(_executor(operations, op.name)))


@Operations.register_operation("upgrade_cow_tables")
@dataclasses.dataclass(eq=False)
class UpgradeCowTablesOp(_CowOp):
    name = "upgrade_cow_tables"
    schema: str = "public"

    @classmethod
    def upgrade_cow_tables(cls, operations: Operations, schema: str = "public") -> list[str]:
        """After ``op.deploy_cow()`` upgraded the kit: bring ``schema``'s tables enabled
        under an older kit up to it, as ``agentcow.upgrade_cow_tables`` does; returns them."""
        upgraded: list[str] = operations.invoke(cls(schema))
        return upgraded


@Operations.implementation_for(UpgradeCowTablesOp)
def _upgrade_tables(operations: Operations, op: UpgradeCowTablesOp) -> list[str]:
    return run_blocking(upgrade_cow_tables(_executor(operations, op.name), op.schema))


@Operations.register_operation("enable_cow")
@dataclasses.dataclass(eq=False)
class EnableCowOp(_CowOp):
    name = "enable_cow"
    table: str
    schema: str = "public"
    layout: Layout = "rename"
    pk_cols: Sequence[str] | None = None
    allow_deferred_fks: bool = False
    tenant_column: str | None = None
    read_only_for_tenants: bool = False

    @classmethod
    def enable_cow(
        cls,
        operations: Operations,
        table: str,
        *,
        schema: str = "public",
        layout: Layout = "rename",
        pk_cols: Sequence[str] | None = None,
        allow_deferred_fks: bool = False,
        tenant_column: str | None = None,
        read_only_for_tenants: bool = False,
    ) -> None:
        """Put ``schema.table`` under copy-on-write, as ``agentcow.enable_cow`` does."""
        operations.invoke(
            cls(
                table,
                schema,
                layout,
                pk_cols,
                allow_deferred_fks,
                tenant_column,
                read_only_for_tenants,
            )
        )

    def reverse(self) -> DisableCowOp:
        return DisableCowOp(self.table, self.schema, reverse_of=self)


@Operations.implementation_for(EnableCowOp)
def _enable(operations: Operations, op: EnableCowOp) -> None:
    run_blocking(
        enable_cow(
            _executor(operations, op.name),
            op.table,
            None if op.pk_cols is None else list(op.pk_cols),
            op.schema,
            op.allow_deferred_fks,
            layout=op.layout,
            tenant_column=op.tenant_column,
            read_only_for_tenants=op.read_only_for_tenants,
        )
    )


def _irreversible(op: _CowOp) -> ValueError:
    return ValueError(
        f"{op.render('op.')} does not say how COW was enabled (layout, key, tenant column): "
        "write the downgrade's enable yourself"
    )


@Operations.register_operation("disable_cow")
@dataclasses.dataclass(eq=False)
class DisableCowOp(_CowOp):
    name = "disable_cow"
    table: str
    schema: str = "public"
    revert_deferred_fks: bool = True
    discard_changes: bool = False
    reverse_of: EnableCowOp | None = dataclasses.field(default=None, metadata=_NOT_RENDERED)

    @classmethod
    def disable_cow(
        cls,
        operations: Operations,
        table: str,
        *,
        schema: str = "public",
        revert_deferred_fks: bool = True,
        discard_changes: bool = False,
    ) -> None:
        """Give ``schema.table`` back its plain table, as ``agentcow.disable_cow`` does:
        refused while sessions hold changes for it, unless ``discard_changes``."""
        operations.invoke(cls(table, schema, revert_deferred_fks, discard_changes))

    def reverse(self) -> EnableCowOp:
        if self.reverse_of is None:
            raise _irreversible(self)
        return self.reverse_of


@Operations.implementation_for(DisableCowOp)
def _disable(operations: Operations, op: DisableCowOp) -> None:
    run_blocking(
        disable_cow(
            _executor(operations, op.name),
            op.table,
            op.schema,
            op.revert_deferred_fks,
            discard_changes=op.discard_changes,
        )
    )


@Operations.register_operation("enable_cow_schema")
@dataclasses.dataclass(eq=False)
class EnableCowSchemaOp(_CowOp):
    name = "enable_cow_schema"
    schema: str = "public"
    exclude: Sequence[str] = ()
    layout: Layout = "rename"
    allow_deferred_fks: bool = False
    tenant_columns: str | Mapping[str, str] | None = None
    read_only_for_tenants: Sequence[str] = ()

    @classmethod
    def enable_cow_schema(
        cls,
        operations: Operations,
        schema: str = "public",
        *,
        exclude: Sequence[str] = (),
        layout: Layout = "rename",
        allow_deferred_fks: bool = False,
        tenant_columns: str | Mapping[str, str] | None = None,
        read_only_for_tenants: Sequence[str] = (),
    ) -> list[str]:
        """Enable COW on every plain table of ``schema`` not yet enabled, as
        ``agentcow.enable_cow_schema`` does; returns those tables."""
        tables: list[str] = operations.invoke(
            cls(schema, exclude, layout, allow_deferred_fks, tenant_columns, read_only_for_tenants)
        )
        return tables

    def reverse(self) -> DisableCowSchemaOp:
        """Disables every COW table of the schema, not only those this enable enabled."""
        return DisableCowSchemaOp(self.schema, self.exclude, reverse_of=self)


@Operations.implementation_for(EnableCowSchemaOp)
def _enable_schema(operations: Operations, op: EnableCowSchemaOp) -> list[str]:
    return run_blocking(
        enable_cow_schema(
            _executor(operations, op.name),
            op.schema,
            set(op.exclude),
            op.allow_deferred_fks,
            layout=op.layout,
            tenant_columns=op.tenant_columns,
            read_only_for_tenants=op.read_only_for_tenants,
        )
    )


@Operations.register_operation("disable_cow_schema")
@dataclasses.dataclass(eq=False)
class DisableCowSchemaOp(_CowOp):
    name = "disable_cow_schema"
    schema: str = "public"
    exclude: Sequence[str] = ()
    revert_deferred_fks: bool = True
    discard_changes: bool = False
    reverse_of: EnableCowSchemaOp | None = dataclasses.field(default=None, metadata=_NOT_RENDERED)

    @classmethod
    def disable_cow_schema(
        cls,
        operations: Operations,
        schema: str = "public",
        *,
        exclude: Sequence[str] = (),
        revert_deferred_fks: bool = True,
        discard_changes: bool = False,
    ) -> list[str]:
        """Disable COW on every COW table of ``schema``, as ``agentcow.disable_cow_schema``
        does; returns those tables."""
        tables: list[str] = operations.invoke(
            cls(schema, exclude, revert_deferred_fks, discard_changes)
        )
        return tables

    def reverse(self) -> EnableCowSchemaOp:
        if self.reverse_of is None:
            raise _irreversible(self)
        return self.reverse_of


@Operations.implementation_for(DisableCowSchemaOp)
def _disable_schema(operations: Operations, op: DisableCowSchemaOp) -> list[str]:
    return run_blocking(
        disable_cow_schema(
            _executor(operations, op.name),
            op.schema,
            set(op.exclude),
            op.revert_deferred_fks,
            discard_changes=op.discard_changes,
        )
    )


@Operations.register_operation("refresh_cow")
@dataclasses.dataclass(eq=False)
class RefreshCowOp(_CowOp):
    name = "refresh_cow"
    schema: str = "public"
    tables: Sequence[str] | None = None

    @classmethod
    def refresh_cow(
        cls, operations: Operations, schema: str = "public", tables: Sequence[str] | None = None
    ) -> list[str]:
        """Overlay layout: rebuild the overlays of ``schema``'s tables (or ``tables``) that
        this migration altered, as ``agentcow.refresh_cow`` does; returns them. A column
        dropped or retyped needs ``alter_cow_table`` instead (its view reads the column)."""
        refreshed: list[str] = operations.invoke(cls(schema, tables))
        return refreshed


@Operations.implementation_for(RefreshCowOp)
def _refresh(operations: Operations, op: RefreshCowOp) -> list[str]:
    return run_blocking(refresh_cow(_executor(operations, op.name), op.schema, op.tables))


@asynccontextmanager
async def _altering(executor: Executor, table: str, schema: str) -> AsyncIterator[None]:
    """Around an ALTER TABLE of a COW table: in the overlay layout, ``cow_migration`` (the
    overlay goes, then is rebuilt keeping pending changes); in the rename layout, where the
    table is behind a view of its name, disable before and enable after with the settings
    it had (refused while sessions hold changes: they would be lost)."""
    await require_kit(executor)
    entries = await registered_tables(executor, schema, table)
    if not entries:
        raise UnsupportedTableError(
            f"{schema}.{table} is not COW-enabled: alter it without op.alter_cow_table"
        )
    entry = entries[0]
    if entry.overlay_schema is not None:
        async with cow_migration(executor, schema, [table]):
            yield
        return
    await disable_cow(executor, table, schema)
    yield
    await enable_cow(
        executor,
        table,
        list(entry.pk_columns),
        schema,
        allow_deferred_fks=bool(entry.deferrable_fks),
        tenant_column=entry.tenant_column,
        read_only_for_tenants=entry.tenant_read_only,
    )


@Operations.register_operation("alter_cow_table")
class AlterCowTableOp(OpContainer):
    """``with op.alter_cow_table(table):`` and the operations inside it (autogenerate's
    view of the block; at run time the block is the revision's own code)."""

    def __init__(
        self, table: str, schema: str = "public", ops: Sequence[MigrateOperation] = ()
    ) -> None:
        super().__init__(ops)
        self.table = table
        self.schema = schema

    @classmethod
    def alter_cow_table(
        cls, operations: Operations, table: str, *, schema: str = "public"
    ) -> AbstractContextManager[None]:
        """A block that alters the COW table ``schema.table`` with Alembic's operations
        (``add_column``, ``drop_column``, ``alter_column``, ...), its COW objects made again
        for its new shape after it, in the migration's transaction. Overlay layout: pending
        session changes are kept (refused when a column they hold is dropped or retyped);
        rename layout: refused while sessions hold changes for the table. A changed key is
        refused: disable, alter, enable."""
        block: AbstractContextManager[None] = operations.invoke(cls(table, schema))
        return block

    def reverse(self) -> AlterCowTableOp:
        return AlterCowTableOp(self.table, self.schema, [op.reverse() for op in reversed(self.ops)])


@Operations.implementation_for(AlterCowTableOp)
def _alter(operations: Operations, op: AlterCowTableOp) -> AbstractContextManager[None]:
    return blocking_context(
        _altering(_executor(operations, "alter_cow_table"), op.table, op.schema)
    )


def _prefix(autogen_context: AutogenContext) -> str:
    prefix: str = autogen_context.opts.get("alembic_module_prefix", "op.")
    return prefix


@renderers.dispatch_for(DeployCowOp)
@renderers.dispatch_for(EnableCowOp)
@renderers.dispatch_for(DisableCowOp)
@renderers.dispatch_for(EnableCowSchemaOp)
@renderers.dispatch_for(DisableCowSchemaOp)
@renderers.dispatch_for(RefreshCowOp)
@renderers.dispatch_for(UpgradeCowTablesOp)
def _render(autogen_context: AutogenContext, op: _CowOp) -> str:
    return op.render(_prefix(autogen_context))


@renderers.dispatch_for(AlterCowTableOp)
def _render_alter(autogen_context: AutogenContext, op: AlterCowTableOp) -> list[str]:
    schema = "" if op.schema == "public" else f", schema={op.schema!r}"
    lines = [f"with {_prefix(autogen_context)}alter_cow_table({op.table!r}{schema}):"]
    for inner in op.ops:
        lines += render_op(autogen_context, inner)
    if not op.ops:
        lines.append("pass")
    return [*lines, ""]
