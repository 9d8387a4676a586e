"""Upserts (``INSERT ... ON CONFLICT``) and ``MERGE`` sent by an agent through a session.

PostgreSQL refuses ``ON CONFLICT`` with a target on a view before any trigger runs (42P10: the
view has no unique index), and accepts ``ON CONFLICT DO NOTHING`` without one but never skips
a row. So the agent-facing entries rewrite such a statement, before sending it, into one
statement through the view that does what the table would:

* the proposed rows (the agent's ``VALUES`` or query, with their column defaults) are
  materialized in their order; defaults that draw from a sequence are drawn in the insert
  pipeline, one row at a time, unless a decision reads them (a conflict target,
  ``excluded.<column>``), so a statement that fails at its second row has drawn what the
  table would have;
* each row is looked up through the view by the conflict target (a probe by key: only what
  the session sees is read, its own rows and the base rows it has not changed, within its
  tenant), and the agent's ``DO UPDATE`` assignments and ``WHERE`` are evaluated there,
  against the row found (named as the agent named the table) and ``excluded``;
* every row gets its fate as PostgreSQL's executor gives it, row after row: inserted,
  skipped, updated, or ``21000`` when two proposed rows would write one row. A proposed row
  that breaks NOT NULL or a CHECK constraint is inserted whatever it conflicts with, so the
  view's trigger raises the table's error for it: the table checks them before it looks for
  conflicts;
* the rows to update go through the view's ``UPDATE``, then the rows to insert through its
  ``INSERT``, in row order (the insert pipeline raises ``21000`` at its row), so the triggers
  check and record them as any statement of the session, and foreign keys are checked when
  the statement ends.

Why this shape. Everything the agent wrote (values, assignments, conditions, ``RETURNING``,
``$1`` / ``%s`` / ``:name`` parameters, in their order) runs in the rewritten statement, as
the agent's role; the write triggers (SECURITY DEFINER) get only the rows' values, never an
expression of the agent's. One statement: a failure leaves nothing, and prepared statements
and parameters work as before. No base or change table is named: isolation and tenants are
the view's. The alternative that follows PostgreSQL's row-by-row interleaving of updates and
inserts exactly, a function that runs an ``UPDATE`` per row, costs a planned statement per
row and runs the view's statement-level foreign-key checks per row instead of at the end of
the agent's statement; ``MERGE`` into the view exists only from PostgreSQL 17 and has a
command tag of its own. Measured: ``python -m benchmarks.upserts``.

What differs from the table (docs-upserts.md): a ``DO UPDATE`` becomes a ``SELECT``
(:class:`Rewrite`: ``status`` gives the agent's command tag, and without ``RETURNING`` it
returns one row, the count); when several rows of one statement fail for different reasons,
the error may be another row's than the table's (updates are applied before inserts), and
then a sequence may have drawn another number of values; a ``DO UPDATE`` that changes the
conflict key is judged against the keys the statement began with; assignments are evaluated
for every row found, also those that end up skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from agentcow.errors import UnsupportedUpsertError
from agentcow.executor import Executor
from agentcow.identifiers import quote_ident
from agentcow.templates import render

__all__ = [
    "Rewrite",
    "UnsupportedUpsertError",
    "UpsertColumn",
    "UpsertKey",
    "UpsertTable",
    "describe_upsert_table",
    "rewrite_for",
    "rewrite_upsert",
    "statement_target",
]


class _ExplicitValue(Exception):
    """A value given to a column that takes none (generated, GENERATED ALWAYS identity)."""


@dataclass(frozen=True)
class UpsertColumn:
    """A column of the view: its type, the view's default (deparsed qualified), and the
    table's NOT NULL, identity ('' | 'a' | 'd') and generated flags."""

    name: str
    type: str
    default: str | None
    not_null: bool
    identity: str
    generated: bool


@dataclass(frozen=True)
class UpsertKey:
    """A unique index of the table. ``plain``: on columns only, not partial (the kind an
    upsert through the view can use as its arbiter)."""

    index: str
    constraint: str | None
    columns: tuple[str, ...]
    nulls_not_distinct: bool
    plain: bool


@dataclass(frozen=True)
class UpsertTable:
    """What the rewrite needs of a COW table (``catalog_upsert_table.sql``): its view, the
    view's columns in order, the key the view tells rows apart by (``pk``; empty for an
    append-only table), the unique indexes and the CHECK constraints (name, expression)."""

    view: tuple[str, str]
    columns: tuple[UpsertColumn, ...]
    pk: tuple[str, ...]
    keys: tuple[UpsertKey, ...]
    checks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rewrite:
    """A statement to send instead of the agent's, with the agent's parameters.

    ``counts_only``: the statement returns one row holding the number of rows written where
    the agent's returned none (an ``INSERT ... ON CONFLICT DO UPDATE`` without ``RETURNING``,
    rewritten as a ``SELECT``): report that number as the row count and no rows."""

    sql: str
    counts_only: bool = False
    selects: bool = False
    """The statement is a ``SELECT`` (``DO UPDATE``): its command tag says ``SELECT n``
    where the agent's says ``INSERT 0 n``."""

    def status(self, tag: str, rows: Sequence[Sequence[Any]]) -> str:
        """The command tag the agent's statement would have given, from the rewrite's tag
        and rows."""
        if self.counts_only:
            return f"INSERT 0 {rows[0][0]}"
        if self.selects:
            return f"INSERT 0 {len(rows)}"
        return tag


