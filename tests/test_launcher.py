# ruff: noqa: S603  (the tests run the launcher with arguments of their own)
"""config.launcher: the embedded PostgreSQL, the app role, and no server left behind.

Each test starts its own embedded server in a temporary directory (the outer DATABASE_URL, as under CI, is
removed from the launcher's environment). The data directory is shared by the tests of this module: only the
first one pays for initdb.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

PROBE = """
import os, urllib.parse, psycopg
url = os.environ["DATABASE_URL"]
with psycopg.connect(url) as conn:
    row = conn.execute(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
print(*row)
print("password", urllib.parse.urlsplit(url).password)
"""

SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"


@pytest.fixture(scope="module")
def pg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded") / "pg"


@pytest.fixture
def env(pg_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DATABASE_OWNER_URL", "PGHOST", "PGPORT")
    }
    env["EMBEDDED_PG_DIR"] = str(pg_dir)
    env["EMBEDDED_DATA_DIR"] = str(pg_dir.parent)
    return env


def launcher(*cmd: str) -> list[str]:
    return [PYTHON, "-m", "config.launcher", *cmd]


def postmaster_pid(pg_dir: Path) -> int | None:
    try:
        return int((pg_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def servers_for(pg_dir: Path) -> list[int]:
    """Live postgres processes started on this data directory."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        if (
            proc.info["name"] == "postgres"
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and str(pg_dir) in (proc.info["cmdline"] or [])
        ):
            found.append(proc.pid)
    return found


def assert_no_server(pg_dir: Path) -> None:
    deadline = time.monotonic() + 5
    while True:
        pid = postmaster_pid(pg_dir)
        leftovers = servers_for(pg_dir)
        if (pid is None or not alive(pid)) and not leftovers:
            return
        assert time.monotonic() < deadline, f"PostgreSQL still running: postmaster.pid={pid}, {leftovers}"
        time.sleep(0.1)


