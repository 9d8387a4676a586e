"""Policies: what a team decides once about every session it reviews.

A :class:`Policy` holds, per table, limits on the rows a review may insert, update and
delete, whether the table always needs a person, whether its rows may be deleted at all, and
row rules: SQL predicates over ``old`` (the stored row) and ``new`` (the row the commit would
write), such as ``new.amount >= -50``. Checks are queries that must return no rows in the
session's state ("no order without items"). :meth:`Policy.evaluate` judges a
:class:`~agentcow.review.ChangeSet` and returns a :class:`PolicyReport` whose decision is
``block`` (a rule, check, model or limit failed, or a forbidden delete), ``needs_review`` (a
table that needs a person changed) or ``approve``; :func:`require_approved` is the refusal a
commit path raises before it commits.

Rule and check texts are the team's, but are checked to be one SQL expression and one query
(parsed with sqlglot), so that none can leave its slot in the statement by accident. Rules
run with operators and functions of ``pg_catalog`` only (qualify your own); checks run with
the session's ``search_path``, as the agent's SQL does, in a read-only transaction that is
rolled back.
"""

from __future__ import annotations

import contextlib
import enum
import json
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlglot
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)
from sqlglot import exp

from agentcow.catalog import describe_current, registered_tables, require_kit
from agentcow.description import RegisteredTable, TableDescription
from agentcow.errors import (
    InvalidPolicyError,
    PersonRequiredError,
    PolicyError,
    PolicyViolationError,
    ReviewChangedError,
)
from agentcow.executor import Executor, TransactionAware
from agentcow.identifiers import Sql, uuid_array_literal, uuid_literal
from agentcow.review.diff import ChangeSet, DiffType, RowDiff
from agentcow.review.validation import InvalidRow, ModelRegistry, ValidationResult, validate_diff
from agentcow.review.values import parse_json
from agentcow.script import run_pinned
from agentcow.session import apply_cow_variables
from agentcow.templates import render

# ---------------------------------------------------------------------------------------
# Rule and check texts
# ---------------------------------------------------------------------------------------

#: Statement kinds no rule or check may hold anywhere (a data-modifying CTE, SELECT INTO).
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Into, exp.Lock)


def _parsed(text: str, what: str) -> exp.Expr:
    try:
        statements = sqlglot.parse(text, read="postgres")
    except sqlglot.errors.SqlglotError as error:
        raise ValueError(f"{what} {text!r} is not valid SQL: {error}") from None
    if len(statements) != 1 or statements[0] is None:
        raise ValueError(f"{what} {text!r} must be one statement (no ';')")
    tree = statements[0]
    if tree.find(*_WRITES) is not None:
        raise ValueError(f"{what} {text!r} must only read")
    return tree


def _expression(text: str) -> exp.Expr:
    """A row rule's text, parsed: one SQL expression and nothing around it."""
    select = _parsed(f"SELECT\n{text}\n", "the row rule")
    if (
        not isinstance(select, exp.Select)
        or len(select.expressions) != 1
        or isinstance(select.expressions[0], exp.Alias)
        or any(value for key, value in select.args.items() if key != "expressions")
    ):
        raise ValueError(f"the row rule {text!r} must be one SQL expression over old and new")
    expression: exp.Expr = select.expressions[0]
    return expression


def predicate_sql(text: str) -> Sql:
    """A row rule's text, for its slot in sql/policy_rules.sql."""
    _expression(text)
    return Sql(text)


def query_sql(text: str) -> Sql:
    """A check's text (a final ';' dropped), for its slot in sql/policy_check.sql: one
    query that only reads."""
    text = text.strip().removesuffix(";")
    if not isinstance(_parsed(text, "the check"), exp.Query):
        raise ValueError(f"the check {text!r} must be one query (SELECT ...)")
    return Sql(text)


def _records(tree: exp.Expr) -> set[str]:
    """Which of old and new an expression names (``new.amount``, or ``new`` itself)."""
    names: set[str] = set()
    for column in tree.find_all(exp.Column):
        part = column.args.get("table") or column.this
        if isinstance(part, exp.Identifier):
            names.add(part.this if part.quoted else part.this.lower())
    return names & {"old", "new"}


