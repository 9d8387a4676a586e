"""The ``agentcow`` Typer app: it holds the commands, each from a module of its own."""

from __future__ import annotations

import typer

from agentcow.cli import commit_commands, mcp, review, review_commands

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
    # A callback keeps `agentcow mcp` a subcommand while it is the only one.


app.command("mcp")(mcp.mcp)
app.command("ops")(review_commands.ops)
app.command("deps")(review_commands.deps)
app.command("diff")(review_commands.diff)
app.command("conflicts")(review_commands.conflicts)
app.command("check")(review_commands.check)
app.command("commit")(commit_commands.commit)
app.command("discard")(commit_commands.discard)
app.command("undo")(commit_commands.undo)
app.command("review")(review.review)


def main() -> None:
    app()
