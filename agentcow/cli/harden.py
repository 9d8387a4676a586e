"""``agentcow harden``: agent roles that reach the COW tables through their views only, and
reviewer roles able to commit (``--check`` only reports)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agentcow.cli.common import Debug, Dsn, ExitCode, Json, Output, Schema, database, fail, run
from agentcow.cli.plans import require_schema
from agentcow.cli.render import add_row, text_table
from agentcow.errors import TableNotFoundError
from agentcow.hardening import PrivilegeFinding, check_cow_privileges, harden_cow_schema


def findings_table(findings: Sequence[PrivilegeFinding]) -> Table:
    table = text_table("role", "kind", "privilege", "on", "via", "fix")
    for f in findings:
        cells = [f.role, f.kind, f.privilege, f.object, f.via, f.fix]
        add_row(table, cells)
    return table


def harden(
    schema: Schema = "public",
    agent_role: Annotated[
        list[str] | None,
        typer.Option("--agent-role", metavar="ROLE", help="an agent's role (repeat for several)"),
    ] = None,
    reviewer_role: Annotated[
        list[str] | None,
        typer.Option("--reviewer-role", metavar="ROLE", help="a reviewer's role (repeat)"),
    ] = None,
    read_only: Annotated[
        list[str] | None,
        typer.Option("--read-only", metavar="TABLE", help="agents may only read this COW table"),
    ] = None,
    remove_role_settings: Annotated[
        bool,
        typer.Option("--remove-role-settings", help="also remove the agents' ALTER ROLE ... SET"),
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="only report what is too much (exit 4 when anything is)"),
    ] = False,
    dsn: Dsn = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Grant agent roles what their sessions need and revoke the rest; exit 4 when
    privileges are left that an administrator must remove (each with its fix)."""
    agents, reviewers = agent_role or [], reviewer_role or []
    if not agents:
        fail("name the agents' roles with --agent-role ROLE", ExitCode.USAGE)
    both = sorted(set(agents) & set(reviewers))
    if both:
        fail(f"a role cannot be both an agent and a reviewer: {', '.join(both)}", ExitCode.USAGE)
    left: list[bool] = []

    async def command() -> Output:
        async with database(dsn) as db:
            await require_schema(db, schema)
            if check:
                findings = await check_cow_privileges(
                    db, schema, agent_roles=agents, reviewer_roles=reviewers
                )
                left.append(bool(findings))
                said = f"{len(findings)} privilege(s) beyond what the roles need"
                shown: list[RenderableType] = [Text(said)]
                if findings:
                    shown.append(findings_table(findings))
                return Output(Group(*shown), [dataclasses.asdict(f) for f in findings])
            try:
                report = await harden_cow_schema(
                    db,
                    schema,
                    agent_roles=agents,
                    reviewer_roles=reviewers,
                    read_only_tables=read_only or [],
                    remove_role_settings=remove_role_settings,
                )
            except ValueError as error:  # --read-only names no COW table of the schema
                raise TableNotFoundError(str(error)) from error
        left.append(not report.ok)
        data = {
            "schema": schema,
            "ok": report.ok,
            "applied": list(report.applied),
            "failed": [{"statement": sql, "error": why} for sql, why in report.failed],
            "remaining": [dataclasses.asdict(f) for f in report.remaining],
        }
        parts: list[RenderableType] = [Text(f"{len(report.applied)} statement(s) applied")]
        for sql, why in report.failed:
            parts.append(Text(f"failed: {sql}: {why}"))
        if report.remaining:
            parts.append(Text(f"left for an administrator: {len(report.remaining)}"))
            parts.append(findings_table(report.remaining))
        else:
            parts.append(Text("nothing left: the roles are hardened"))
        return Output(Group(*parts), data)

    run(command, as_json=as_json, debug=debug)
    if left and left[0]:
        raise typer.Exit(int(ExitCode.REFUSED))
