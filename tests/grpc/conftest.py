"""A real gRPC server on an ephemeral port, in a thread of the test process, and clients that call it.

The server's worker threads open their own database connections, so tests that call it need committed data:
mark them `@pytest.mark.django_db(transaction=True)` (pytest-django's normal test transaction is invisible to
other connections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from zenlogic.customer.v1 import customer_service_pb2 as pb
from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc


@pytest.fixture(scope="session")
def grpc_server() -> Iterator[Any]:
    from config.grpc_server import build_server

    # more threads than the 50 concurrent calls of the concurrency tests is not needed: extra calls queue (room
    # for all of them, so none is refused as RESOURCE_EXHAUSTED)
    server = build_server(bind="127.0.0.1", port=0, max_workers=16, max_queued=64)
    server.start()
    yield server
    server.stop(0)


@pytest.fixture(scope="session")
def grpc_channel(grpc_server: Any) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}")
    yield channel
    channel.close()


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    error_code: str
    trailers: dict[str, str]


class Client:
    """Calls CustomerService with `authorization: Bearer <token>` (no header at all when token is None)."""

    def __init__(self, channel: grpc.Channel, token: str | None, authorization: str | None = None) -> None:
        self.stub = pb_grpc.CustomerServiceStub(channel)
        self.metadata: list[tuple[str, str]] = []
        if authorization is not None:
            self.metadata.append(("authorization", authorization))
        elif token is not None:
            self.metadata.append(("authorization", f"Bearer {token}"))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", 30)
            return method(request, metadata=[*self.metadata, *kwargs.pop("metadata", [])], **kwargs)

        return call

    def fails(self, name: str, request: Any) -> Failure:
        """Call `name`, expect an error, return its status, message and trailing `error-code`."""
        with pytest.raises(grpc.RpcError) as info:
            getattr(self, name)(request)
        error: Any = info.value
        trailers = {key: value for key, value in (error.trailing_metadata() or ())}
        return Failure(error.code(), error.details() or "", trailers.get("error-code", ""), trailers)


@pytest.fixture
def grpc_for(grpc_channel: grpc.Channel, make_token: Callable[..., str]) -> Callable[..., Client]:
    """`grpc_for(tenant, scopes=None)`: a client with a token of that tenant (all scopes by default)."""

    def _client(tenant: Any, scopes: list[str] | None = None) -> Client:
        return Client(grpc_channel, make_token(tenant, scopes))

    return _client


@pytest.fixture
def grpc_a(grpc_for: Callable[..., Client], tenant_a: Any) -> Client:
    return grpc_for(tenant_a)


@pytest.fixture
def grpc_b(grpc_for: Callable[..., Client], tenant_b: Any) -> Client:
    return grpc_for(tenant_b)


@pytest.fixture
def anonymous(grpc_channel: grpc.Channel) -> Client:
    return Client(grpc_channel, None)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with an empty customer cache (tenants and customer ids repeat across tests)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def by_id(customer: Any) -> pb.GetCustomerRequest:
    return pb.GetCustomerRequest(customer_id=str(customer.id))
