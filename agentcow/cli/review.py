"""``agentcow review``: the review page, served on this machine.

It prints the page's address with the process's token (the page opens only with it) and, by
default, opens it in the browser. It binds 127.0.0.1 unless told otherwise: anyone who can
reach the port and read the address can commit what the database role may.
"""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from agentcow.catalog import require_kit
from agentcow.cli.common import Dsn, ExitCode, Schema, database, fail, require_dsn, run


def review(
    dsn: Dsn = None,
    schema: Schema = "public",
    policy: Annotated[
        Path | None,
        typer.Option(
            envvar="AGENTCOW_POLICY",
            show_envvar=True,
            exists=True,
            dir_okay=False,
            help="a policy file (.toml or .json) every commit must pass",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="the address to listen on (local only by default)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="the port (0: any free one)")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="open the page in the browser")
    ] = True,
) -> None:
    """Serve the review page: sessions, their operations and dependencies, row diffs,
    policy results and conflicts; commit, discard or undo."""
    try:
        import uvicorn

        from agentcow.web.app import create_review_app, review_url
    except ImportError as error:
        fail(
            f"agentcow review needs the web extra (pip install 'agentcow[web]'): {error}",
            ExitCode.UNAVAILABLE,
        )
    from agentcow.errors import InvalidPolicyError
    from agentcow.review.policy import Policy

    try:
        chosen = None if policy is None else Policy.from_file(policy)
    except InvalidPolicyError as error:
        fail(str(error), ExitCode.USAGE)
    target = require_dsn(dsn)

    async def reachable() -> None:
        """A database that cannot be reached, or has no kit, is one line and an exit code
        now, not a traceback from the server's start."""
        async with database(target) as executor:
            await require_kit(executor)

    run(reachable)
    hosts = () if host in ("127.0.0.1", "localhost", "0.0.0.0") else (host,)
    app = create_review_app(dsn=target, schema=schema, policy=chosen, hosts=hosts)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        """Once listening: the address (the port the system chose, for --port 0)."""
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = review_url("127.0.0.1" if host == "0.0.0.0" else host, bound, app.state.token)
        typer.echo(f"agentcow review: {url}  (Ctrl+C stops it)", err=True)
        if open_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
