"""The reviewer's reading commands: ``ops``, ``deps``, ``diff``, ``conflicts`` and ``check``.

The command line keeps no state between runs: ``diff`` prints the fingerprint of what it
showed, and ``commit --expect`` (:mod:`agentcow.cli.commit_commands`) applies a commit only
while the session's changes are still exactly those.
"""

from __future__ import annotations

import enum
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console, Group, RenderableType
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.catalog import registered_tables, require_kit
from agentcow.cli.common import (
    Debug,
    Dsn,
    ExitCode,
    Json,
    Output,
    Schema,
    emit,
    fail,
    require_dsn,
    run,
)
from agentcow.conflicts import Conflict
from agentcow.errors import (
    InvalidIdError,
    InvalidPolicyError,
    OperationNotFoundError,
    TableNotFoundError,
)
from agentcow.identifiers import uuid_literal, validate_uuid
from agentcow.operations import get_session_operations
from agentcow.review.diff import ChangeSet
from agentcow.review.encoding import json_value
from agentcow.review.policy import Decision, Policy, PolicyReport
from agentcow.review.reviewer import Reviewer
from agentcow.templates import render

T = TypeVar("T")
#: Failing rows ``check`` lists before it says how many more there are.
SHOWN = 20

SessionId = Annotated[str, typer.Argument(metavar="SESSION", help="the session (UUID)")]
Ops = Annotated[
    list[str] | None,
    typer.Option(
        "--ops",
        "--op",
        metavar="ID[,ID...]",
        help="only these operations (whole ids, as ops prints them); repeat or separate by commas",
    ),
]
PolicyFile = Annotated[
    Path | None, typer.Option("--policy", metavar="FILE", help="a policy file (.toml or .json)")
]
Tenant = Annotated[
    str | None, typer.Option("--tenant", help="the tenant the session is bound to, if any")
]


class Format(enum.StrEnum):
    """How ``diff`` prints: for people (with or without colours), JSON, or a SQL patch."""

    terminal = "terminal"
    plain = "plain"
    json = "json"
    sql = "sql"


# ---------------------------------------------------------------------------------------
# What the commands share
# ---------------------------------------------------------------------------------------


def _checked(value: str, what: str) -> uuid.UUID:
    """An id checked before anything connects: one line and exit 2 when it is no UUID."""
    try:
        return validate_uuid(value, what)
    except InvalidIdError as error:
        fail(str(error), ExitCode.USAGE)


def chosen_operations(ops: Sequence[str] | None) -> list[uuid.UUID] | None:
    """The ``--ops`` ids (None: the whole session)."""
    if ops is None:
        return None
    ids = [part.strip() for value in ops for part in value.split(",") if part.strip()]
    if not ids:
        fail("--ops names no operation", ExitCode.USAGE)
    return list(dict.fromkeys(_checked(op, "operation id") for op in ids))


def session_id_of(session: str) -> uuid.UUID:
    return _checked(session, "session id")


def result_of(command: Callable[[], Coroutine[Any, Any, T]], *, as_json: bool, debug: bool) -> T:
    """What ``command`` returns, its errors turned into one line and an exit code by
    :func:`agentcow.cli.common.run` (the caller prints)."""
    found: list[T] = []

    async def call() -> None:
        found.append(await command())

    run(call, as_json=as_json, debug=debug)
    return found[0]


def load_policy(path: Path | None) -> Policy | None:
    """The policy file, or one line and exit 2 when it cannot be read or is not a policy."""
    if path is None:
        return None
    try:
        return Policy.from_file(path)
    except OSError as error:
        fail(f"cannot read the policy file {path}: {error.strerror or error}", ExitCode.USAGE)
    except InvalidPolicyError as error:
        fail(f"{path}: {' '.join(str(error).split())}", ExitCode.USAGE)