def _sql(node: exp.Expression) -> str:
    """PostgreSQL as sqlglot prints it, with SQLAlchemy's ``:name`` parameters kept as
    written (sqlglot reads them as named placeholders and would print psycopg's)."""

    def keep(part: exp.Expression) -> exp.Expression:
        if isinstance(part, exp.Placeholder) and isinstance(part.this, str):
            return exp.var(f":{part.this}")
        return part

    return str(node.transform(keep).sql(dialect="postgres"))


def _parse(sql: str) -> exp.Expression | None:
    """The one statement ``sql`` holds, or None (several, none, or not parseable: left to
    PostgreSQL, and to the guard)."""
    try:
        statements = sqlglot.parse(sql, read="postgres")
    except SqlglotError:
        return None
    if len(statements) != 1 or not isinstance(statements[0], exp.Expression):
        return None
    return statements[0]


def _target(statement: exp.Expression) -> exp.Table | None:
    """The table an upsert or MERGE writes."""
    if isinstance(statement, exp.Insert) and statement.args.get("conflict") is not None:
        this = statement.this
        table = this.this if isinstance(this, exp.Schema) else this
        return table if isinstance(table, exp.Table) else None
    if isinstance(statement, exp.Merge) and isinstance(statement.this, exp.Table):
        return statement.this
    return None


def _name_text(identifier: exp.Identifier | None) -> str | None:
    if identifier is None:
        return None
    return identifier.this if identifier.quoted else str(identifier.this).lower()


def _relation_name(table: exp.Table) -> str:
    """The table's name as PostgreSQL reads it (``to_regclass`` text): quoted parts kept,
    others folded to lower case."""
    parts = [_name_text(table.args.get("db")), _name_text(table.args.get("this"))]
    return ".".join(quote_ident(part) for part in parts if part is not None)


def statement_target(sql: str) -> tuple[str, str] | None:
    """For an ``INSERT ... ON CONFLICT`` or a ``MERGE``: its kind (``"upsert"`` or
    ``"merge"``) and the name of the table it writes, as ``to_regclass`` reads it; else
    None (nothing to rewrite). Text that holds neither word is not parsed at all."""
    lowered = sql.lower()
    if "conflict" not in lowered and "merge" not in lowered:
        return None
    statement = _parse(sql)
    if statement is None:
        return None
    table = _target(statement)
    if table is None:
        return None
    kind = "merge" if isinstance(statement, exp.Merge) else "upsert"
    return kind, _relation_name(table)


# ---------------------------------------------------------------------------------------
# The rewrite
# ---------------------------------------------------------------------------------------


def rewrite_upsert(sql: str, tables: Mapping[str, UpsertTable]) -> Rewrite | None:
    """``sql`` rewritten to run through a COW view as on the table, or None when it is no
    ``INSERT ... ON CONFLICT`` into one of ``tables`` (keyed by :func:`statement_target`'s
    name), or when PostgreSQL itself refuses it as it would refuse it on the table (an
    arbiter that matches no unique index, ``DO UPDATE`` without a target). Pure: no
    database access."""
    statement = _parse(sql)
    if not isinstance(statement, exp.Insert):
        return None
    target = _target(statement)
    if target is None:
        return None
    table = tables.get(_relation_name(target))
    if table is None:
        return None
    return _Upsert(statement, target, table).rewrite()


