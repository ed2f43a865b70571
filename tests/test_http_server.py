# ruff: noqa: S603, S310  (the test runs the service's own web command and calls it on localhost)
"""The production HTTP server keeps answering while slow clients hold connections open.

The Procfile's `web` command runs as written (on a free port, against the test database), 50 clients trickle
a byte a second (25 with a request line and never-ending headers, 25 with a body of Content-Length 1000), and
meanwhile 20 sequential `GET /health` must each answer within 2 s. A thread-per-connection server with a fixed
number of threads (gunicorn's sync or gthread workers) fails this: the slow clients take every thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.run import process_specs
from tests.waiting import stop_process_group, wait_until

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent
SLOW_HEADERS = 25
SLOW_BODIES = 25
FAST_REQUESTS = 20
FAST_DEADLINE = 2.0  # seconds each fast request may take


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} process in the Procfile")


def health(port: int, timeout: float) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@contextlib.contextmanager
def procfile_web(log: Path, **extra_env: str) -> Iterator[int]:
    """The Procfile's web process on a free port; yields the port once /health answers 200."""
    port = free_port()
    env = dict(os.environ)
    env.update(extra_env)
    env.update(
        HTTP_PORT=str(port),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    with log.open("wb") as out:
        # the Procfile line as a process manager runs it: through a shell, which expands ${VAR:-default}
        process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {procfile_command('web')}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the web process exited ({process.returncode}):\n{log.read_text()[-5000:]}")
        try:
            return health(port, timeout=2) == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.5, what="the web process to serve /health")
        yield port
    finally:
        stop_process_group(process, grace=30)


@pytest.fixture
def test_database(django_db_setup: None) -> str:
    """The test database's URL: the web process's /health needs a migrated database."""
    from tests.events.conftest import database_url_for_tests

    return database_url_for_tests()


@pytest.fixture
def web(tmp_path: Path, test_database: str) -> Iterator[int]:
    with procfile_web(tmp_path / "web.log", DATABASE_URL=test_database) as port:
        yield port


class SlowClients:
    """Connections that send their request one byte a second, in a thread of their own."""

    def __init__(self, port: int) -> None:
        self.sockets: list[socket.socket] = []
        self.sent = 0
        self.closed_by_server = 0
        self.stop = threading.Event()
        for i in range(SLOW_HEADERS):
            # a request line and a first header, then a header that never ends
            self.sockets.append(self.open(port, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: "))
        for _ in range(SLOW_BODIES):
            # complete headers announcing 1000 bytes of a form body (Django's CSRF check reads it)
            head = (
                "POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            )
            self.sockets.append(self.open(port, head))
        self.thread = threading.Thread(target=self.trickle, daemon=True)

    @staticmethod
    def open(port: int, start: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(start.encode())
        return sock

    def trickle(self) -> None:
        open_ = list(self.sockets)
        while not self.stop.wait(1.0):
            for sock in list(open_):
                try:
                    sock.sendall(b"a")
                    self.sent += 1
                except OSError:
                    self.closed_by_server += 1
                    open_.remove(sock)

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_starve_other_requests(web: int) -> None:
    with SlowClients(web) as slow:
        time.sleep(3)  # every slow connection accepted and trickling
        assert slow.sent >= SLOW_HEADERS + SLOW_BODIES, "the slow clients did not get going"
        timings = []
        for _ in range(FAST_REQUESTS):
            started = time.monotonic()
            try:
                status = health(web, timeout=FAST_DEADLINE)
            except OSError as error:  # socket.timeout, reset: the server did not answer in time
                status = f"{type(error).__name__}: {error}"
            timings.append((status, round(time.monotonic() - started, 3)))
        answered = [t for t in timings if t[0] == 200 and t[1] < FAST_DEADLINE]
        assert len(answered) == FAST_REQUESTS, f"while 50 clients trickled: {timings}"


def test_make_run_starts_the_same_web_server_as_the_procfile() -> None:
    """`make run` (config/run.py) and the Procfile must not drift apart on how the web server is run."""
    web = next(spec for spec in process_specs({}, set()) if spec.name == "web").argv
    procfile = shlex.split(procfile_command("web"))
    for option in ("--worker-class", "--worker-connections"):
        assert option in procfile, f"the Procfile's web command has no {option}"
        value = procfile[procfile.index(option) + 1]
        assert option in web, f"config/run.py's web command has no {option}"
        run_value = web[web.index(option) + 1]
        assert re.sub(r"\$\{\w+:-(\w+)\}", r"\1", value) == run_value, (option, value, run_value)


class SlowAuthService:
    """A real gRPC Auth Service that takes a second to refuse each token."""

    def VerifyToken(self, request, context):
        from zenlogic.auth.v1 import auth_service_pb2

        time.sleep(1.0)
        return auth_service_pb2.VerifyTokenResponse(valid=False, reason="revoked")


def test_a_slow_auth_service_call_does_not_stall_the_other_requests_of_a_web_worker(
    tmp_path: Path, test_database: str
) -> None:
    """With AUTH_VERIFIER=grpc each REST request waits for the Auth Service; under gevent workers grpcio must
    yield while it waits, or one worker answers its requests one after another."""
    from concurrent import futures

    import grpc

    from zenlogic.auth.v1 import auth_service_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(SlowAuthService(), server)
    auth_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {
            "AUTH_VERIFIER": "grpc",
            "AUTH_GRPC_ADDRESS": f"127.0.0.1:{auth_port}",
            "AUTH_GRPC_TIMEOUT": "10",
            "WEB_CONCURRENCY": "1",  # one worker: every request below lands on it
            "DATABASE_URL": test_database,
        }
        with procfile_web(tmp_path / "web.log", **env) as port:

            def call(i: int) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/customers/",
                    headers={"Authorization": f"Bearer token-{i}"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=20) as response:
                        return int(response.status)
                except urllib.error.HTTPError as error:
                    return error.code

            started = time.monotonic()
            with futures.ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(call, range(8)))
            took = time.monotonic() - started
    finally:
        server.stop(0)
    assert statuses == [401] * 8
    assert took < 4.0, f"8 concurrent requests, each waiting 1 s for the Auth Service, took {took:.1f} s"
