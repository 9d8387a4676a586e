"""The reviewer's acting commands: ``commit``, ``discard`` and ``undo``.

A commit applies exactly what a person saw: ``--expect FINGERPRINT`` (printed by ``diff``)
refuses it, nothing applied, when the session's changes are no longer those. Without it a
terminal shows the summary and fingerprint and asks; anywhere else the command needs
``--expect`` or an explicit ``--yes``, so no script commits what nobody looked at by
accident. ``discard`` asks the same way (``--yes``); ``undo`` is undone by undoing its
undo session, so it does not ask.
"""

from __future__ import annotations

import enum
import re
import sys
import uuid
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentcow.cli.common import (
    Debug,
    Dsn,
    ExitCode,
    Json,
    Output,
    Schema,
    database,
    emit,
    fail,
    run,
)
from agentcow.cli.review_commands import (
    Ops,
    PolicyFile,
    SessionId,
    Tenant,
    chosen_operations,
    load_policy,
    progress,
    result_of,
    reviewing,
    session_id_of,
    short,
)
from agentcow.errors import ReviewChangedError
from agentcow.review.diff import ChangeSet
from agentcow.undo import undo as undo_session

FINGERPRINT = re.compile(r"[0-9a-f]{64}")

Yes = Annotated[
    bool, typer.Option("--yes", "-y", help="do not ask (needed where no terminal can answer)")
]


class OnConflict(enum.StrEnum):
    """What to do with rows the base changed since the session (or the commit) wrote them."""

    fail = "fail"
    merge = "merge"
    overwrite = "overwrite"


ConflictOption = Annotated[
    OnConflict,
    typer.Option(
        "--on-conflict",
        help="fail: refuse everything; merge: keep the base's columns the session left "
        "alone; overwrite: the session's rows win",
    ),
]
IncludeDependents = Annotated[
    bool,
    typer.Option("--include-dependents", help="add the operations that build on the chosen ones"),
]
AllowCascades = Annotated[
    bool,
    typer.Option(
        "--allow-cascades",
        help="let foreign keys cascade to stored rows the diff does not show",
    ),
]


def interactive() -> bool:
    """Whether someone can answer a question (standard input is a terminal)."""
    return sys.stdin.isatty()


def rows_table(title: str, rows: dict[str, int]) -> RenderableType:
    table = Table("table", "rows")
    for name, count in rows.items():
        table.add_row(name, str(count))
    total = sum(rows.values())
    return Group(Text(f"{title}: {total} row(s)", style="bold"), table) if rows else Text(title)


def summary(changes: ChangeSet) -> RenderableType:
    """What a commit of ``changes`` writes, per table, and the fingerprint it is held to."""
    table = Table("table", "+ins", "~upd", "-del")
    for name, counts in changes.table_summary().items():
        table.add_row(name, str(counts["INSERT"]), str(counts["UPDATE"]), str(counts["DELETE"]))
    picked = (
        "all operations"
        if changes.operation_ids is None
        else f"{len(changes.operation_ids)} operation(s): "
        + ", ".join(short(op) for op in changes.operation_ids)
    )
    return Group(
        Text(f"session {changes.session_id}, schema {changes.schema}, {picked}"),
        table,
        Text(f"fingerprint {changes.fingerprint}", style="dim"),
    )


def confirm(question: str, refusal: str) -> None:
    if not typer.confirm(question, default=False, err=True):
        fail(refusal, ExitCode.REFUSED)