class _Upsert:
    """One INSERT ... ON CONFLICT, rewritten for one COW table."""

    def __init__(self, statement: exp.Insert, target: exp.Table, table: UpsertTable) -> None:
        self.statement = statement
        self.table = table
        self.conflict: exp.OnConflict = statement.args["conflict"]
        self.update = "UPDATE" in str(self.conflict.args.get("action") or "").upper()
        alias = target.args.get("alias")
        alias_name = alias.this if isinstance(alias, exp.TableAlias) else None
        self.alias = _sql(alias_name) if alias_name is not None else _sql(target.this)
        self.view = ".".join(quote_ident(part) for part in table.view)
        self.columns = {c.name: c for c in table.columns}
        # proposed: the columns of the proposed row; drawn: GENERATED ALWAYS identity
        # columns, drawn in the insert pipeline (the write trigger accepts only the value
        # drawn last, for its row)
        self.proposed = [c for c in table.columns if not c.generated and c.identity != "a"]
        # psycopg's %s / %(name)s parameters: a % of the kit's own text must be written %%
        self.percent = any(not isinstance(p.this, str) for p in statement.find_all(exp.Placeholder))
        self.drawn = [c for c in table.columns if c.identity == "a"]
        self.late: list[str] = []

    # -- arbiters ---------------------------------------------------------------------

    def arbiters(self) -> list[tuple[str, ...]] | None:
        """The column sets of the arbiter indexes (one per distinct set), or None when
        PostgreSQL would refuse the target as it stands (left to it: same error)."""
        constraint = self.conflict.args.get("constraint")
        keys = list(self.table.keys)
        if constraint is not None:
            name = _name_text(constraint if isinstance(constraint, exp.Identifier) else None)
            chosen = [k for k in keys if k.constraint is not None and k.constraint == name]
            if not chosen:
                return None
        elif self.conflict.args.get("conflict_keys"):
            columns = {self._target_column(key) for key in self.conflict.args["conflict_keys"]}
            chosen = [k for k in keys if set(k.columns) == columns]
            if not chosen:
                return None
        else:
            if self.update:
                return None  # 42601: DO UPDATE needs a target
            # every unique key but those of a generated or GENERATED ALWAYS identity
            # column, whose values the table makes itself (fresh, so they do not conflict)
            chosen = [
                k
                for k in keys
                if not any(
                    c in self.columns
                    and (self.columns[c].generated or self.columns[c].identity == "a")
                    for c in k.columns
                )
            ]
        unusable = [k.index for k in chosen if not k.plain]
        # a target by columns that a plain unique index matches uses that one, as
        # PostgreSQL's inference does; the others would all be arbiters
        by_columns = constraint is None and bool(self.conflict.args.get("conflict_keys"))
        if unusable and (not by_columns or not any(k.plain for k in chosen)):
            raise UnsupportedUpsertError(
                f"ON CONFLICT through the session of {self.view} would use unique index "
                f"{', '.join(unusable)} on expressions or with a predicate, which the kit "
                "cannot use as an arbiter. Hint: name a unique key on plain columns as the "
                "conflict target"
            )
        sets: list[tuple[str, ...]] = []
        for key in chosen:
            if key.plain and key.columns not in sets:
                sets.append(key.columns)
        missing = [c for s in sets for c in s if c not in self.columns]
        if missing:
            raise UnsupportedUpsertError(
                f"the conflict target of {self.view} has columns the view does not show yet "
                f"({', '.join(missing)}): its owner must call refresh_cow"
            )
        if any(
            self.columns[c].identity == "a" or self.columns[c].generated for s in sets for c in s
        ):
            raise UnsupportedUpsertError(
                f"ON CONFLICT on a generated or GENERATED ALWAYS identity column of {self.view} "
                "is not supported in a session. Hint: use another unique key as the target"
            )
        return sets

    def _target_column(self, key: exp.Expression) -> str:
        node = key.this if isinstance(key, exp.Ordered) else key
        if isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Column) and not node.table:
            name = _name_text(node.this if isinstance(node.this, exp.Identifier) else None)
            if name is not None:
                return name
        raise UnsupportedUpsertError(
            f"the ON CONFLICT target {_sql(key)} of {self.view} is not a column: unique "
            "indexes on expressions cannot be arbiters in a session. Hint: target a unique "
            "key on plain columns"
        )

    # -- the proposed rows ----------------------------------------------------------------

    def listed(self, width: int | None = None) -> list[str]:
        """The columns the rows give values to: those listed, else the first ``width``
        columns of the table (all when not known), as PostgreSQL assigns them."""
        this = self.statement.this
        if isinstance(this, exp.Schema) and this.expressions:
            names = [
                _name_text(i) if isinstance(i, exp.Identifier) else None for i in this.expressions
            ]
            if any(n is None or n not in self.columns for n in names):
                raise UnsupportedUpsertError(
                    f"the column list of the INSERT into {self.view} names columns the view "
                    "does not have, or parts of columns"
                )
            return [n for n in names if n is not None]
        return [c.name for c in self.table.columns][:width]

    def _refuse_value(self, name: str) -> None:
        """A value given to a generated or GENERATED ALWAYS identity column: PostgreSQL
        refuses the statement whatever conflicts (428C9); see :meth:`rewrite`."""
        raise _ExplicitValue(name)

    def _catalog(self, text: str) -> str:
        """Text deparsed by PostgreSQL (a type, a default, a CHECK), as the driver must get
        it beside the agent's parameters."""
        return text.replace("%", "%%") if self.percent else text

    def _cast(self, expression: str, name: str) -> str:
        return f"CAST(({expression}) AS {self._catalog(self.columns[name].type)})"

    def _default(self, name: str) -> str:
        column = self.columns[name]
        if column.default is not None:
            return self._catalog(column.default)
        return f"CAST(NULL AS {self._catalog(column.type)})"

    def choose_late(self, arbiters: list[tuple[str, ...]]) -> None:
        """Columns whose defaults are drawn in the insert pipeline, one row at a time, as
        the table draws them: defaults that call a function (a sequence's ``nextval``) of
        columns no decision reads (not a conflict target, not ``excluded.<column>``). A
        statement that fails at its second row then has drawn two values, as on the table."""
        read = {c for key in arbiters for c in key}
        for column in self.statement.find_all(exp.Column):
            if column.table and column.table.lower() == "excluded":
                read.add(str(column.name))
        self.late = [
            c.name
            for c in self.proposed
            if c.default is not None and "(" in c.default and c.name not in read
        ]

    def _flag(self, name: str) -> str:
        """The column of a row that says a late column took its default."""
        return f"_cow_d{self.late.index(name)}"

    def source(self) -> tuple[str, list[str]]:
        """The rows as given, each with its position ``_cow_ord``, and the proposed
        columns they give values to (the others take their defaults); a late column
        (:meth:`choose_late`) given ``DEFAULT`` is null with its flag set."""
        source = self.statement.expression
        listed = self.listed(_width(source))
        proposed = {c.name for c in self.proposed}
        given = [n for n in listed if n in proposed]
        if self.statement.args.get("default") or source is None:
            return "SELECT 1::bigint AS _cow_ord", []
        if isinstance(source, exp.Values):
            rows = []
            for number, row in enumerate(source.expressions, start=1):
                values = row.expressions if isinstance(row, exp.Tuple) else [row]
                if len(values) != len(listed):
                    raise UnsupportedUpsertError(
                        f"a VALUES row of the INSERT into {self.view} has {len(values)} "
                        f"values for {len(listed)} columns"
                    )
                items = [f"{number}::bigint"]
                flags = []
                for name, value in zip(listed, values, strict=True):
                    default = _is_default(value)
                    if name not in proposed:
                        if not default:
                            self._refuse_value(name)
                        continue
                    if name in self.late:
                        items.append(
                            self._cast("NULL", name) if default else self._cast(_sql(value), name)
                        )
                        flags.append("true" if default else "false")
                    else:
                        items.append(
                            self._default(name) if default else self._cast(_sql(value), name)
                        )
                rows.append("(" + ", ".join(items + flags) + ")")
            names = ", ".join(
                ["_cow_ord", *(quote_ident(n) for n in given)]
                + [self._flag(n) for n in given if n in self.late]
            )
            return f"SELECT * FROM (VALUES {', '.join(rows)}) AS _cow_v({names})", given
        for name in listed:
            if name not in proposed:
                self._refuse_value(name)
        query = _sql(source)
        aliases = ", ".join(quote_ident(n) for n in listed)
        casts = ", ".join(self._cast(f"_cow_q.{quote_ident(n)}", n) for n in listed)
        falses = "".join(f", false AS {self._flag(n)}" for n in given if n in self.late)
        return (
            f"SELECT row_number() OVER () AS _cow_ord, {casts}{falses} "
            f"FROM ({query}) AS _cow_q({aliases})"
        ), given

    def rows_cte(self) -> str:
        source, given = self.source()
        items = ["_cow_n._cow_ord"]
        for column in self.proposed:
            name = quote_ident(column.name)
            if column.name in given:
                items.append(f"_cow_n.{name}")
            elif column.name in self.late:
                items.append(f"{self._cast('NULL', column.name)} AS {name}")
            else:
                items.append(f"{self._default(column.name)} AS {name}")
        for late in self.late:
            items.append(
                f"_cow_n.{self._flag(late)}" if late in given else f"true AS {self._flag(late)}"
            )
        return f"_cow_rows AS MATERIALIZED (SELECT {', '.join(items)} FROM ({source}) AS _cow_n)"

    # -- decisions ------------------------------------------------------------------------

    def breaks_constraints(self) -> str:
        """The proposed row breaks NOT NULL or a CHECK constraint the table checks before
        looking for conflicts (its insert then raises the table's error)."""
        names = {c.name for c in self.proposed} - set(self.late)
        tests = [
            f"excluded.{quote_ident(c.name)} IS NULL"
            + (f" AND NOT excluded.{self._flag(c.name)}" if c.name in self.late else "")
            for c in self.proposed
            if c.not_null
        ]
        for _, expression in self.table.checks:
            if _columns_of(expression) <= names:
                tests.append(f"({self._catalog(expression)}) IS FALSE")
        return "(" + " OR ".join(tests) + ")" if tests else "false"

    def match(self, left: str, right: str, columns: Sequence[str]) -> str:
        nnd = self._nulls_not_distinct(columns)
        op = " IS NOT DISTINCT FROM " if nnd else " = "
        return " AND ".join(f"{left}.{quote_ident(c)}{op}{right}.{quote_ident(c)}" for c in columns)

    def _nulls_not_distinct(self, columns: Sequence[str]) -> bool:
        return all(k.nulls_not_distinct for k in self.table.keys if k.columns == tuple(columns))

    def has_null(self, prefix: str, columns: Sequence[str]) -> str:
        """The key cannot conflict: one of its values is null (unless NULLS NOT DISTINCT)."""
        if self._nulls_not_distinct(columns):
            return "false"
        return "(" + " OR ".join(f"{prefix}.{quote_ident(c)} IS NULL" for c in columns) + ")"

    def decided_cte(self, arbiters: list[tuple[str, ...]]) -> str:
        items = ["excluded.*", f"{self.breaks_constraints()} AS _cow_bad"]
        if not self.update:
            found = " OR ".join(
                f"EXISTS (SELECT FROM {self.view} AS _cow_t "
                f"WHERE {self.match('_cow_t', 'excluded', key)})"
                for key in arbiters
            )
            items.append(f"({found}) AS _cow_found")
            return (
                f"_cow_decided AS MATERIALIZED (SELECT {', '.join(items)} "
                "FROM _cow_rows AS excluded)"
            )
        (key,) = arbiters
        # LIMIT 1 (one row at most: the key is unique) keeps the lookup a probe by key per
        # proposed row; pulled up into a join, it could become a scan of the whole view
        row = [
            f"{self.alias}.{quote_ident(c)} AS _cow_k{i}" for i, c in enumerate(self.key_columns)
        ]
        row += [f"{value} AS _cow_s{i}" for i, (_, value) in enumerate(self.assignments()) if value]
        where = self.conflict.args.get("where")
        passes = f"({_sql(where.this)}) IS TRUE" if isinstance(where, exp.Where) else "true"
        row.append(f"{passes} AS _cow_pass")
        items += [
            "_cow_e._cow_hit IS NOT NULL AS _cow_found",
            "coalesce(_cow_e._cow_pass, false) AS _cow_pass",
        ]
        items += [f"_cow_e._cow_k{i}" for i in range(len(self.key_columns))]
        items += [f"_cow_e._cow_s{i}" for i, (_, value) in enumerate(self.assignments()) if value]
        lookup = (
            f"SELECT true AS _cow_hit, {', '.join(row)} FROM {self.view} AS {self.alias} "
            f"WHERE {self.match(self.alias, 'excluded', key)} LIMIT 1"
        )
        return (
            f"_cow_decided AS MATERIALIZED (SELECT {', '.join(items)} FROM _cow_rows AS excluded "
            f"LEFT JOIN LATERAL ({lookup}) AS _cow_e ON true)"
        )

    @property
    def key_columns(self) -> tuple[str, ...]:
        """What tells the view's rows apart: the row found is updated by it."""
        if not self.table.pk:
            raise UnsupportedUpsertError(
                f"ON CONFLICT DO UPDATE through the session of {self.view}: the table has no "
                "key, so a session may only append rows to it (UPDATE is refused too)"
            )
        return self.table.pk

    def assignments(self) -> list[tuple[str, str | None]]:
        """(column, value) of ``DO UPDATE SET``, the value cast to the column's type; None
        for ``DEFAULT`` (assigned as such)."""
        result: list[tuple[str, str | None]] = []
        for assignment in self.conflict.expressions:
            if not isinstance(assignment, exp.EQ):
                raise UnsupportedUpsertError(f"unexpected DO UPDATE item {_sql(assignment)}")
            left, right = assignment.this, assignment.expression
            if isinstance(left, exp.Tuple | exp.Paren):
                names = left.expressions if isinstance(left, exp.Tuple) else [left.this]
                values = _row_values(right)
                if values is None or len(values) != len(names):
                    raise UnsupportedUpsertError(
                        f"DO UPDATE SET {_sql(assignment)} through the session of {self.view}: "
                        "assign each column its own value (a sub-SELECT for several columns "
                        "is not supported)"
                    )
            else:
                names, values = [left], [right]
            for name, value in zip(names, values, strict=True):
                column = self._assigned(name)
                result.append(
                    (column, None if _is_default(value) else self._cast(_sql(value), column))
                )
        return result

    def _assigned(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Column) and not node.table:
            name = _name_text(node.this if isinstance(node.this, exp.Identifier) else None)
            if name in self.columns:
                return name
        raise UnsupportedUpsertError(
            f"DO UPDATE SET {_sql(node)} through the session of {self.view}: assign whole "
            "columns of the table"
        )

    def plan_cte(self, arbiters: list[tuple[str, ...]]) -> str:
        """Each proposed row's fate: ``i`` insert, ``s`` skip, ``u`` update the row found,
        ``x`` the second write of one row (21000)."""
        if not self.update and len(arbiters) > 1:
            return self.greedy_plan_cte(arbiters)
        if not self.update:
            (key,) = arbiters
            numbers = (
                f"row_number() OVER (PARTITION BY d._cow_found, {_prefixed('d', key)} "
                "ORDER BY d._cow_ord) AS _cow_rn0"
            )
            action = (
                "CASE WHEN d._cow_bad THEN 'i' WHEN d._cow_found THEN 's' "
                f"WHEN {self.has_null('d', key)} OR d._cow_rn0 = 1 THEN 'i' ELSE 's' END"
            )
        else:
            (key,) = arbiters
            partition = (
                f"PARTITION BY d._cow_found, {', '.join('d.' + quote_ident(c) for c in key)}"
            )
            numbers = (
                f"row_number() OVER ({partition} ORDER BY d._cow_ord) AS _cow_rn0, "
                f"min(d._cow_ord) FILTER (WHERE d._cow_pass) OVER ({partition}) AS _cow_first"
            )
            action = (
                f"CASE WHEN d._cow_bad THEN 'i' WHEN {self.has_null('d', key)} THEN 'i' "
                "WHEN NOT d._cow_found THEN CASE WHEN d._cow_rn0 = 1 THEN 'i' ELSE 'x' END "
                "WHEN d._cow_first IS NULL OR d._cow_ord < d._cow_first THEN 's' "
                "WHEN d._cow_ord = d._cow_first THEN 'u' ELSE 'x' END"
            )
        return (
            f"_cow_plan AS MATERIALIZED (SELECT d.*, {action} AS _cow_action "
            f"FROM (SELECT d.*, {numbers} FROM _cow_decided AS d) AS d ORDER BY d._cow_ord)"
        )

    def greedy_plan_cte(self, arbiters: list[tuple[str, ...]]) -> str:
        """``DO NOTHING`` on several unique keys (no target): a row is inserted unless a
        row found, or a row inserted before it by the statement, holds one of its keys; a
        row skipped claims nothing. A walk over the rows in order, carrying the keys taken
        (compared as text: keys of types whose equal values print alike)."""
        keys = ", ".join(
            f"CASE WHEN {self.has_null('d', key)} THEN NULL "
            f"ELSE '{i}:' || ROW({_prefixed('d', key)})::text END"
            for i, key in enumerate(arbiters)
        )
        take = "d._cow_bad OR (NOT d._cow_found AND NOT (d._cow_keys && w._cow_keys))"
        return (
            "_cow_plan AS MATERIALIZED (WITH RECURSIVE "
            f"_cow_keyed AS (SELECT d.*, ARRAY[{keys}] AS _cow_keys FROM _cow_decided AS d), "
            "_cow_walk(_cow_ord, _cow_take, _cow_keys) AS ("
            "SELECT 0::bigint, false, ARRAY[]::text[] UNION ALL "
            "SELECT d._cow_ord, t._cow_take, CASE WHEN t._cow_take "
            "THEN w._cow_keys || d._cow_keys ELSE w._cow_keys END "
            "FROM _cow_walk AS w JOIN _cow_keyed AS d ON d._cow_ord = w._cow_ord + 1 "
            f"CROSS JOIN LATERAL (SELECT {take} AS _cow_take) AS t) "
            "SELECT d.*, CASE WHEN w._cow_take THEN 'i' ELSE 's' END AS _cow_action "
            "FROM _cow_decided AS d JOIN _cow_walk AS w ON w._cow_ord = d._cow_ord "
            "ORDER BY d._cow_ord)"
        )

    # -- writes ---------------------------------------------------------------------------

    def insert(self, target: str, returning: str) -> str:
        """The rows to insert, through the view, in row order; GENERATED ALWAYS identity
        values drawn for every proposed row (as the table draws them) just before its own
        insert, and 21000 raised at its row."""
        names = [c.name for c in self.proposed] + [c.name for c in self.drawn]
        columns = ", ".join(quote_ident(n) for n in names)
        values = ", ".join(
            f"_cow_p.{quote_ident(n)}"
            if n not in self.late
            else f"_cow_p._cow_l{self.late.index(n)}"
            for n in names
        )
        draws = "".join(
            f", CASE WHEN _cow_p.{self._flag(n)} THEN {self._default(n)} "
            f"ELSE _cow_p.{quote_ident(n)} END AS _cow_l{i}"
            for i, n in enumerate(self.late)
        )
        draws += "".join(f", {self._default(c.name)} AS {quote_ident(c.name)}" for c in self.drawn)
        twice = (
            ", CASE WHEN _cow_p._cow_action = 'x' THEN agentcow.upsert_row_twice() END "
            "AS _cow_twice"
            if self.update
            else ""
        )
        pipeline = (
            f"SELECT _cow_p.*{draws}{twice} FROM _cow_plan AS _cow_p "
            "ORDER BY _cow_p._cow_ord OFFSET 0"
        )
        return (
            f"INSERT INTO {self.view} AS {target} ({columns}) SELECT {values} "
            f"FROM ({pipeline}) AS _cow_p WHERE _cow_p._cow_action = 'i'{returning}"
        )

    def update_cte(self) -> str:
        sets = [
            f"{quote_ident(column)} = " + ("DEFAULT" if value is None else f"_cow_p._cow_s{i}")
            for i, (column, value) in enumerate(self.assignments())
        ]
        # the rows to update, also as arrays of key values: the view is then read by its
        # key's index, not scanned whole to be joined (as the planner may do with a CTE)
        key = " AND ".join(
            f"_cow_t.{quote_ident(c)} = _cow_p._cow_k{i} AND _cow_t.{quote_ident(c)} = ANY "
            f"(ARRAY(SELECT _cow_u._cow_k{i} FROM _cow_plan AS _cow_u "
            "WHERE _cow_u._cow_action = 'u'))"
            for i, c in enumerate(self.key_columns)
        )
        written = ", ".join(f"_cow_t.{quote_ident(c.name)}" for c in self.table.columns)
        return (
            f"_cow_updated AS (UPDATE {self.view} AS _cow_t SET {', '.join(sets)} "
            f"FROM _cow_plan AS _cow_p WHERE _cow_p._cow_action = 'u' AND {key} "
            f"RETURNING _cow_p._cow_ord, {written})"
        )

    def rewrite(self) -> Rewrite | None:
        arbiters = self.arbiters()
        if arbiters is None:
            return None
        if not arbiters:
            return None  # no unique index: nothing conflicts, the view's INSERT is the table's
        ctes = []
        with_ = self.statement.args.get("with_")
        recursive = ""
        if isinstance(with_, exp.With):
            ctes += [_sql(cte) for cte in with_.expressions]
            recursive = "RECURSIVE " if with_.args.get("recursive") else ""
        self.choose_late(arbiters)
        try:
            rows = self.rows_cte()
        except _ExplicitValue:
            # refused at its first row by the view's trigger, as the table refuses it
            plain = self.statement.copy()
            plain.set("conflict", None)
            return Rewrite(_sql(plain))
        ctes += [rows, self.decided_cte(arbiters), self.plan_cte(arbiters)]
        returning = self.statement.args.get("returning")
        items = returning.expressions if isinstance(returning, exp.Returning) else []
        if not self.update:
            tail = f" RETURNING {', '.join(_sql(i) for i in items)}" if items else ""
            return Rewrite(f"WITH {recursive}{', '.join(ctes)} {self.insert(self.alias, tail)}")
        names = [c.name for c in self.table.columns]
        written = ", ".join(f"_cow_i.{quote_ident(n)}" for n in names)
        ctes.append(self.update_cte())
        ctes.append(
            f"_cow_inserted AS ({self.insert('_cow_t', ' RETURNING ' + self._all('_cow_t'))})"
        )
        ctes.append(
            "_cow_written AS (SELECT * FROM _cow_updated UNION ALL "
            f"SELECT _cow_p._cow_ord, {written} FROM "
            "(SELECT _cow_i.*, row_number() OVER () AS _cow_n "
            "FROM _cow_inserted AS _cow_i) AS _cow_i "
            "JOIN (SELECT _cow_p._cow_ord, row_number() OVER (ORDER BY _cow_p._cow_ord) AS _cow_n "
            "FROM _cow_plan AS _cow_p WHERE _cow_p._cow_action = 'i') AS _cow_p USING (_cow_n))"
        )
        head = f"WITH {recursive}{', '.join(ctes)} "
        if not items:
            return Rewrite(
                head + "SELECT count(*) FROM _cow_written", counts_only=True, selects=True
            )
        row = ", ".join(
            f"_cow_w.{quote_ident('_cow_c' + str(i))} AS {quote_ident(n)}"
            for i, n in enumerate(names)
        )
        shown = ", ".join(_sql(_qualify_star(i, self.alias)) for i in items)
        aliases = ", ".join(["_cow_ord", *(quote_ident(f"_cow_c{i}") for i in range(len(names)))])
        return Rewrite(
            head + f"SELECT {shown} FROM _cow_written AS _cow_w({aliases}) "
            f"CROSS JOIN LATERAL (SELECT {row}) AS {self.alias} ORDER BY _cow_w._cow_ord",
            selects=True,
        )

    def _all(self, prefix: str) -> str:
        return ", ".join(f"{prefix}.{quote_ident(c.name)}" for c in self.table.columns)


