"""Idle and anonymous callers cannot starve the gRPC server; a full server refuses at once instead of queueing.

The idle calls are written as raw HTTP/2: a HEADERS frame that opens a call to GetCustomer and no DATA frame, so the
request message never arrives (what a slow or hostile client does; grpcio's own clients always send it).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from tests.grpc.conftest import Client, by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, HEADERS = 0x4, 0x1
END_HEADERS, ACK = 0x4, 0x1


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _length(value: int) -> bytes:
    """An HPACK string length: 7-bit prefix, no Huffman (RFC 7541 5.1)."""
    if value < 127:
        return bytes([value])
    out, value = [127], value - 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def _literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, with a new name (RFC 7541 6.2.2)."""
    encoded_name, encoded_value = name.encode(), value.encode()
    return b"\x00" + _length(len(encoded_name)) + encoded_name + _length(len(encoded_value)) + encoded_value


def _call_headers(port: int, token: str | None) -> bytes:
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/zenlogic.customer.v1.CustomerService/GetCustomer"),
        (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if token is not None:
        fields.append(("authorization", f"Bearer {token}"))
    return b"".join(_literal(name, value) for name, value in fields)


def open_idle_calls(port: int, *, calls: int, token: str | None) -> socket.socket:
    """One HTTP/2 connection with `calls` calls opened (HEADERS without END_STREAM) whose message never comes."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(PREFACE + _frame(SETTINGS, 0, 0))
    conn.recv(65536)  # the server's SETTINGS
    conn.sendall(_frame(SETTINGS, ACK, 0))
    headers = _call_headers(port, token)
    conn.sendall(b"".join(_frame(HEADERS, END_HEADERS, 2 * n + 1, headers) for n in range(calls)))
    return conn


@pytest.fixture
def idle_sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for conn in opened:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_idle_calls_and_anonymous_connections_do_not_starve_the_server(
    grpc_server: Any, grpc_a: Client, customer_a: Any, make_token: Any, tenant_a: Any, idle_sockets: list
) -> None:
    token = make_token(tenant_a)
    # 200 authenticated calls that never send their message, 50 to a connection (more than the 16 threads and
    # 64 waiting places of the test server) ...
    for _ in range(4):
        idle_sockets.append(open_idle_calls(grpc_server.port, calls=50, token=token))
    # ... and 200 connections, each with a call without a token that never sends its message either
    for _ in range(200):
        idle_sockets.append(open_idle_calls(grpc_server.port, calls=1, token=None))
    time.sleep(0.5)  # let the server take them all in

    for _ in range(50):
        started = time.monotonic()
        answer = grpc_a.GetCustomer(by_id(customer_a), timeout=1)
        assert answer.customer_id == str(customer_a.id)
        assert time.monotonic() - started < 1


@pytest.fixture
def small_server() -> Iterator[Any]:
    from config.grpc_server import build_server

    server = build_server(bind="127.0.0.1", port=0, max_workers=2, max_queued=1)
    server.start()
    yield server
    server.stop(0)


@pytest.mark.django_db(transaction=True)
def test_a_full_server_refuses_at_once_and_still_refuses_anonymous_calls(
    small_server: Any, customer_a: Any, make_token: Any, tenant_a: Any, monkeypatch: Any
) -> None:
    import customer360.rpc

    release = threading.Event()
    entered = threading.Semaphore(0)
    real = customer360.rpc.customer_snapshot_get

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.release()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(customer360.rpc, "customer_snapshot_get", held)
    channel = grpc.insecure_channel(f"127.0.0.1:{small_server.port}")
    client, anonymous = Client(channel, make_token(tenant_a)), Client(channel, None)
    outside = ThreadPoolExecutor(max_workers=3)
    try:
        # both threads busy inside the database transaction, one more call waiting for a thread: full
        holding = [outside.submit(client.GetCustomer, by_id(customer_a), timeout=30) for _ in range(3)]
        for _ in range(2):
            assert entered.acquire(timeout=10)
        time.sleep(0.3)  # the third call reaches its waiting place

        started = time.monotonic()
        busy = client.fails("GetCustomer", by_id(customer_a))
        assert (busy.code, busy.error_code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "server_busy")
        assert time.monotonic() - started < 1

        # refused from its metadata, without a thread of the (full) database pool
        started = time.monotonic()
        refused = anonymous.fails("GetCustomer", by_id(customer_a))
        assert (refused.code, refused.error_code) == (grpc.StatusCode.UNAUTHENTICATED, "missing_token")
        bad = Client(channel, "not-a-jwt").fails("GetCustomer", by_id(customer_a))
        assert (bad.code, bad.error_code) == (grpc.StatusCode.UNAUTHENTICATED, "invalid_token")
        assert time.monotonic() - started < 1
    finally:
        release.set()
        answers = [future.result(timeout=30) for future in holding]
        outside.shutdown()
    assert {answer.customer_id for answer in answers} == {str(customer_a.id)}
    again = client.GetCustomer(by_id(customer_a), timeout=5)  # the slots are given back
    channel.close()
    assert again.customer_id == str(customer_a.id)


@pytest.mark.django_db(transaction=True)
def test_a_call_that_ends_without_its_message_is_invalid_argument(
    grpc_server: Any, make_token: Any, tenant_a: Any
) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}")
    no_message = channel.stream_unary(
        "/zenlogic.customer.v1.CustomerService/GetCustomer",
        request_serializer=pb.GetCustomerRequest.SerializeToString,
        response_deserializer=pb.Customer.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        no_message(iter(()), metadata=[("authorization", f"Bearer {make_token(tenant_a)}")], timeout=5)
    channel.close()
    error: Any = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(error.trailing_metadata())["error-code"] == "malformed_request"
