"""The gRPC server: `zenlogic.customer.v1.CustomerService`, the standard health service and server reflection.

`CustomerService` combines the servicer of each app (customers, loyalty, credit, segmentation); each method goes
through `core.rpc.rpc_method` (authentication, scopes, tenant transaction, error map, metrics), and the server
refuses to start if one does not.

Python runs one thread at a time, so one process serves about one core's worth of calls; the port is opened
with SO_REUSEPORT so that several processes (`grpcserver --processes N`) share it and the kernel spreads the
connections. Each worker thread holds its own database connection: `worker_count` keeps the pool within what
PostgreSQL still accepts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from django.db import connection
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.rpc import is_rpc_method, request_deserializer
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
    """The contract's six methods, one servicer per app combined."""

    rpc_service_name = SERVICE_NAME


def method_handlers(servicer: Any) -> dict[str, grpc.RpcMethodHandler]:
    """The service's handlers, built from the descriptor. A request that cannot be parsed reaches the method as
    `MalformedRequest` (answered INVALID_ARGUMENT) instead of grpcio's INTERNAL."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE_DESCRIPTOR.methods:
        behaviour = getattr(servicer, method.name, None)
        if behaviour is None or not is_rpc_method(behaviour):
            raise TypeError(
                f"{SERVICE_NAME}/{method.name} is missing or not decorated with core.rpc.rpc_method"
            )
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            behaviour,
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


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    max_workers: int
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None) -> None:
        """Stop accepting calls (health says NOT_SERVING), let in-flight ones finish within `grace` seconds."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self.server.wait_for_termination(timeout))


def build_server(
    *,
    bind: str = "[::]",
    port: int = 50007,
    max_workers: int = 8,
    servicer: Any | None = None,
    extra_options: Sequence[tuple[str, Any]] = (),
) -> GrpcServer:
    """A server for the customer service on `bind:port` (port 0: any free port; see `.port`), not yet started."""
    from concurrent import futures

    options = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        *extra_options,
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-worker"),
        options=options,
    )
    handlers = method_handlers(servicer if servicer is not None else CustomerService())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )

    bound = server.add_insecure_port(f"{bind}:{port}")
    if bound == 0:
        raise OSError(f"Could not bind the gRPC server to {bind}:{port}")
    return GrpcServer(server=server, port=bound, health=health_servicer, max_workers=max_workers)