def _prefixed(prefix: str, columns: Sequence[str]) -> str:
    return ", ".join(f"{prefix}.{quote_ident(c)}" for c in columns)


def _width(source: exp.Expression | None) -> int | None:
    """How many values each row of an INSERT's source has, when it says (VALUES, or a
    SELECT list without ``*``)."""
    if isinstance(source, exp.Values) and source.expressions:
        first = source.expressions[0]
        return len(first.expressions) if isinstance(first, exp.Tuple) else 1
    if isinstance(source, exp.Select) and not any(
        isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
        for e in source.expressions
    ):
        return len(source.expressions)
    return None


def _is_default(node: exp.Expression) -> bool:
    """The ``DEFAULT`` keyword (sqlglot reads it as a variable, or as a column in SET)."""
    if isinstance(node, exp.Var):
        return str(node.this).upper() == "DEFAULT"
    if isinstance(node, exp.Column) and not node.table:
        identifier = node.this
        return (
            isinstance(identifier, exp.Identifier)
            and not identifier.quoted
            and str(identifier.this).upper() == "DEFAULT"
        )
    return False


def _row_values(node: exp.Expression) -> list[exp.Expression] | None:
    """The values of ``(a, b) = (1, 2)`` or ``ROW(1, 2)``; None for a sub-SELECT."""
    if isinstance(node, exp.Tuple):
        return list(node.expressions)
    if isinstance(node, exp.Paren) and not isinstance(node.this, exp.Select):
        return [node.this]
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "ROW":
        return list(node.expressions)
    return None