def commit(
    session: SessionId,
    ops: Ops = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="FINGERPRINT",
            help="the fingerprint `agentcow diff` printed: commit only if the changes are "
            "still exactly those",
        ),
    ] = None,
    on_conflict: ConflictOption = OnConflict.fail,
    policy: PolicyFile = None,
    tenant: Tenant = None,
    allow_cascades: AllowCascades = False,
    person_approved: Annotated[
        bool,
        typer.Option("--person-approved", help="a person approved what the policy holds back"),
    ] = False,
    yes: Yes = False,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Commit the session (or --ops, with what they depend on), atomically across tables.
    Exits 4, nothing applied, on conflicts, a policy block, or changes that differ from
    --expect."""
    session_id, chosen = session_id_of(session), chosen_operations(ops)
    expect = None if expect is None else expect.strip().lower()
    if expect is not None and not FINGERPRINT.fullmatch(expect):
        fail(
            "--expect takes the fingerprint `agentcow diff` prints (64 hex digits)",
            ExitCode.USAGE,
        )
    rules = load_policy(policy)
    if expect is None and not yes:
        if as_json or not interactive():
            fail(
                "nothing was reviewed: give --expect FINGERPRINT (from agentcow diff), or "
                "--yes to commit the changes as they are now",
                ExitCode.USAGE,
            )
        expect = ask_to_commit(session_id, chosen, schema, dsn, debug)

    async def apply() -> tuple[ChangeSet, dict[str, int]]:
        with progress("reading the session's changes", quiet=as_json) as step:
            async with reviewing(
                dsn, session_id, schema, chosen, policy=rules, tenant=tenant
            ) as review:
                changes = await review.diff(chosen)
                if expect is not None and changes.fingerprint != expect:
                    raise ReviewChangedError(
                        "the session's changes differ from those reviewed (fingerprint "
                        f"{expect}, now {changes.fingerprint}); nothing was applied: run "
                        "agentcow diff again"
                    )
                if changes.is_empty:
                    return changes, {}
                step(f"committing {len(changes)} row(s)")
                rows = await review.commit(
                    chosen,
                    on_conflict=on_conflict.value,
                    allow_cascades=allow_cascades,
                    person_approved=person_approved,
                )
                return changes, rows

    changes, rows = result_of(apply, as_json=as_json, debug=debug)
    human = (
        rows_table(f"committed session {session_id}", rows)
        if rows
        else Text(f"nothing to commit in session {session_id}")
    )
    data = {
        "session_id": session_id,
        "operation_ids": changes.operation_ids,
        "fingerprint": changes.fingerprint,
        "rows": rows,
    }
    emit(Output(human, data), as_json=as_json)


def ask_to_commit(
    session_id: uuid.UUID, chosen: list[uuid.UUID] | None, schema: str, dsn: str | None, debug: bool
) -> str:
    """Shows a person what the commit would write and asks; returns the fingerprint they
    said yes to, which the commit is then held to."""

    async def read() -> ChangeSet:
        with progress("reading the session's changes", quiet=False):
            async with reviewing(dsn, session_id, schema, chosen) as review:
                return await review.diff(chosen)

    changes = result_of(read, as_json=False, debug=debug)
    Console(stderr=True, highlight=False).print(summary(changes))
    if not changes.is_empty:
        confirm("Commit these changes?", "not confirmed: nothing was committed")
    return changes.fingerprint


def discard(
    session: SessionId,
    ops: Ops = None,
    include_dependents: IncludeDependents = False,
    yes: Yes = False,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Drop the session's pending changes (or --ops'; operations that build on them must
    go too: --include-dependents). Asks first on a terminal; elsewhere it needs --yes."""
    session_id, chosen = session_id_of(session), chosen_operations(ops)
    if not yes:
        if as_json or not interactive():
            fail("discarding cannot be taken back: give --yes", ExitCode.USAGE)
        what = (
            "every pending change"
            if chosen is None
            else f"{len(chosen)} operation(s)"
            + (" and those that build on them" if include_dependents else "")
        )
        confirm(f"Discard {what} of session {session_id}?", "not confirmed: nothing was discarded")

    async def drop() -> Output:
        async with reviewing(dsn, session_id, schema, chosen) as review:
            rows = await review.discard(chosen, include_dependents=include_dependents)
        data = {"session_id": session_id, "operation_ids": chosen, "rows": rows}
        return Output(rows_table(f"discarded from session {session_id}", rows), data)

    run(drop, as_json=as_json, debug=debug)


def undo(
    session: SessionId,
    ops: Ops = None,
    on_conflict: ConflictOption = OnConflict.fail,
    include_dependents: IncludeDependents = False,
    allow_cascades: AllowCascades = False,
    schema: Schema = "public",
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Revert what the session committed (or --ops of it). The undo is a session of its
    own: undo that one to redo."""
    session_id, chosen = session_id_of(session), chosen_operations(ops)

    async def revert() -> Output:
        async with database(dsn) as executor:
            done = await undo_session(
                executor,
                session_id,
                operation_ids=chosen,
                schema=schema,
                on_conflict=on_conflict.value,
                include_dependents=include_dependents,
                allow_cascades=allow_cascades,
            )
        human = Group(
            rows_table(f"undid {len(done.operation_ids)} operation(s) of {session_id}", done.rows),
            Text(
                f"undo session {done.undo_session_id} (redo: agentcow undo "
                f"{done.undo_session_id} --schema {schema})",
                style="dim",
            ),
        )
        data = {
            "session_id": done.session_id,
            "undo_session_id": done.undo_session_id,
            "operation_ids": done.operation_ids,
            "rows": done.rows,
        }
        return Output(human, data)

    run(revert, as_json=as_json, debug=debug)