def _default_kinds(text: str) -> tuple[DiffType, ...]:
    """The kinds of change a rule applies to unless it says: those where every record it
    names exists (new: inserts and updates; old: updates and deletes; both: updates)."""
    named = _records(_expression(text))
    return tuple(
        kind
        for kind in DiffType
        if not ("new" in named and kind is DiffType.DELETE)
        and not ("old" in named and kind is DiffType.INSERT)
    )


# ---------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------


class RowRule(BaseModel):
    """A predicate every row of the review that it applies to must make true (false and
    NULL fail). Written as a string, or as ``{predicate, name, on}``; ``on`` (the kinds of
    change, ``INSERT``/``UPDATE``/``DELETE``) defaults to those where each record the
    predicate names exists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    predicate: str
    name: str
    on: tuple[DiffType, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"predicate": data}
        if isinstance(data, Mapping) and isinstance(data.get("predicate"), str):
            predicate = data["predicate"]
            return {"name": predicate, "on": _default_kinds(predicate), **data}
        return data


class TablePolicy(BaseModel):
    """What a review may do to one table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_inserted: NonNegativeInt | None = None
    max_updated: NonNegativeInt | None = None
    max_deleted: NonNegativeInt | None = None
    forbid_deletes: bool = False
    needs_person: bool = False
    rules: tuple[RowRule, ...] = ()

    def limit(self, kind: DiffType) -> int | None:
        return {
            DiffType.INSERT: self.max_inserted,
            DiffType.UPDATE: self.max_updated,
            DiffType.DELETE: self.max_deleted,
        }[kind]


