"""The gRPC server: `zenlogic.customer.v1.CustomerService`, the standard health service and server reflection.

`CustomerService` combines the servicer of each app (customers, loyalty, credit, segmentation); each method goes
through `core.rpc.rpc_method` (authentication, scopes, tenant transaction, error map, metrics), and the server
refuses to start if one does not.

Python runs one thread at a time, so one process serves about one core's worth of calls; the port is opened
with SO_REUSEPORT so that several processes (`grpcserver --processes N`) share it and the kernel spreads the
connections. The server is grpcio's asyncio server: a call waiting for its message holds no thread, its token is
checked from the metadata first, and the methods run in a pool of worker threads behind a bounded number of slots
(`core.rpc_gate`). Each worker thread holds its own database connection: `worker_count` keeps the pool within what
PostgreSQL still accepts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

import grpc
from django.db import connection
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as aio_health

from core.rpc import is_rpc_method, request_deserializer
from core.rpc_gate import CallGate
from core.rpc_reflection import enable_server_reflection
from credit.rpc import CreditRpc
from customer360.rpc import CustomerRpc
from loyalty.rpc import LoyaltyRpc
from segmentation.rpc import SegmentationRpc
from zenlogic.customer.v1 import customer_service_pb2 as pb

logger = logging.getLogger(__name__)

SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["CustomerService"]
SERVICE_NAME = SERVICE_DESCRIPTOR.full_name  # zenlogic.customer.v1.CustomerService
MAX_MESSAGE_BYTES = 1024 * 1024  # requests are small; bigger ones are refused before parsing


class CustomerService(CustomerRpc, LoyaltyRpc, CreditRpc, SegmentationRpc):
    """The contract's methods, one servicer per app combined."""

    rpc_service_name = SERVICE_NAME


def method_handlers(servicer: Any, gate: CallGate | None = None) -> dict[str, grpc.RpcMethodHandler]:
    """The service's handlers, built from the descriptor. A request that cannot be parsed reaches the method as
    `MalformedRequest` (answered INVALID_ARGUMENT) instead of grpcio's INTERNAL. With a `gate`, each method is
    served through it (`core.rpc_gate`: token from the metadata first, bounded slots, the database pool)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE_DESCRIPTOR.methods:
        behaviour = getattr(servicer, method.name, None)
        if behaviour is None or not is_rpc_method(behaviour):
            raise TypeError(
                f"{SERVICE_NAME}/{method.name} is missing or not decorated with core.rpc.rpc_method"
            )
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        if gate is None:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=request_deserializer(request_class),
                response_serializer=response_class.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                gate.serve(behaviour),
                request_deserializer=request_deserializer(request_class),
                response_serializer=response_class.SerializeToString,
            )
    return handlers


def worker_count(configured: int, *, processes: int = 1, reserve: int = 5) -> int:
    """`configured` threads, or fewer if PostgreSQL cannot give each thread of each process a connection.

    Counts the connections still free now (max_connections - superuser_reserved - open ones - `reserve` for
    migrations, the admin and psql) and divides them among the processes.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int, "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        )
        max_connections, reserved, in_use = cursor.fetchone()
    free = max(max_connections - reserved - in_use - reserve, 0)
    per_process = max(free // max(processes, 1), 1)
    workers = max(min(configured, per_process), 1)
    if workers < configured:
        logger.warning(
            "gRPC worker threads lowered from %s to %s: PostgreSQL has %s free connections for %s process(es)",
            configured,
            workers,
            free,
            processes,
        )
    return workers


# Connection limits: a peer is pinged after 60 s of silence and dropped if it does not answer in 20 s; a
# connection without calls is closed after 5 min, any connection after 30 min (its calls get 30 s more), so an idle
# or slow peer cannot keep one for ever. Pings without data are limited so a peer cannot make the server busy with
# them; one connection carries at most 100 calls at once.
CONNECTION_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.http2.max_pings_without_data", 2),
    ("grpc.max_connection_idle_ms", 300_000),
    ("grpc.max_connection_age_ms", 1_800_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    ("grpc.max_concurrent_streams", 100),
)


class GrpcServer:
    """A `grpc.aio` server run by an event loop in a thread of its own, driven from synchronous code."""

    def __init__(
        self,
        *,
        bind: str,
        port: int,
        max_workers: int,
        max_queued: int,
        servicer: Any,
        options: Sequence[tuple[str, Any]],
    ) -> None:
        self.max_workers = max_workers
        self.gate = CallGate(workers=max_workers, queued=max_queued)
        self._stopped = threading.Event()
        self._terminated = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()
        self.server: grpc.aio.Server
        self.health: aio_health.HealthServicer
        self.port: int = self._run(self._build(bind, port, servicer, options))

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _build(self, bind: str, port: int, servicer: Any, options: Sequence[tuple[str, Any]]) -> int:
        self.server = grpc.aio.server(options=options)
        handlers = method_handlers(servicer if servicer is not None else CustomerService(), self.gate)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        self.health = aio_health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), self.server
        )
        bound = self.server.add_insecure_port(f"{bind}:{port}")
        if bound == 0:
            raise OSError(f"Could not bind the gRPC server to {bind}:{port}")
        return bound

    async def _start(self) -> None:
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def _stop(self, grace: float | None) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    def start(self) -> None:
        self._run(self._start())

    def stop(self, grace: float | None) -> None:
        """Stop accepting calls (health says NOT_SERVING), let in-flight ones finish within `grace` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._run(self._stop(grace))
        finally:
            self.gate.shutdown()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._terminated.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the server stopped within `timeout` seconds."""
        return self._terminated.wait(timeout)


def build_server(
    *,
    bind: str = "[::]",
    port: int = 50007,
    max_workers: int = 8,
    max_queued: int | None = None,
    servicer: Any | None = None,
    extra_options: Sequence[tuple[str, Any]] = (),
) -> GrpcServer:
    """A server for the customer service on `bind:port` (port 0: any free port; see `.port`), not yet started.

    `max_workers` threads run the methods (each with a database connection); up to `max_queued` more calls wait for
    one (default: as many as the threads); beyond that a call is answered RESOURCE_EXHAUSTED at once.
    """
    options = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        *CONNECTION_OPTIONS,
        *extra_options,
    ]
    return GrpcServer(
        bind=bind,
        port=port,
        max_workers=max_workers,
        max_queued=max_workers if max_queued is None else max_queued,
        servicer=servicer,
        options=options,
    )
