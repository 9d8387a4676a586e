"""The ``agentcow`` Typer app: it holds the commands, each from a module of its own."""

from __future__ import annotations

import sys

import typer

from agentcow.cli import (
    commit_commands,
    demo,
    harden,
    mcp,
    review,
    review_commands,
    setup,
    sql_script,
    upkeep,
)
from agentcow.cli.common import error_line, exit_code_of, show_help_without_command

app = typer.Typer(
    name="agentcow",
    help="PostgreSQL copy-on-write sessions for AI agents.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def agentcow(context: typer.Context) -> None:
    """PostgreSQL copy-on-write sessions for AI agents."""
    show_help_without_command(context)


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
# Serving, and the demo
app.command("mcp")(mcp.mcp)
app.command("demo")(demo.demo)
app.command("review")(review.review)


def main() -> None:
    """The console script (and ``python -m agentcow``). A usage error is one line, like every
    other error (exit 2), where click would print the usage and a framed message."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="agentcow", standalone_mode=False)
    except typer.TyperException as error:  # click's usage errors, as Typer ships them
        typer.echo(f"agentcow: error: {error.format_message()} (see --help)", err=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        typer.echo("agentcow: aborted", err=True)
        sys.exit(1)
    except Exception as error:  # what a command's own handling did not reach
        if "--debug" in sys.argv:
            raise
        typer.echo(f"agentcow: error: {error_line(error)} (--debug shows where)", err=True)
        sys.exit(int(exit_code_of(error)))
    sys.exit(code if isinstance(code, int) else 0)
