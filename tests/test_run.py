# ruff: noqa: S603, S310  (the tests run the service's own commands and call it on localhost)
"""`make run` as a user runs it: the launcher, the embedded PostgreSQL and Redis, the supervisor and its processes.

One stack for the module (the first start pays for initdb and the migrations), with nothing configured: no
DATABASE_URL, REDIS_URL or CELERY_BROKER_URL, its files in a temporary folder, its ports free ones. The last test
stops it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.waiting import stop_process_group, wait_until

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONFIGURED = (
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "PGHOST",
    "PGPORT",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_DEFAULT_QUEUE",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    http: int
    grpc: int
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self) -> str:
        lines = self.output().splitlines()
        return lines[lines.index("API token (30 days, all scopes):") + 1].strip()

    def state(self) -> dict[str, str]:
        return json.loads((self.data / "embedded.json").read_text())["env"]

    def http_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/health", timeout=5) as response:
                return int(response.status)
        except (OSError, urllib.error.HTTPError):
            return 0

    def backlog(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10) as response:
            text = response.read().decode()
        line = next(ln for ln in text.splitlines() if ln.startswith("zenlogic_customer_outbox_backlog "))
        return float(line.split()[1])

    def supervisor(self) -> psutil.Process:
        [run] = [p for p in psutil.Process(self.process.pid).children() if "config.run" in p.cmdline()]
        return run

    def child(self, name: str) -> psutil.Process:
        """The supervised process whose command line holds `name` (e.g. "worker")."""
        matches = [p for p in self.supervisor().children() if name in p.cmdline()]
        assert len(matches) == 1, [p.cmdline() for p in self.supervisor().children()]
        return matches[0]

    def manage(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """`manage.py` as a developer types it next to `make run`: no DATABASE_URL, nothing configured."""
        return subprocess.Popen(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    data = folder / "data"
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURED and not k.startswith("EVENTS_")}
    env.update(
        EMBEDDED_DATA_DIR=str(data),
        HTTP_PORT=str(http),
        GRPC_PORT=str(grpc_port),
        GRPC_METRICS_PORT=str(metrics),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    log = folder / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "config.launcher", PYTHON, "-m", "config.run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as `make run` in a terminal has
        )
    s = Stack(process=process, data=data, log=log, http=http, grpc=grpc_port, env=env)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"make run exited ({process.returncode}):\n{s.output()[-5000:]}")
        return "Press Ctrl-C to stop." in s.output() and s.health() == 200 and port_open(grpc_port)

    try:
        wait_until(up, timeout=240, interval=0.5, what="the stack to serve")
        yield s
    finally:
        if process.poll() is None:
            stop_process_group(process, grace=60)


def create_customer(stack: Stack, n: int) -> str:
    status, body = stack.http_json(
        "POST",
        "/api/v1/customers/",
        {"type": "individual", "first_name": f"Run{n}", "email": f"run{n}@example.com"},
    )
    assert status == 201, body
    return str(body["id"])


def test_events_reach_the_embedded_broker_and_events_tail_prints_them(stack: Stack) -> None:
    import redis

    wait_until(lambda: stack.backlog() == 0, timeout=60, what="the demo data's events to be published")
    tail = stack.manage("events_tail", "--type", "customer.*")
    lines: list[str] = []
    try:
        assert tail.stderr is not None and tail.stdout is not None
        assert "Waiting for events on customer_events" in tail.stderr.readline()
        reader = threading.Thread(target=lambda: lines.extend(tail.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        customer_id = create_customer(stack, 1)

        def printed() -> dict[str, Any] | None:
            envelopes = [json.loads(line) for line in list(lines)]  # one JSON line per event
            return next((e for e in envelopes if e["data"].get("customer_id") == customer_id), None)

        envelope = wait_until(printed, timeout=30, what="events_tail to print the event")
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(15) == 0
    finally:
        tail.kill()
    assert envelope["event_type"] == "customer.created"
    assert envelope["tenant_id"] == "demo-market"
    assert {"event_id", "occurred_at", "version"} <= envelope.keys()
    assert all(json.loads(line)["event_type"].startswith("customer.") for line in lines)
    wait_until(lambda: stack.backlog() == 0, timeout=30, what="the outbox backlog to return to 0")
    # it removed its queue from the exchange when it stopped
    bindings = redis.Redis.from_url(stack.state()["CELERY_BROKER_URL"]).smembers(
        "_kombu.binding.customer_events"
    )
    assert not [b for b in bindings if b"events-tail." in b]


def test_manage_py_finds_the_running_embedded_servers(stack: Stack) -> None:
    command = stack.manage("rfm_recompute", "--tenant", "demo-market")
    _, err = command.communicate(timeout=120)
    assert command.returncode == 0, err
    assert "zenlogic_app" not in err  # no `role "zenlogic_app" does not exist`


def test_a_worker_killed_with_sigkill_comes_back_and_consumes(stack: Stack) -> None:
    worker = stack.child("worker")
    pool = worker.children()
    assert pool, "the worker has its pool processes"
    worker.kill()
    wait_until(
        lambda: "worker exited unexpectedly (killed by SIGKILL); restarting it" in stack.output(),
        timeout=15,
        what="the supervisor to notice",
    )
    new = wait_until(
        lambda: next((p for p in stack.supervisor().children() if "worker" in p.cmdline()), None),
        timeout=30,
        what="the worker to be restarted",
    )
    assert new.pid != worker.pid
    _, alive = psutil.wait_procs(pool, timeout=10)
    assert not alive, "the killed worker's pool processes are gone"
    # consuming: the new worker relays the event of this write (nobody else executes tasks)
    create_customer(stack, 2)
    wait_until(lambda: stack.backlog() == 0, timeout=60, what="the restarted worker to relay the event")
    assert stack.process.poll() is None and stack.health() == 200


def readme_grpc_script() -> str:
    """The Python script the README gives for calling gRPC with only the project's virtualenv."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(".venv/bin/python - <<'EOF'\n") + len(".venv/bin/python - <<'EOF'\n")
    return readme[start : readme.index("\nEOF\n", start)]