def _qualify_star(item: exp.Expression, alias: str) -> exp.Expression:
    """``RETURNING *`` reads the written row only (the rewritten SELECT has other relations)."""
    if isinstance(item, exp.Star):
        return exp.Column(
            this=exp.Star(), table=sqlglot.parse_one(alias, into=exp.Identifier, read="postgres")
        )
    return item


def _columns_of(expression: str) -> set[str]:
    """The column names a (catalog-deparsed) CHECK expression reads; a name that is not
    a column leaves the check to the write trigger."""
    try:
        node = sqlglot.parse_one(expression, read="postgres")
    except SqlglotError:
        return {"\x00unparsed"}
    return {str(c.name) for c in node.find_all(exp.Column)}


# ---------------------------------------------------------------------------------------
# From the catalog
# ---------------------------------------------------------------------------------------


async def describe_upsert_table(executor: Executor, name: str) -> UpsertTable | None:
    """The COW table whose view ``name`` resolves to under the current search_path (call
    it in the session's transaction: the overlay layout's views are found by the session's
    search_path), or None when ``name`` is no COW view."""
    return (await _describe(executor, name))[1]


async def _describe(executor: Executor, name: str) -> tuple[int, UpsertTable | None]:
    """The server's version and :func:`describe_upsert_table`, in one round trip."""
    rows = await executor.execute(render("catalog_upsert_table.sql", name=name))
    version, schema, view, pk, columns, keys, checks = rows[0]
    if view is None:
        return int(version), None
    return int(version), UpsertTable(
        view=(str(schema), str(view)),
        columns=tuple(
            UpsertColumn(str(n), str(t), d, bool(nn), str(i or ""), bool(g))
            for n, t, d, nn, i, g in _json(columns)
        ),
        pk=tuple(pk or ()),
        keys=tuple(
            UpsertKey(str(i), c, tuple(cols), bool(nnd), bool(plain))
            for i, c, cols, nnd, plain in _json(keys)
        ),
        checks=tuple((str(n), str(e)) for n, e in _json(checks)),
    )


