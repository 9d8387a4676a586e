"""The ``agentcow`` Typer app: it holds the commands, each from a module of its own."""

from __future__ import annotations

import typer

from agentcow.cli import (
    commit_commands,
    harden,
    mcp,
    review_commands,
    setup,
    sql_script,
    upkeep,
)

app = typer.Typer(
    name="agentcow",
    help="PostgreSQL copy-on-write sessions for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def agentcow() -> None:
    """PostgreSQL copy-on-write sessions for AI agents."""


# Setting up and looking after a database
app.command("deploy")(setup.deploy)
app.command("enable")(setup.enable)
app.command("disable")(setup.disable)
app.add_typer(sql_script.app, name="sql")
app.command("status")(upkeep.status)
app.command("sessions")(upkeep.sessions)
app.command("gc")(upkeep.gc)
app.command("harden")(harden.harden)
# Reviewing a session
app.command("ops")(review_commands.ops)
app.command("deps")(review_commands.deps)
app.command("diff")(review_commands.diff)
app.command("conflicts")(review_commands.conflicts)
app.command("check")(review_commands.check)
app.command("commit")(commit_commands.commit)
app.command("discard")(commit_commands.discard)
app.command("undo")(commit_commands.undo)
# Serving
app.command("mcp")(mcp.mcp)


def main() -> None:
    app()
