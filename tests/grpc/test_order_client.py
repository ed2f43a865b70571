"""The Order Service client against a fake Order Service on a real port: pages, retries with backoff on
UNAVAILABLE, a clear error when the service is down, and malformed answers."""

from __future__ import annotations

import socket
import threading
import uuid
from concurrent import futures
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest

from customers.order_client import (
    OrderItem,
    OrderServiceClient,
    OrderServiceFailed,
    OrderServiceUnavailable,
)
from zenlogic.order.v1 import order_service_pb2 as opb
from zenlogic.order.v1 import order_service_pb2_grpc as opb_grpc

CUSTOMER = str(uuid.uuid4())


def order(n: int, **changes) -> opb.Order:
    fields = {
        "order_id": f"o-{n}",
        "customer_id": CUSTOMER,
        "total_amount": "1500.50",
        "currency": "clp",
        "completed_at": "2025-03-01T12:30:00Z",
        "channel": "web",
        "status": "completed",
        "items": [opb.OrderItem(sku="SKU-1", category="coffee", quantity="2", unit_price="750.25")],
    }
    return opb.Order(**{**fields, **changes})


class FakeOrderService(opb_grpc.OrderServiceServicer):
    """Three pages of orders; `fail_next` makes the next calls fail with a status; records what it received."""

    def __init__(self) -> None:
        self.fail_next: list[grpc.StatusCode] = []
        self.requests: list[tuple[opb.GetOrdersByCustomerRequest, dict[str, str]]] = []
        self.orders = [order(n) for n in range(5)]
        self.lock = threading.Lock()
        self.delay = 0.0

    def GetOrdersByCustomer(self, request, context):
        with self.lock:
            self.requests.append((request, dict(context.invocation_metadata())))
            failure = self.fail_next.pop(0) if self.fail_next else None
        if self.delay:
            threading.Event().wait(self.delay)
        if failure is not None:
            context.abort(failure, f"fake failure {failure.name}")
        start = int(request.page_token or 0)
        size = request.page_size or 2
        page = self.orders[start : start + size]
        following = start + size
        return opb.GetOrdersByCustomerResponse(
            orders=page, next_page_token=str(following) if following < len(self.orders) else ""
        )


@pytest.fixture
def fake():
    service = FakeOrderService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    opb_grpc.add_OrderServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    service.address = f"127.0.0.1:{port}"
    yield service
    server.stop(0)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(address: str, **kwargs) -> tuple[OrderServiceClient, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("timeout", 2.0)
    return OrderServiceClient(address, sleep=sleeps, **kwargs), sleeps


def test_a_page_of_orders_as_typed_records(fake):
    client, _ = client_for(fake.address, token="svc-token")
    orders, next_token = client.orders_by_customer("tenant-a", CUSTOMER, "", page_size=2)
    assert next_token == "2"
    first = orders[0]
    assert (first.order_id, first.customer_id, first.currency) == ("o-0", CUSTOMER, "CLP")
    assert first.total_amount == Decimal("1500.50")
    assert first.completed_at == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert first.items == (OrderItem("SKU-1", "coffee", Decimal("2"), Decimal("750.25")),)
    assert first.item_dicts() == [
        {"sku": "SKU-1", "category": "coffee", "quantity": Decimal("2"), "unit_price": Decimal("750.25")}
    ]
    request, metadata = fake.requests[0]
    assert (request.tenant_id, request.customer_id, request.page_size) == ("tenant-a", CUSTOMER, 2)
    assert metadata["authorization"] == "Bearer svc-token"


def test_iter_orders_follows_every_page(fake):
    client, _ = client_for(fake.address)
    assert [o.order_id for o in client.iter_orders("tenant-a", CUSTOMER, page_size=2)] == [
        f"o-{n}" for n in range(5)
    ]
    assert [r.page_token for r, _ in fake.requests] == ["", "2", "4"]


def test_unavailable_is_retried_with_growing_backoff(fake):
    fake.fail_next = [grpc.StatusCode.UNAVAILABLE] * 3
    client, sleeps = client_for(fake.address, max_attempts=4, initial_backoff=0.1, max_backoff=1.0)
    orders, _ = client.orders_by_customer("tenant-a", CUSTOMER)
    assert len(orders) == 5 and len(fake.requests) == 4
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= min(1.0, 0.1 * 2**attempt)


def test_still_unavailable_after_every_attempt_is_a_clear_error(fake):
    fake.fail_next = [grpc.StatusCode.UNAVAILABLE] * 10
    client, sleeps = client_for(fake.address, max_attempts=3)
    with pytest.raises(OrderServiceUnavailable) as info:
        client.orders_by_customer("tenant-a", CUSTOMER)
    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert info.value.code == "order_service_unavailable"
    assert info.value.details["attempts"] == 3


def test_a_service_that_is_down_raises_service_unavailable():
    from core.errors import ServiceUnavailable, mapping_for

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    client, sleeps = client_for(address, max_attempts=3)
    with pytest.raises(OrderServiceUnavailable) as info:
        client.orders_by_customer("tenant-a", CUSTOMER)
    assert isinstance(info.value, ServiceUnavailable) and len(sleeps) == 2
    assert mapping_for(info.value).grpc_status == grpc.StatusCode.UNAVAILABLE
    assert "unavailable after 3 attempts" in info.value.message


def test_a_slow_service_hits_the_deadline(fake):
    fake.delay = 1.0
    client, sleeps = client_for(fake.address, timeout=0.2)
    with pytest.raises(OrderServiceUnavailable, match="did not answer"):
        client.orders_by_customer("tenant-a", CUSTOMER)
    assert sleeps == []


def test_not_found_means_no_orders_and_other_errors_are_not_retried(fake):
    fake.fail_next = [grpc.StatusCode.NOT_FOUND]
    client, _ = client_for(fake.address)
    assert client.orders_by_customer("tenant-a", CUSTOMER) == ([], "")
    fake.fail_next = [grpc.StatusCode.PERMISSION_DENIED]
    with pytest.raises(OrderServiceFailed, match="PERMISSION_DENIED"):
        client.orders_by_customer("tenant-a", CUSTOMER)
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "bad",
    [{"total_amount": "lots"}, {"completed_at": "yesterday"}, {"completed_at": "2025-03-01T12:30:00"}],
)
def test_a_malformed_answer_is_a_clear_error(fake, bad):
    fake.orders = [order(1, **bad)]
    client, _ = client_for(fake.address)
    with pytest.raises(OrderServiceFailed, match=r"malformed|time zone"):
        client.orders_by_customer("tenant-a", CUSTOMER)
