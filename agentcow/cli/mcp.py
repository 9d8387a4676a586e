"""``agentcow mcp``: the MCP server of one session, over stdio.

The host application starts it for one agent run (or one review) with the session in its
environment; secrets (the DSN's password, the binding key) belong in the environment too,
where other users' ``ps`` cannot read them.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated

import typer


class Role(enum.StrEnum):
    agent = "agent"
    reviewer = "reviewer"


def mcp(
    dsn: Annotated[
        str | None,
        typer.Option(
            envvar=["AGENTCOW_DSN", "DATABASE_URL"],
            show_envvar=True,
            help="the database, as the agent's role (the reviewer's in reviewer mode)",
        ),
    ] = None,
    role: Annotated[
        Role, typer.Option(help="agent: SQL in the session; reviewer: commit, discard, undo")
    ] = Role.agent,
    session_id: Annotated[
        str | None,
        typer.Option(envvar="AGENTCOW_SESSION_ID", show_envvar=True, help="the session (UUID)"),
    ] = None,
    tenant_id: Annotated[
        str | None,
        typer.Option(envvar="AGENTCOW_TENANT_ID", show_envvar=True, help="the session's tenant"),
    ] = None,
    review_dsn: Annotated[
        str | None,
        typer.Option(
            envvar="AGENTCOW_REVIEW_DSN",
            show_envvar=True,
            help="agent mode: a role that may read the session's changes (diff, operations, "
            "conflicts); default: --dsn",
        ),
    ] = None,
    schema: Annotated[
        str, typer.Option(envvar="AGENTCOW_SCHEMA", show_envvar=True, help="the COW schema")
    ] = "public",
    label: Annotated[
        str | None,
        typer.Option(envvar="AGENTCOW_LABEL", show_envvar=True, help="recorded with the session"),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            envvar="AGENTCOW_POLICY",
            show_envvar=True,
            exists=True,
            dir_okay=False,
            help="reviewer mode: a policy file every commit must pass",
        ),
    ] = None,
    max_rows: Annotated[
        int,
        typer.Option(envvar="AGENTCOW_MAX_ROWS", min=1, help="rows returned per call, at most"),
    ] = 100,
) -> None:
    """Serve one copy-on-write session over MCP (stdio). The binding key is read from
    AGENTCOW_BINDING_KEY only."""
    if not dsn:
        raise typer.BadParameter("give --dsn, AGENTCOW_DSN or DATABASE_URL", param_hint="--dsn")
    if not session_id:
        raise typer.BadParameter(
            "the host binds the session: give --session-id or AGENTCOW_SESSION_ID",
            param_hint="--session-id",
        )
    try:
        from agentcow.mcp import create_server
    except ImportError as error:
        typer.echo(f"agentcow mcp needs the mcp extra (pip install 'agentcow[mcp]'): {error}")
        raise typer.Exit(1) from error
    from agentcow.review.policy import Policy

    try:
        server = create_server(
            dsn,
            session_id=session_id,
            tenant_id=tenant_id,
            binding_key=os.environ.get("AGENTCOW_BINDING_KEY") or None,
            mode=role.value,
            review_database=review_dsn,
            schema=schema,
            label=label,
            policy=None if policy is None else Policy.from_file(policy),
            max_rows=max_rows,
        )
        server.run("stdio")
    except Exception as error:
        cause = _startup_error(error)
        if cause is None:
            raise
        typer.echo(f"agentcow mcp: {cause}", err=True)
        raise typer.Exit(1) from error


def _startup_error(error: BaseException) -> BaseException | None:
    """What stopped the server from starting, when it is the setup's fault (a bad argument,
    a database that cannot be reached or has no kit), out of the task groups around it."""
    from agentcow.driver_errors import postgres_error_fields
    from agentcow.errors import CowError

    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    known = isinstance(error, CowError | ValueError | OSError)
    return error if known or postgres_error_fields(error) is not None else None