@asynccontextmanager
async def reviewing(
    dsn: str | None,
    session_id: uuid.UUID,
    schema: str,
    chosen: Sequence[uuid.UUID] | None = None,
    *,
    policy: Policy | None = None,
    tenant: str | None = None,
) -> AsyncIterator[Reviewer]:
    """A :class:`Reviewer` of a session that exists, with the ``chosen`` operations pending
    (else :class:`OperationNotFoundError`, exit 5), on one connection closed afterwards."""
    connection = await asyncpg.connect(require_dsn(dsn))
    try:
        await require_session(AsyncpgExecutor(connection), session_id, schema, chosen or ())
        yield Reviewer(connection, session_id, schema=schema, policy=policy, tenant_id=tenant)
    finally:
        await connection.close()


async def require_session(
    executor: AsyncpgExecutor, session_id: uuid.UUID, schema: str, chosen: Sequence[uuid.UUID]
) -> None:
    """A session is known when it holds changes in ``schema`` or the registry records it
    (for a role that may read the registry): a mistyped id is an error, not an empty diff.
    So is an operation it does not hold (never written, or committed or discarded), and a
    schema without COW tables."""
    await require_kit(executor)
    if not await registered_tables(executor, schema):
        raise TableNotFoundError(f"schema {schema} has no COW tables (or does not exist)")
    pending = set(await get_session_operations(executor, session_id, schema))
    if not pending:
        known = await executor.execute(
            render("session_known.sql", session=uuid_literal(session_id))
        )
        if not known[0][0]:
            raise OperationNotFoundError(
                f"no session {session_id}: it holds no changes in schema {schema} and the "
                "registry has no record of it that you may read"
            )
    unknown = [str(op) for op in chosen if op not in pending]
    if unknown:
        raise OperationNotFoundError(
            f"session {session_id} has no pending operation {', '.join(unknown)} in schema "
            f"{schema} (never written, or already committed or discarded)"
        )


