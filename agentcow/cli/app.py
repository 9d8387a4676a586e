"""The ``agentcow`` Typer app: it holds the commands, each from a module of its own."""

from __future__ import annotations

import typer

from agentcow.cli import mcp, review

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
app.command("review")(review.review)


def main() -> None:
    app()
