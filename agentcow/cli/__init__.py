"""The ``agentcow`` command (also ``python -m agentcow``): a Typer app, one module per
command."""

from agentcow.cli.app import app, main

__all__ = ["app", "main"]
