"""The shape of a table as the templates need it, read from the catalog by :mod:`catalog`."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentcow.identifiers import derived_name

BASE_SUFFIX = "_base"
CHANGES_SUFFIX = "_changes"
ROW_TYPE_SUFFIX = "_cow_row"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: str  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    generated: bool
    sequence: str | None = None  # an identity column's sequence
    virtual: bool = False  # a virtual generated column (PostgreSQL 18), computed when read

    @property
    def writable(self) -> bool:
        """Generated columns are computed by PostgreSQL and never written."""
        return not self.generated


@dataclass(frozen=True)
class UniqueKey:
    name: str
    columns: tuple[str, ...]
    nulls_not_distinct: bool = False
    deferrable: bool = False


@dataclass(frozen=True)
class Check:
    """A CHECK constraint PostgreSQL enforces; ``expression`` names every object outside
    pg_catalog with its schema (see catalog_checks.sql)."""

    name: str
    expression: str


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key seen from one side: ``child`` columns reference ``parent`` columns."""

    name: str
    child_schema: str
    child_table: str
    child_columns: tuple[str, ...]
    parent_schema: str
    parent_table: str
    parent_columns: tuple[str, ...]
    on_update: str  # pg_constraint action code: a r c n d
    on_delete: str
    match_full: bool
    deferrable: bool
    initially_deferred: bool
    delete_set_columns: tuple[str, ...] = ()
    other_is_cow: bool = False
    #: the primary key of the other table, when it is COW-enabled
    other_pk_columns: tuple[str, ...] = ()
    #: the overlay schema of the other table, when it is COW-enabled in the overlay layout
    other_overlay_schema: str | None = None

    def _stored_name(self, table: str) -> str:
        """The other table's rows live in its base: renamed in the rename layout only."""
        if self.other_is_cow and self.other_overlay_schema is None:
            return derived_name(table, BASE_SUFFIX)
        return table

    @property
    def parent_relation(self) -> str:
        """The table that stores the parent rows (for keys seen from the child side)."""
        return self._stored_name(self.parent_table)

    @property
    def parent_base(self) -> tuple[str, str]:
        return (self.parent_schema, self.parent_relation)

    @property
    def parent_view(self) -> tuple[str, str]:
        """What a session reads as the parent: its merged view, or the plain table."""
        return (self.other_overlay_schema or self.parent_schema, self.parent_table)

    @property
    def child_view(self) -> tuple[str, str]:
        """What a session writes as the child (keys seen from the parent side)."""
        return (self.other_overlay_schema or self.child_schema, self.child_table)

    @property
    def references_cow_key(self) -> bool:
        """The parent is COW-enabled and the key references its primary key: the parent's
        presence in a session is then two probes by key (its change table, its base)."""
        return self.other_is_cow and set(self.parent_columns) == set(self.other_pk_columns)

    @property
    def parent_changes(self) -> tuple[str, str]:
        """The parent's change table (when the parent is COW-enabled)."""
        return (
            self.other_overlay_schema or self.parent_schema,
            derived_name(self.parent_table, CHANGES_SUFFIX),
        )

    @property
    def child_changes(self) -> tuple[str, str]:
        """The child's change table (keys seen from the parent side, the child COW-enabled)."""
        return (
            self.other_overlay_schema or self.child_schema,
            derived_name(self.child_table, CHANGES_SUFFIX),
        )

    @property
    def cascades(self) -> bool:
        """Removing or changing a referenced value writes the children (CASCADE, SET NULL,
        SET DEFAULT) rather than failing."""
        return self.on_delete in ("c", "n", "d") or self.on_update in ("c", "n", "d")

    @property
    def child_base(self) -> tuple[str, str]:
        """The table that stores the child rows: its base table when the child is COW-enabled
        (meaningful for keys seen from the parent side, where the other table is the child)."""
        return (self.child_schema, self._stored_name(self.child_table))

    @property
    def deferrability(self) -> str:
        if not self.deferrable:
            return "NOT DEFERRABLE"
        return "DEFERRABLE INITIALLY " + ("DEFERRED" if self.initially_deferred else "IMMEDIATE")


@dataclass(frozen=True)
class Grant:
    grantee: str  # a role name, or PUBLIC
    privilege: str
    grantable: bool
    column: str | None = None


@dataclass(frozen=True)
class Relation:
    oid: int
    kind: str
    is_partition: bool
    row_security: bool
    owner: str
    inherits: bool
    server_version: int


