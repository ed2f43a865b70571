"""`manage.py grpcserver` as a real process: it serves, and on SIGTERM it stops accepting calls, lets the call in
flight finish and exits 0 (alone, and as several processes sharing the port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from django.db import connection, transaction
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL (host, or Unix socket in its query for the embedded PostgreSQL) pointed at the test database."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


test_database_url.__test__ = False  # type: ignore[attr-defined]


def start_server(port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), "GRPC_METRICS_PORT": "0"}
    env.pop("REDIS_URL", None)  # the child's own local-memory cache: nothing shared with other tests
    return subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "grpcserver", "--bind", "127.0.0.1", "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def health_status(port: int) -> int | None:
    """SERVING / NOT_SERVING, or None when the server refuses or does not answer."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return (
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
            )
        except grpc.RpcError:
            return None


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def output_of(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.kill()
    return (proc.communicate()[0] or b"").decode(errors="replace")[-3000:]


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        # pg_stat_activity keeps one snapshot for the whole transaction unless told to take a new one
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def test_sigterm_stops_accepting_and_lets_the_call_in_flight_finish(customer_a, make_token):
    port = free_port()
    proc = start_server(port, "--grace", "30", "--max-workers", "4")
    try:
        wait_for(lambda: health_status(port) == health_pb2.HealthCheckResponse.SERVING, "the server to serve")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.CustomerServiceStub(channel)
        metadata = [("authorization", f"Bearer {make_token(customer_a.tenant_id)}")]
        with transaction.atomic():
            # The call reads the customers table: while this lock is held, it stays in flight.
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE customers_customer IN ACCESS EXCLUSIVE MODE")
            in_flight = stub.GetCustomer.future(by_id(customer_a), metadata=metadata, timeout=60)
            wait_for(lambda: waiting_on_a_lock() or in_flight.done(), "the call to wait for the lock")
            assert not in_flight.done(), in_flight.exception()
            proc.send_signal(signal.SIGTERM)
            wait_for(
                lambda: health_status(port) != health_pb2.HealthCheckResponse.SERVING,
                "the server to stop accepting calls",
            )
            assert not in_flight.done()
            assert proc.poll() is None  # still running: waiting for the call
        assert in_flight.result().customer_id == str(customer_a.id)
        assert proc.wait(timeout=30) == 0, output_of(proc)
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_several_processes_share_the_port_and_stop_together(customer_a, make_token):
    port = free_port()
    proc = start_server(port, "--processes", "2", "--max-workers", "2", "--grace", "5")
    try:
        wait_for(
            lambda: health_status(port) == health_pb2.HealthCheckResponse.SERVING, "the servers to serve"
        )
        metadata = [("authorization", f"Bearer {make_token(customer_a.tenant_id)}")]
        for _ in range(4):  # a new connection each time: the kernel spreads them over the processes
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = pb_grpc.CustomerServiceStub(channel).GetCustomer(
                    by_id(customer_a), metadata=metadata, timeout=10
                )
            assert answer.customer_id == str(customer_a.id)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, output_of(proc)
        assert health_status(port) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