@contextmanager
def progress(message: str, *, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A spinner with the time spent on stderr while long work runs, on a terminal only
    (never with ``--json``); yields a function that names the current step."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield lambda _: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(message, total=None)
        yield lambda step: bar.update(task, description=step)


def short(op: uuid.UUID) -> str:
    return str(op)[:8]


def label(op: uuid.UUID, positions: dict[uuid.UUID, int]) -> str:
    """``#2 1a2b3c4d``: the operation's place in the session's write order and short id."""
    position = positions.get(op)
    return f"#{position} {short(op)}" if position is not None else short(op)


def _plain(value: Any) -> str:
    return "NULL" if value is None else str(json_value(value))


def _key(key: dict[str, Any]) -> str:
    return ", ".join(f"{column}={_plain(value)}" for column, value in key.items())


# ---------------------------------------------------------------------------------------
# ops, deps
# ---------------------------------------------------------------------------------------


def ops(
    session: SessionId,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """The session's operations in the order they first wrote, with what each wrote."""

    session_id = session_id_of(session)

    async def read() -> Output:
        async with reviewing(dsn, session_id, schema) as review:
            summaries = await review.operations()
        whole = Column("operation", no_wrap=True, min_width=36)  # what --ops takes
        table = Table("#", whole, "rows", Column("tables", overflow="fold"), "writes")
        for position, op in enumerate(summaries, start=1):
            counts = zip("+~-", (op.inserted, op.updated, op.deleted), strict=True)
            table.add_row(
                str(position),
                str(op.operation_id),
                " ".join(f"{sign}{n}" for sign, n in counts if n),
                ", ".join(op.tables),
                f"{op.first_write}-{op.last_write}",
            )
        human: RenderableType = (
            table if summaries else Text(f"session {session_id} has no pending operations")
        )
        data = [
            {
                "position": position,
                "operation_id": op.operation_id,
                "tables": list(op.tables),
                "inserted": op.inserted,
                "updated": op.updated,
                "deleted": op.deleted,
                "first_write": op.first_write,
                "last_write": op.last_write,
            }
            for position, op in enumerate(summaries, start=1)
        ]
        return Output(human, data)

    run(read, as_json=as_json, debug=debug)


def deps(
    session: SessionId,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Which operations build on which: committing one needs those it depends on,
    discarding one needs those that depend on it."""

    session_id = session_id_of(session)

    async def read() -> Output:
        async with reviewing(dsn, session_id, schema) as review:
            order = [op.operation_id for op in await review.operations()]
            arcs = await review.dependencies()
        positions = {op: i for i, op in enumerate(order, start=1)}
        lines = [
            Text(f"{label(op, positions)}  depends on  {label(on, positions)}") for on, op in arcs
        ]
        human: RenderableType = Group(*lines) if lines else Text("no operation depends on another")
        data = [
            {
                "operation_id": op,
                "position": positions.get(op),
                "depends_on": on,
                "depends_on_position": positions.get(on),
            }
            for on, op in arcs
        ]
        return Output(human, data)

    run(read, as_json=as_json, debug=debug)


# ---------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------


def commit_hint(changes: ChangeSet, chosen: Sequence[uuid.UUID] | None) -> str:
    """The command that commits exactly what was shown."""
    picked = "" if chosen is None else " --ops " + ",".join(map(str, chosen))
    return (
        f"commit exactly this: agentcow commit {changes.session_id} --schema "
        f"{changes.schema}{picked} --expect {changes.fingerprint}"
    )


def diff(
    session: SessionId,
    ops: Ops = None,
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="terminal (colours), plain (no escape codes), json, sql (a patch); "
            "default: terminal on a terminal, else plain",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="inserts and updates shown per table (deletes: all)"),
    ] = None,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """What a commit of the session (or of --ops, with what they depend on) would write,
    row by row, with its fingerprint: `commit --expect FINGERPRINT` commits exactly that."""
    if as_json and output_format not in (None, Format.json):
        fail(f"--json and --format {output_format.value} contradict", ExitCode.USAGE)
    shape = Format.json if as_json else output_format
    session_id, chosen = session_id_of(session), chosen_operations(ops)

    async def read() -> ChangeSet:
        with progress("reading the session's changes", quiet=shape in (Format.json, Format.sql)):
            async with reviewing(dsn, session_id, schema, chosen) as review:
                return await review.diff(chosen)

    changes = result_of(read, as_json=shape is Format.json, debug=debug)
    if shape is Format.json:
        sys.stdout.write(changes.to_json(indent=2) + "\n")
        return
    if shape is Format.sql:
        sys.stdout.write(changes.to_sql())
        return
    console = Console(
        force_terminal=None if shape is None else shape is Format.terminal,
        highlight=False,
        soft_wrap=True,
    )
    changes.render(console, limit=limit)
    console.print(Text(commit_hint(changes, chosen), style="dim"))


# ---------------------------------------------------------------------------------------
# conflicts
# ---------------------------------------------------------------------------------------


def _conflict_data(conflict: Conflict) -> dict[str, Any]:
    return {
        "table": conflict.table,
        "key": conflict.key,
        "kind": conflict.kind,
        "columns": list(conflict.columns),
        "mergeable": conflict.mergeable,
        "base_then": conflict.base_then,
        "base_now": conflict.base_now,
        "session": conflict.session,
    }


def conflicts(
    session: SessionId,
    ops: Ops = None,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Rows the base changed since the session wrote them: what a commit would meet.
    Exits 4 when there are any."""
    session_id, chosen = session_id_of(session), chosen_operations(ops)

    async def read() -> list[Conflict]:
        async with reviewing(dsn, session_id, schema, chosen) as review:
            return await review.conflicts(chosen)

    found = result_of(read, as_json=as_json, debug=debug)
    table = Table("table", "key", "base meanwhile", "columns both changed", "mergeable")
    for c in found:
        table.add_row(
            c.table, _key(c.key), c.kind, ", ".join(c.columns), "yes" if c.mergeable else "no"
        )
    human: RenderableType = (
        Group(Text(f"{len(found)} conflict(s)", style="bold red"), table)
        if found
        else Text("no conflicts")
    )
    emit(Output(human, [_conflict_data(c) for c in found]), as_json=as_json)
    if found:
        raise typer.Exit(int(ExitCode.REFUSED))


# ---------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------


def report_data(report: PolicyReport) -> dict[str, Any]:
    """The policy report as ``check --json`` prints it (failures in full, passes counted)."""
    return {
        "session_id": report.session_id,
        "operation_ids": report.operation_ids,
        "fingerprint": report.fingerprint,
        "decision": report.decision.value,
        "reasons": report.reasons,
        "rules_checked": len(report.rules),
        "failed_rules": [
            {"table": r.table, "pk": r.pk, "type": r.diff_type.value, "rule": r.rule}
            for r in report.failed_rules
        ],
        "checks": [
            {"name": c.name, "passed": c.passed, "row_count": c.row_count, "rows": c.rows}
            for c in report.checks
        ],
        "limits": [
            {
                "table": r.table,
                "type": r.diff_type.value,
                "limit": r.limit,
                "count": r.count,
                "passed": r.passed,
            }
            for r in report.limits
        ],
        "invalid_rows": [
            {"table": i.row.table, "pk": i.row.pk, "errors": i.result.errors}
            for i in report.invalid_rows
        ],
        "forbidden_deletes": [{"table": r.table, "pk": r.pk} for r in report.forbidden_deletes],
        "needs_person": report.needs_person,
    }


_DECISION = {
    Decision.APPROVE: Text(" APPROVE ", style="bold black on green"),
    Decision.NEEDS_REVIEW: Text(" NEEDS A PERSON ", style="bold black on yellow"),
    Decision.BLOCK: Text(" BLOCK ", style="bold white on red"),
}


def report_text(report: PolicyReport) -> RenderableType:
    parts: list[RenderableType] = [
        Text.assemble(_DECISION[report.decision], f"  session {report.session_id}"),
        Text(f"fingerprint {report.fingerprint}", style="dim"),
        *(Text(f"  {reason}", style="red") for reason in report.reasons),
    ]
    if report.limits or report.checks:
        table = Table("limit or check", "found", "allowed", "")
        for r in report.limits:
            table.add_row(
                f"{r.table} {r.diff_type.value.lower()}s",
                str(r.count),
                str(r.limit),
                "ok" if r.passed else "FAIL",
            )
        for c in report.checks:
            table.add_row(f"check {c.name}", str(c.row_count), "0", "ok" if c.passed else "FAIL")
        parts.append(table)
    parts.append(Text(f"{len(report.rules)} row rule result(s), {len(report.failed_rules)} failed"))
    failures = [
        *(f"{r.table} {_key(r.pk)}: rule {r.rule!r}" for r in report.failed_rules),
        *(f"{i.row.table} {_key(i.row.pk)}: fails its model" for i in report.invalid_rows),
    ]
    parts += [Text(f"  FAIL {line}", style="red") for line in failures[:SHOWN]]
    if len(failures) > SHOWN:
        parts.append(Text(f"  … {len(failures) - SHOWN} more (--json lists all)", style="dim"))
    return Group(*parts)


def check(
    session: SessionId,
    policy: Annotated[
        Path, typer.Option("--policy", metavar="FILE", help="the policy file (.toml or .json)")
    ],
    ops: Ops = None,
    tenant: Tenant = None,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Judge the session's changes (or --ops') by a policy. Exits 4 when the policy blocks
    the commit or it needs a person."""
    session_id, chosen = session_id_of(session), chosen_operations(ops)
    rules = load_policy(policy)

    async def judge() -> PolicyReport:
        with progress("judging the session's changes", quiet=as_json) as step:
            async with reviewing(
                dsn, session_id, schema, chosen, policy=rules, tenant=tenant
            ) as review:
                step("reading the session's changes")
                await review.diff(chosen)
                step("running the policy")
                return await review.check(chosen)

    report = result_of(judge, as_json=as_json, debug=debug)
    emit(Output(report_text(report), report_data(report)), as_json=as_json)
    if not report.approved:
        raise typer.Exit(int(ExitCode.REFUSED))