def _json(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(json.loads(value) if isinstance(value, str) else value)


async def rewrite_for(executor: Executor, sql: str) -> Rewrite | None:
    """What to send instead of the agent's ``sql`` on ``executor``'s connection, inside the
    session's transaction (after entering it): the rewrite of an ``INSERT ... ON CONFLICT``
    into a COW view, or None to send ``sql`` as it is (not an upsert, not into a COW view,
    or a ``MERGE`` the server runs through the view's triggers itself). A ``MERGE`` into a
    COW view on PostgreSQL before 17, which cannot write through a view's triggers, raises
    :class:`UnsupportedUpsertError`. For applications that run the agent's SQL on their own
    connections (report :attr:`Rewrite.status`); :class:`agentcow.CowSession` calls it for
    every statement. Costs nothing for other statements but parsing them; one catalog read
    for an upsert or MERGE."""
    found = statement_target(sql)
    if found is None:
        return None
    kind, name = found
    version, table = await _describe(executor, name)
    if table is None:
        return None
    if kind == "merge":
        if version < 170000:
            raise UnsupportedUpsertError(
                f"MERGE into {'.'.join(quote_ident(p) for p in table.view)} in a session needs "
                "PostgreSQL 17 or later (before 17, MERGE cannot write through a view). Hint: "
                "write it as INSERT ... ON CONFLICT, or as separate UPDATE, INSERT and DELETE "
                "statements in one operation"
            )
        return None
    return rewrite_upsert(sql, {name: table})
