"""Which gRPC server (not a test): grpcio's thread-pool server against the asyncio one, in the same run.

    DATABASE_URL=... [REDIS_URL=...] .venv/bin/python bench/grpc_server_choice.py [--seconds 10] [--clients 8]
        [--workers 8] [--customers 2000] [--idle 200]

Both serve the same `CustomerService` (every method through `core.rpc.rpc_method`) with `--workers` threads, each in
a process of its own with DEBUG off: `sync` is the former server (`grpc.server` with a thread pool, unary
handlers), `aio` is the one `grpcserver` runs (`config.grpc_server.build_server`). For each it prints calls/s, p50
and p99 of GetCustomer by phone, cached (`--clients` client threads for `--seconds`), then opens `--idle`
authenticated calls that never send their message plus `--idle` connections with a call without a token (raw
HTTP/2), and counts how many of 20 GetCustomer calls still answer within 1 s.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import grpc_bench  # noqa: E402 - after the path is set

GET_CUSTOMER = "/zenlogic.customer.v1.CustomerService/GetCustomer"


def serve(kind: str, port: int, workers: int) -> None:
    import data

    data.setup_django()
    from concurrent import futures

    import grpc

    from config.grpc_server import SERVICE_NAME, CustomerService, build_server, method_handlers

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if kind == "sync":
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers), options=[("grpc.so_reuseport", 1)]
        )
        handlers = method_handlers(CustomerService())
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        while not stop.wait(0.5):
            pass
        server.stop(1).wait()
    else:
        aio = build_server(bind="127.0.0.1", port=port, max_workers=workers)
        aio.start()
        while not stop.wait(0.5):
            pass
        aio.stop(1)


# --- raw HTTP/2: a call opened (HEADERS) whose message (DATA) never comes -----------------------------------------
def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _length(value: int) -> bytes:
    if value < 127:
        return bytes([value])
    out, value = [127], value - 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def open_idle_calls(port: int, calls: int, token: str | None) -> socket.socket:
    fields = [
        (":method", "POST"), (":scheme", "http"), (":path", GET_CUSTOMER), (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ]  # fmt: skip
    if token:
        fields.append(("authorization", f"Bearer {token}"))
    block = b"".join(
        b"\x00" + _length(len(n.encode())) + n.encode() + _length(len(v.encode())) + v.encode()
        for n, v in fields
    )
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(0x4, 0, 0))
    conn.recv(65536)
    conn.sendall(_frame(0x4, 0x1, 0))
    conn.sendall(b"".join(_frame(0x1, 0x4, 2 * n + 1, block) for n in range(calls)))
    return conn


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers)
        return 0

    import data

    data.setup_django()
    import grpc
    from django.core.management import call_command

    from core.auth import SCOPES, issue_dev_token
    from zenlogic.customer.v1 import customer_service_pb2 as pb
    from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc

    call_command("migrate", verbosity=0)
    people = data.customers_load(args.customers)
    data.accounts_ensure([pk for pk, _ in people])
    phones = [phone for _, phone in people[:500]]
    token = issue_dev_token(tenant=grpc_bench.TENANT, user_id="bench", scopes=list(SCOPES), ttl_seconds=3600)
    metadata = [("authorization", f"Bearer {token}")]
    probe = pb.GetCustomerRequest(phone=phones[0]).SerializeToString()
    print(f"{args.clients} clients, {args.workers} worker threads, {args.seconds:.0f} s, GetCustomer cached")
    print(f"{'server':<8} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}   with idle calls")
    for kind in ("sync", "aio"):
        port = grpc_bench.free_port()
        proc = grpc_bench.start(
            [sys.executable, __file__, "--serve", kind, "--port", str(port), "--workers", str(args.workers)],
            env={"CACHE_KEY_PREFIX": f"choice-{uuid.uuid4().hex[:8]}"},
        )
        sockets: list[socket.socket] = []
        try:
            grpc_bench.wait_ready(port, GET_CUSTOMER, probe, metadata)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as warm:
                stub = pb_grpc.CustomerServiceStub(warm)
                for phone in phones:
                    stub.GetCustomer(pb.GetCustomerRequest(phone=phone), metadata=metadata, timeout=10)

            def make(index: int, port: int = port) -> object:
                stub = pb_grpc.CustomerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
                return lambda: stub.GetCustomer(
                    pb.GetCustomerRequest(phone=random.choice(phones)), metadata=metadata, timeout=10
                )

            result = grpc_bench.run_load(kind, args.clients, args.seconds, make)  # type: ignore[arg-type]

            for _ in range(max(args.idle // 50, 1)):
                sockets.append(open_idle_calls(port, min(args.idle, 50), token))
            for _ in range(args.idle):
                sockets.append(open_idle_calls(port, 1, None))
            time.sleep(0.5)
            answered = 0
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.CustomerServiceStub(channel)
                for phone in phones[:20]:
                    try:
                        stub.GetCustomer(pb.GetCustomerRequest(phone=phone), metadata=metadata, timeout=1)
                        answered += 1
                    except grpc.RpcError:
                        pass
            print(
                f"{kind:<8} {result.rate:>8.0f} {result.pct(0.5):>8.2f} {result.pct(0.99):>8.2f} "
                f"{result.errors:>6}   {answered}/20 answered within 1 s beside {args.idle} idle calls "
                f"and {args.idle} anonymous connections",
                flush=True,
            )
        finally:
            for conn in sockets:
                conn.close()
            grpc_bench.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