def test_the_readme_grpc_example_runs_with_only_the_virtualenv(stack: Stack) -> None:
    env = {**stack.env, "GRPC_ADDRESS": f"localhost:{stack.grpc}"}
    token = subprocess.run(
        [PYTHON, "manage.py", "issue_token", "--tenant", "demo-market"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    result = subprocess.run(
        [PYTHON, "-"],
        input=readme_grpc_script(),
        cwd=ROOT,
        env={**env, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "health SERVING"
    assert "Ana Pérez" in lines[1]
    assert re.fullmatch(r"earned [1-9]\d* balance [1-9]\d*", lines[2]), lines[2]
    assert re.fullmatch(r"500 points are worth 5(\.0+)? CLP", lines[3]), lines[3]
    assert lines[4] == "NOT_FOUND customer_not_found"


def test_sigterm_to_the_process_group_lets_an_in_flight_grpc_call_finish(stack: Stack) -> None:
    import grpc
    import psycopg
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from zenlogic.customer.v1 import customer_service_pb2 as pb
    from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc

    state = stack.state()
    redis_port = int(state["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    everything = [stack.process, *psutil.Process(stack.process.pid).children(recursive=True)]
    servers = [
        p for p in psutil.process_iter(["name", "cwd"]) if p.info["name"] in ("postgres", "redis-server")
    ]
    ours = [p for p in servers if p.info["cwd"] and str(stack.data) in p.info["cwd"]]
    assert any(p.info["name"] == "postgres" for p in ours) and any(
        p.info["name"] == "redis-server" for p in ours
    )

    channel = grpc.insecure_channel(f"127.0.0.1:{stack.grpc}")
    stub = pb_grpc.CustomerServiceStub(channel)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

    # the call is slow because the table it reads is locked (as the embedded superuser, over the socket)
    lock = psycopg.connect(host=state["PGHOST"], port=state["PGPORT"], user="postgres", dbname="zenlogic")
    lock.execute("LOCK TABLE customers_customer IN ACCESS EXCLUSIVE MODE")
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            answer = stub.GetCustomer(
                pb.GetCustomerRequest(phone="9 6123 4567"),
                metadata=[("authorization", f"Bearer {stack.token()}")],
                timeout=30,
            )
            result["name"] = answer.display_name
        except grpc.RpcError as exc:
            result["error"] = (exc.code(), exc.details())

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1.0)  # the call is in the server, waiting for the lock
    os.killpg(stack.process.pid, signal.SIGTERM)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    time.sleep(1.0)
    lock.rollback()
    lock.close()
    caller.join(30)
    assert result == {"name": "Ana Pérez"}, result
    channel.close()

    assert stack.process.wait(60) == 0, stack.output()[-5000:]
    out = stack.output()
    assert out.count("[run] received SIGTERM; stopping gracefully") == 1
    assert "stopping now" not in out and "killing" not in out
    _, left = psutil.wait_procs([*everything, *ours], timeout=10)
    assert not left, [p.pid for p in left]
    assert not (stack.data / "pg" / "postmaster.pid").exists()
    assert not list((stack.data / "redis").glob("*.pid"))
    assert not list((stack.data / "redis").glob("*.sock"))
    assert not (stack.data / "embedded.json").exists()
    assert not port_open(redis_port)