class Check(BaseModel):
    """A query that must return no rows in the session's state; ``show``: how many of the
    rows it returns the report keeps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    query: str
    show: PositiveInt = 20

    @model_validator(mode="after")
    def _one_query(self) -> Check:
        query_sql(self.query)
        return self


_NOTHING = TablePolicy()


class Policy(BaseModel):
    """A team's policy for the reviews of one schema: ``tables`` by name, ``checks``, and
    whether rows are checked against their tables' SafeModels (``validate_models``).

    Load it with :meth:`from_mapping` (a dict, or what a YAML loader returns),
    :meth:`from_toml` or :meth:`from_file`, which raise :class:`InvalidPolicyError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: dict[str, TablePolicy] = {}
    checks: tuple[Check, ...] = ()
    validate_models: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise InvalidPolicyError(f"invalid policy: {problems}") from error

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidPolicyError(f"invalid policy: not TOML: {error}") from error
        return cls.from_mapping(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """A ``.toml`` or ``.json`` file."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            return cls.from_toml(text)
        if path.suffix == ".json":
            try:
                return cls.from_mapping(json.loads(text))
            except json.JSONDecodeError as error:
                raise InvalidPolicyError(f"invalid policy: not JSON: {error}") from error
        raise InvalidPolicyError(f"a policy file is .toml or .json, not {path.name}")

    def table(self, name: str) -> TablePolicy:
        return self.tables.get(name, _NOTHING)

    async def evaluate(
        self,
        executor: Executor,
        changeset: ChangeSet,
        *,
        tenant_id: object = None,
        registry: ModelRegistry | None = None,
    ) -> PolicyReport:
        """Judge ``changeset``: limits, forbidden deletes and tables that need a person from
        its rows; models against their final images (``registry``: the default one unless
        given); row rules and checks in the database, in a transaction of their own (a
        savepoint inside the caller's) that enters the session (``tenant_id``: the tenant
        it is bound to), showing only the changeset's operations when it holds a subset,
        read-only and rolled back.

        Raises :class:`~agentcow.errors.ReviewChangedError` when the session's chosen
        versions are no longer those of ``changeset`` (diff again), and
        :class:`~agentcow.errors.PolicyError` when the policy names a table that is not
        COW-enabled in its schema."""
        entries = await self._entries(executor, changeset)
        by_table = changeset.by_table()
        rules: list[RuleResult] = []
        checks: list[CheckResult] = []
        ruled = [name for name in by_table if self.table(name).rules]
        if ruled or self.checks:
            described = {
                entry.name: await describe_current(executor, changeset.schema, entry)
                for entry in entries
            }
            tables = list(described.values())
            async with _reading(executor):
                await _enter(executor, changeset, tenant_id)
                await _same_versions(executor, tables, changeset)
                for name in ruled:
                    rules += await _rule_results(
                        executor,
                        changeset,
                        described[name],
                        self.table(name).rules,
                        by_table[name],
                    )
                for check in self.checks:
                    checks.append(await _check_result(executor, check))
                await _same_versions(executor, tables, changeset)
        return _report(
            changeset,
            rules=rules,
            checks=checks,
            limits=[
                LimitResult(name, kind, limit, counts[kind.value])
                for name, counts in changeset.table_summary().items()
                for kind in DiffType
                if (limit := self.table(name).limit(kind)) is not None
            ],
            validated=(
                [(row, validate_diff(row, registry)) for row in changeset.diffs]
                if self.validate_models
                else []
            ),
            forbidden=[
                row
                for row in changeset.diffs
                if row.diff_type is DiffType.DELETE and self.table(row.table).forbid_deletes
            ],
            person=[name for name in by_table if self.table(name).needs_person],
        )

    async def _entries(self, executor: Executor, changeset: ChangeSet) -> list[RegisteredTable]:
        """The tables the changeset was read from (all the schema's, or its one table); a
        policy that names a table the schema has not COW-enabled is refused, rather than
        its rules silently applying to nothing."""
        await require_kit(executor)
        entries = await registered_tables(executor, changeset.schema)
        unknown = sorted(set(self.tables) - {entry.name for entry in entries})
        if unknown:
            raise PolicyError(
                f"the policy names table(s) {', '.join(unknown)} that are not COW-enabled in "
                f"schema {changeset.schema}: fix the names, or evaluate the review of the "
                "schema they are in"
            )
        return [e for e in entries if changeset.table is None or e.name == changeset.table]


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


class Decision(enum.StrEnum):
    """What a policy says of a review: block beats needs_review beats approve."""

    APPROVE = "approve"
    NEEDS_REVIEW = "needs_review"
    BLOCK = "block"


@dataclass(frozen=True)
class RuleResult:
    """One row rule on one row of the review."""

    table: str
    pk: dict[str, Any]
    diff_type: DiffType
    rule: str
    passed: bool
    row: RowDiff = field(repr=False, compare=False)


@dataclass(frozen=True)
class CheckResult:
    """One check: the first rows it returned (``rows``, as dicts) and how many in all."""

    name: str
    rows: list[dict[str, Any]]
    row_count: int

    @property
    def passed(self) -> bool:
        return self.row_count == 0


@dataclass(frozen=True)
class LimitResult:
    """Rows of one kind of change in one table, against the policy's limit."""

    table: str
    diff_type: DiffType
    limit: int
    count: int

    @property
    def passed(self) -> bool:
        return self.count <= self.limit


@dataclass(frozen=True)
class PolicyReport:
    """Everything a policy found in a review, and its decision with the reasons for it.
    ``fingerprint`` is the review's: commit with ``expected=report.fingerprint``."""

    session_id: uuid.UUID
    operation_ids: tuple[uuid.UUID, ...] | None
    fingerprint: str
    rules: list[RuleResult]
    checks: list[CheckResult]
    limits: list[LimitResult]
    invalid_rows: list[InvalidRow]
    forbidden_deletes: list[RowDiff]
    needs_person: list[str]
    decision: Decision
    reasons: list[str]
    findings: dict[str, list[str]] = field(repr=False, default_factory=dict)
    """Per judged row (:func:`_row_key`): what it failed, empty when it passed."""

    def row_findings(self, row: RowDiff) -> list[str] | None:
        """What ``row`` failed (rules, its model, a forbidden delete): empty when it passed,
        None when nothing judged it. With :attr:`blocking_reasons`, a report is the
        judgement ``ChangeSet.print`` and ``display`` take for their PASS/FAIL badges."""
        return self.findings.get(_row_key(row))

    @property
    def blocking_reasons(self) -> list[str]:
        """Every reason the commit is held back, needs a person included: a rendering says
        BLOCKED unless the decision is approve, whichever rows it shows."""
        return self.reasons

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [result for result in self.rules if not result.passed]

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [result for result in self.checks if not result.passed]

    @property
    def approved(self) -> bool:
        return self.decision is Decision.APPROVE


def _report(
    changeset: ChangeSet,
    *,
    rules: list[RuleResult],
    checks: list[CheckResult],
    limits: list[LimitResult],
    validated: list[tuple[RowDiff, ValidationResult]],
    forbidden: list[RowDiff],
    person: list[str],
) -> PolicyReport:
    invalid = [InvalidRow(row, result) for row, result in validated if not result.ok]
    findings: dict[str, list[str]] = {}
    for rule in rules:
        found = findings.setdefault(_row_key(rule.row), [])
        if not rule.passed:
            found.append(f"rule {rule.rule!r}")
    for row, result in validated:
        if result.model is not None:
            findings.setdefault(_row_key(row), []).extend(
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in result.errors
            )
    for row in forbidden:
        findings.setdefault(_row_key(row), []).append("deletes are forbidden")
    failed = Counter((r.table, r.rule) for r in rules if not r.passed)
    refused = Counter(invalid_row.row.table for invalid_row in invalid)
    deleted = Counter(row.table for row in forbidden)
    blocking = [
        *(f"{table}: {n} row(s) fail rule {rule!r}" for (table, rule), n in failed.items()),
        *(f"check {c.name!r} returned {c.row_count} row(s)" for c in checks if not c.passed),
        *(f"{table}: {n} row(s) fail its model" for table, n in refused.items()),
        *(
            f"{r.table}: {r.count} row(s) {_PAST[r.diff_type]}, the limit is {r.limit}"
            for r in limits
            if not r.passed
        ),
        *(f"{table}: deletes are forbidden ({n} row(s))" for table, n in deleted.items()),
    ]
    if blocking:
        decision, reasons = Decision.BLOCK, blocking
    elif person:
        decision = Decision.NEEDS_REVIEW
        reasons = [f"{table}: changes always need a person" for table in person]
    else:
        decision, reasons = Decision.APPROVE, []
    return PolicyReport(
        session_id=changeset.session_id,
        operation_ids=changeset.operation_ids,
        fingerprint=changeset.fingerprint,
        rules=rules,
        checks=checks,
        limits=limits,
        invalid_rows=invalid,
        forbidden_deletes=forbidden,
        needs_person=person,
        decision=decision,
        reasons=reasons,
        findings=findings,
    )


def _row_key(row: RowDiff) -> str:
    """A row of a review by table and key (by its values in a table without a key),
    whichever ChangeSet object holds it."""
    return json.dumps([row.table, row.pk or row.new], sort_keys=True, default=str)


_PAST = {DiffType.INSERT: "inserted", DiffType.UPDATE: "updated", DiffType.DELETE: "deleted"}


def require_approved(report: PolicyReport, *, person_approved: bool = False) -> None:
    """Refuse a commit its policy does not allow: :class:`PolicyViolationError` when the
    report blocks it, :class:`PersonRequiredError` when it needs a person and
    ``person_approved`` is not set. The Reviewer and the CLI call it before committing."""
    if report.decision is Decision.BLOCK:
        raise PolicyViolationError(
            "the commit is refused, nothing was applied: " + "; ".join(report.reasons),
            report,
        )
    if report.decision is Decision.NEEDS_REVIEW and not person_approved:
        raise PersonRequiredError(
            "the commit needs a person's approval (" + "; ".join(report.reasons) + "): "
            "commit once one approved, with require_approved(report, person_approved=True)",
            report,
        )


# ---------------------------------------------------------------------------------------
# In the database
# ---------------------------------------------------------------------------------------


async def _step(executor: Executor, step: str) -> None:
    await executor.execute(render("policy_scope.sql", step=step))


@contextlib.asynccontextmanager
async def _reading(executor: Executor) -> AsyncIterator[None]:
    """A transaction of the evaluation's own when the executor runs alone, else a savepoint
    in the caller's; rolled back either way. (Not REPEATABLE READ: entering the session may
    update its registry row, which an agent's transaction may be updating too; the
    fingerprint read before and after the statements keeps them on the reviewed versions.)"""
    own = isinstance(executor, TransactionAware) and executor.runs_alone()
    await _step(executor, "begin" if own else "savepoint")
    try:
        if own and isinstance(executor, TransactionAware) and executor.runs_alone():
            raise PolicyError(
                "Policy.evaluate needs one connection for its transaction, and this executor "
                "runs each statement on another (a pool): pass an executor over a connection"
            )
        yield
    finally:
        if own:
            await _step(executor, "rollback")
        else:
            await _step(executor, "rollback_to")
            await _step(executor, "release")


async def _enter(executor: Executor, changeset: ChangeSet, tenant_id: object) -> None:
    """Enter the session, showing the changeset's operations only; then read-only. An empty
    choice shows nothing of the session: its state is the base's, read outside it."""
    if changeset.operation_ids != ():
        await apply_cow_variables(
            executor,
            changeset.session_id,
            None,
            changeset.operation_ids,
            tenant_id=tenant_id,
        )
    await _step(executor, "read_only")


async def _same_versions(
    executor: Executor, tables: Sequence[TableDescription], changeset: ChangeSet
) -> None:
    """The session's chosen versions are still those the changeset was read from: an agent
    racing the review cannot have its rules and checks judge other rows than it shows."""
    if not tables:
        return
    [(digest,)] = await run_pinned(
        executor,
        render("policy_digest.sql", tables=tables, **_chosen(changeset)),
        "digest pg_catalog.text",
    )
    if digest != changeset.fingerprint:
        raise ReviewChangedError(
            "the session changed since its diff was read (an agent wrote, or a commit or "
            "discard ran): read the diff again and evaluate that"
        )


def _chosen(changeset: ChangeSet) -> dict[str, Sql | None]:
    """The session and the chosen operations (None: all) as _versions.sql takes them."""
    operations = changeset.operation_ids
    return {
        "session": uuid_literal(changeset.session_id, "session id"),
        "operations": None if operations is None else uuid_array_literal(operations),
    }


def _json_value(value: Any) -> Any:
    """A decoded value back in the text form PostgreSQL reads (for keys of rows)."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


async def _rule_results(
    executor: Executor,
    changeset: ChangeSet,
    t: TableDescription,
    rules: Sequence[RowRule],
    rows: Sequence[RowDiff],
) -> list[RuleResult]:
    """Every rule of one table on its rows of the review (``rows``, in the review's order,
    which is write order), in one statement."""
    keys = json.dumps(
        [{**row.pk, "_cow_kind": row.diff_type.value} for row in rows], default=_json_value
    )
    found = await run_pinned(
        executor,
        render(
            "policy_rules.sql",
            t=t,
            keys=keys,
            rules=[(predicate_sql(rule.predicate), rule.on) for rule in rules],
            **_chosen(changeset),
        ),
        ", ".join(["i pg_catalog.int8", *(f"r{n} pg_catalog.bool" for n in range(len(rules)))]),
    )
    results: list[RuleResult] = []
    for position, *outcomes in sorted(found, key=lambda found_row: int(found_row[0])):
        row = rows[int(position) - 1]
        results += [
            RuleResult(row.table, row.pk, row.diff_type, rule.name, bool(passed), row)
            for rule, passed in zip(rules, outcomes, strict=True)
            if passed is not None
        ]
    return results


async def _check_result(executor: Executor, check: Check) -> CheckResult:
    found = await executor.execute(
        render("policy_check.sql", query=query_sql(check.query), show=check.show)
    )
    return CheckResult(
        check.name,
        [parse_json(str(row)) for row, _ in found],
        int(found[0][1]) if found else 0,
    )