@dataclass(frozen=True)
class TableDescription:
    """A table as the templates need it; ``name`` is the logical (view) name.

    ``overlay_schema``: None in the rename layout (the table becomes ``<name>_base`` and the
    view takes its place); in the overlay layout, the schema beside ``schema`` that holds the
    view, the change table and the table's functions, the table itself left as it is."""

    schema: str
    name: str
    relation: Relation
    columns: tuple[Column, ...]
    primary_key: UniqueKey | None
    unique_keys: tuple[UniqueKey, ...]
    checks: tuple[Check, ...]
    exclusions: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    referenced_by: tuple[ForeignKey, ...]
    lookup_columns: tuple[str, ...] = field(default=())
    """Append-only tables: columns leading a btree index, so that a write without a session,
    which finds its stored row by value, probes an index instead of scanning the table."""
    overlay_schema: str | None = None

    @property
    def kit_schema(self) -> str:
        """Where the view, the change table and the table's functions live."""
        return self.overlay_schema or self.schema

    @property
    def base_name(self) -> str:
        return self.name if self.overlay_schema else derived_name(self.name, BASE_SUFFIX)

    @property
    def base(self) -> tuple[str, str]:
        return (self.schema, self.base_name)

    @property
    def changes(self) -> tuple[str, str]:
        return (self.kit_schema, self.changes_name)

    @property
    def row_type(self) -> tuple[str, str]:
        """The type of a change row's ``_cow_old`` (the row before the write): the base's
        row type in the rename layout; in the overlay layout a type of the overlay's own,
        with the columns the overlay was made with, so that no ALTER TABLE on the table
        (ADD COLUMN ... DEFAULT, a column's new type) is refused for it."""
        if self.overlay_schema:
            return (self.overlay_schema, derived_name(self.name, ROW_TYPE_SUFFIX))
        return self.base

    @property
    def view(self) -> tuple[str, str]:
        return (self.kit_schema, self.name)

    def function(self, name: str) -> tuple[str, str]:
        """One of the table's functions (:class:`~agentcow.naming.ObjectNames`)."""
        return (self.kit_schema, name)

    @property
    def changes_name(self) -> str:
        return derived_name(self.name, CHANGES_SUFFIX)

    @property
    def pk_columns(self) -> tuple[str, ...]:
        return self.primary_key.columns if self.primary_key else ()

    @property
    def append_only(self) -> bool:
        """No key tells its rows apart (no primary key, no NOT NULL unique key): a session
        may only add rows, which commit appends to the base."""
        return self.primary_key is None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def writable_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.writable)

    @property
    def generated_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.generated)

    @property
    def identity_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.identity)

    @property
    def always_identity_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.identity == "a")

    @property
    def parents_checked_per_row(self) -> tuple[ForeignKey, ...]:
        """Deferrable keys to parents: constraint triggers, so SET CONSTRAINTS applies."""
        return tuple(fk for fk in self.foreign_keys if fk.deferrable)

    @property
    def parents_checked_per_statement(self) -> tuple[ForeignKey, ...]:
        """Other keys to parents: checked when the statement ends, as PostgreSQL does."""
        return tuple(fk for fk in self.foreign_keys if not fk.deferrable)

    @property
    def children_checked_per_row(self) -> tuple[ForeignKey, ...]:
        """Deferrable NO ACTION keys of children: constraint triggers. None for an append-only
        table: a session cannot remove or change the values its children reference."""
        if self.append_only:
            return ()
        return tuple(
            fk for fk in self.referenced_by if fk.deferrable and "a" in (fk.on_delete, fk.on_update)
        )

    @property
    def children_checked_per_statement(self) -> tuple[ForeignKey, ...]:
        """Keys of children with RESTRICT, or NO ACTION and not deferrable: checked when the
        statement ends (so a statement may remove a parent and its children together).
        None for an append-only table, as above."""
        if self.append_only:
            return ()
        return tuple(
            fk
            for fk in self.referenced_by
            if "r" in (fk.on_delete, fk.on_update)
            or (not fk.deferrable and "a" in (fk.on_delete, fk.on_update))
        )

    @property
    def updatable_columns(self) -> tuple[str, ...]:
        """Columns an UPDATE of the base may set: not generated, not identity ALWAYS."""
        return tuple(c.name for c in self.columns if c.writable and c.identity != "a")


@dataclass(frozen=True)
class RegisteredTable:
    """A COW table as the registry recorded it when it was enabled."""

    schema: str
    name: str
    base_name: str
    changes_name: str
    pk_columns: tuple[str, ...]
    deferrable_fks: tuple[str, ...]
    objects_version: str
    #: None in the rename layout
    overlay_schema: str | None = None

    @property
    def changes(self) -> tuple[str, str]:
        return (self.overlay_schema or self.schema, self.changes_name)
