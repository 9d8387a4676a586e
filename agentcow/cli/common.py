"""What every ``agentcow`` command shares: where the database is, ``--json``, ``--debug``,
the exit codes, and errors printed as one line.

A command is an ``async`` function of a connection wrapped by :func:`run`; it returns what to
print (``Output``): a Rich renderable or plain text for people, and a JSON-ready value for
``--json``. Errors become one line on stderr and an :class:`ExitCode`; ``--debug`` shows the
traceback as well.
"""

from __future__ import annotations

import asyncio
import enum
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import asyncpg
import typer
from pydantic_core import to_jsonable_python
from rich.console import Console, RenderableType

from agentcow import errors
from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.driver_errors import postgres_error_fields


class ExitCode(enum.IntEnum):
    """The documented exit codes (README, *The agentcow command*)."""

    OK = 0
    #: Anything unexpected; ``--debug`` shows the traceback.
    FAILED = 1
    #: Bad usage: an unknown option, a malformed id, a missing DSN.
    USAGE = 2
    #: The database cannot be reached, or has no (or an older) kit.
    UNAVAILABLE = 3
    #: Refused, nothing applied: conflicts, a review that changed, a policy block, a
    #: person's approval needed; also ``check`` and ``conflicts`` when they find any.
    REFUSED = 4
    #: The session, operation, table or history entry does not exist.
    NOT_FOUND = 5


Dsn = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar=["AGENTCOW_DSN", "DATABASE_URL"],
        show_envvar=True,
        help="the database (libpq URL or key=value string)",
    ),
]
Schema = Annotated[str, typer.Option(help="the copy-on-write schema")]
Json = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
Debug = Annotated[bool, typer.Option("--debug", help="show tracebacks of errors")]


@dataclass(frozen=True)
class Output:
    """What a command printed: ``human`` for a terminal, ``data`` for ``--json``."""

    human: RenderableType
    data: Any


_REFUSED: tuple[type[BaseException], ...] = (
    errors.CommitConflictError,
    errors.ReviewChangedError,
    errors.PolicyViolationError,
    errors.NotReviewedError,
    errors.OperationsNotClosedError,
    errors.SessionChangedError,
    errors.PendingChangesError,
    errors.AlreadyUndoneError,
    errors.TenantIsolationError,
)
_NOT_FOUND: tuple[type[BaseException], ...] = (
    errors.TableNotFoundError,
    errors.OperationNotFoundError,
    errors.HistoryNotFoundError,
    errors.UnknownRoleError,
)
_USAGE: tuple[type[BaseException], ...] = (
    errors.InvalidIdError,
    errors.InvalidIdentifierError,
    errors.InvalidPolicyError,
    errors.PolicyError,
)
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    errors.NotDeployedError,
    errors.KitVersionError,
    OSError,
)


def exit_code_of(error: BaseException) -> ExitCode:
    for kinds, code in (
        (_REFUSED, ExitCode.REFUSED),
        (_NOT_FOUND, ExitCode.NOT_FOUND),
        (_USAGE, ExitCode.USAGE),
        (_UNAVAILABLE, ExitCode.UNAVAILABLE),
    ):
        if isinstance(error, kinds):
            return code
    fields = postgres_error_fields(error)
    if fields is not None and fields[0][:2] in ("08", "28", "3D"):
        return ExitCode.UNAVAILABLE  # connection, authentication, unknown database
    return ExitCode.FAILED


def error_line(error: BaseException) -> str:
    """One line saying what went wrong: PostgreSQL's message and SQLSTATE when it is one."""
    fields = postgres_error_fields(error)
    if fields is not None and not isinstance(error, errors.CowError):
        sqlstate, message, detail = fields
        text = f"{message} (SQLSTATE {sqlstate})" + (f": {detail}" if detail else "")
    else:
        text = str(error) or type(error).__name__
    # The kit's own database errors open with "agentcow: ", which the line already says.
    return " ".join(text.removeprefix("agentcow: ").split())


def fail(message: str, code: ExitCode) -> NoReturn:
    typer.echo(f"agentcow: error: {message}", err=True)
    raise typer.Exit(int(code))


def require_dsn(dsn: str | None) -> str:
    if not dsn:
        fail("give --dsn, AGENTCOW_DSN or DATABASE_URL", ExitCode.USAGE)
    return dsn


def emit(output: Output, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable_python(output.data), indent=2) + "\n")
    else:
        Console(soft_wrap=True).print(output.human)


def run(
    command: Callable[[], Coroutine[Any, Any, Output | None]],
    *,
    as_json: bool = False,
    debug: bool = False,
) -> None:
    """Run ``command``, print what it returns, and turn its errors into one line and an
    exit code (and a traceback with ``--debug``)."""
    try:
        output = asyncio.run(command())
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        if debug:
            Console(stderr=True).print_exception()
        fail(error_line(error), exit_code_of(error))
    if output is not None:
        emit(output, as_json=as_json)


@asynccontextmanager
async def database(dsn: str | None) -> AsyncIterator[AsyncpgExecutor]:
    """An executor on one asyncpg connection to ``dsn`` (autocommit: each kit call runs in
    a transaction of its own), closed afterwards."""
    connection = await asyncpg.connect(require_dsn(dsn))
    try:
        yield AsyncpgExecutor(connection)
    finally:
        await connection.close()