def wait_until_dead(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launcher(PYTHON, "-c", PROBE), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def assert_probe_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "zenlogic_app False False"  # the app role: no superuser, no BYPASSRLS
    password = lines[1].removeprefix("password ")
    assert password and password != "None"
    assert password not in result.stderr  # the launcher says which database, never the password
    assert "embedded PostgreSQL" in result.stderr


def test_child_connects_as_app_role_and_server_stops(env: dict[str, str], pg_dir: Path) -> None:
    assert_probe_ok(run_probe(env))
    assert_no_server(pg_dir)

    # a second run reuses the data directory
    assert_probe_ok(run_probe(env))
    assert_no_server(pg_dir)


def test_sigterm_stops_child_and_postgres(env: dict[str, str], pg_dir: Path) -> None:
    proc = subprocess.Popen(
        launcher(PYTHON, "-c", SLEEPER), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        server = postmaster_pid(pg_dir)
        assert server is not None and alive(server)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM  # the child died of the forwarded SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert wait_until_dead(child)
    assert wait_until_dead(server)
    assert_no_server(pg_dir)


def test_next_run_recovers_after_kill_9(env: dict[str, str], pg_dir: Path) -> None:
    proc = subprocess.Popen(
        launcher(PYTHON, "-c", SLEEPER), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    server = postmaster_pid(pg_dir)
    assert server is not None
    proc.kill()
    proc.wait()

    assert wait_until_dead(child)  # the child got SIGTERM when the launcher died
    assert alive(server)  # the wheel could not stop PostgreSQL: the next run must reuse and stop it
    assert json.loads((pg_dir / ".handle_pids.json").read_text()) == [proc.pid]

    assert_probe_ok(run_probe(env))
    assert wait_until_dead(server)
    assert_no_server(pg_dir)


def test_stale_postmaster_pid_of_another_process(env: dict[str, str], pg_dir: Path) -> None:
    """Both the launcher and PostgreSQL killed hard, then postmaster.pid's pid reused by another process."""
    proc = subprocess.Popen(
        launcher(PYTHON, "-c", SLEEPER), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    server = postmaster_pid(pg_dir)
    assert server is not None
    os.kill(server, signal.SIGKILL)
    proc.kill()
    proc.wait()
    assert wait_until_dead(server)

    pidfile = pg_dir / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    lines[0] = str(os.getpid())  # a live process that is not PostgreSQL
    pidfile.write_text("\n".join(lines) + "\n")

    assert_probe_ok(run_probe(env))
    assert_no_server(pg_dir)


def test_configured_database_url_is_passed_through() -> None:
    url = "postgres://someone:s3cret-pw@db.example:5432/somedb"
    env = {**os.environ, "DATABASE_URL": url}
    code = "import os, sys; print(os.environ['DATABASE_URL']); sys.exit(3)"
    result = subprocess.run(
        launcher(PYTHON, "-c", code), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout.strip() == url
    assert "postgres://someone@db.example:5432/somedb" in result.stderr
    assert "s3cret-pw" not in result.stderr


REDIS_PROBE = """
import json, os, sys, redis
urls = {name: os.environ[name] for name in ("REDIS_URL", "CELERY_BROKER_URL")}
assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
state = json.loads(open(os.path.join(sys.argv[1], "embedded.json")).read())
print(json.dumps({"urls": urls, "state": state["env"], "pid": state["pid"]}))
"""


def redis_servers_on(port: int) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "redis-server" and f"127.0.0.1:{port}" in " ".join(p.info["cmdline"] or [])
    ]


def test_an_embedded_redis_serves_cache_and_broker_and_stops(env: dict[str, str], pg_dir: Path) -> None:
    env = {k: v for k, v in env.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    result = subprocess.run(
        launcher(PYTHON, "-c", REDIS_PROBE, str(pg_dir.parent)),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    cache, broker = probe["urls"]["REDIS_URL"], probe["urls"]["CELERY_BROKER_URL"]
    assert cache.startswith("redis://127.0.0.1:") and cache.endswith("/0")  # loopback only
    assert broker == cache[: -len("0")] + "1"  # the same server, another database
    # manage.py finds the servers in the state file while the launcher runs; it is gone afterwards
    assert probe["state"]["REDIS_URL"] == cache and probe["state"]["DATABASE_URL"].startswith("postgres://")
    assert not (pg_dir.parent / "embedded.json").exists()
    port = int(cache.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + 5
    while redis_servers_on(port):
        assert time.monotonic() < deadline, "redis-server still running"
        time.sleep(0.1)
    assert not list((pg_dir.parent / "redis").glob("*.pid"))
    assert_no_server(pg_dir)


def test_configured_redis_and_broker_start_no_embedded_redis(env: dict[str, str]) -> None:
    env = {**env, "REDIS_URL": "redis://cache.example:6379/3", "CELERY_BROKER_URL": "amqp://mq.example//"}
    code = "import os; print(os.environ['REDIS_URL'], os.environ['CELERY_BROKER_URL'])"
    result = subprocess.run(
        launcher(PYTHON, "-c", code), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://cache.example:6379/3", "amqp://mq.example//"]
    assert "embedded Redis" not in result.stderr


def test_manage_py_without_any_database_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import django.core.management
    from django.db.utils import OperationalError

    import manage

    def no_server(argv: list[str]) -> None:
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path))  # no make run here
    monkeypatch.setattr(django.core.management, "execute_from_command_line", no_server)
    monkeypatch.setattr(sys, "argv", ["manage.py", "rfm_recompute"])
    with pytest.raises(SystemExit) as exited:
        manage.main()
    assert exited.value.code == 1
    assert "Start the service with `make run`" in capsys.readouterr().err


def test_manage_py_ignores_the_state_of_a_run_that_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.launcher import embedded_environment

    dead = subprocess.Popen([PYTHON, "-c", "pass"])
    dead.wait()
    (tmp_path / "embedded.json").write_text(
        json.dumps({"pid": dead.pid, "env": {"DATABASE_URL": "postgres://x"}})
    )
    assert embedded_environment({"EMBEDDED_DATA_DIR": str(tmp_path)}) is None
    (tmp_path / "embedded.json").write_text(
        json.dumps({"pid": os.getppid(), "env": {"DATABASE_URL": "postgres://x"}})
    )
    assert embedded_environment({"EMBEDDED_DATA_DIR": str(tmp_path)}) == {"DATABASE_URL": "postgres://x"}
