"""`manage.py backfill_history` against a real gRPC server standing in for the Order Service."""

from __future__ import annotations

from concurrent import futures
from decimal import Decimal
from io import StringIO
from typing import Any

import grpc
import pytest
from django.core.management import CommandError, call_command

from customers.history import customer_metrics_get
from customers.models import Purchase
from zenlogic.order.v1 import order_service_pb2 as pb
from zenlogic.order.v1 import order_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.django_db


class FakeOrderService(pb_grpc.OrderServiceServicer):
    """Serves each customer's orders two per page, as a paginating Order Service would."""

    def __init__(self) -> None:
        self.orders: dict[str, list[pb.Order]] = {}
        self.requests: list[pb.GetOrdersByCustomerRequest] = []

    def add(self, customer_id: Any, order_id: str, total: str, day: int, status: str = "completed") -> None:
        self.orders.setdefault(str(customer_id), []).append(
            pb.Order(
                order_id=order_id,
                customer_id=str(customer_id),
                total_amount=total,
                currency="CLP",
                completed_at=f"2025-06-{day:02d}T10:00:00Z",
                channel="web",
                status=status,
                items=[pb.OrderItem(sku="SKU", category="c", quantity="1", unit_price=total)],
            )
        )

    def GetOrdersByCustomer(self, request: Any, context: Any) -> pb.GetOrdersByCustomerResponse:
        self.requests.append(request)
        orders = self.orders.get(request.customer_id, [])
        start = int(request.page_token or 0)
        page = orders[start : start + 2]
        next_token = str(start + 2) if start + 2 < len(orders) else ""
        return pb.GetOrdersByCustomerResponse(orders=page, next_page_token=next_token)


@pytest.fixture
def order_service() -> Any:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service = FakeOrderService()
    pb_grpc.add_OrderServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    service.address = f"127.0.0.1:{port}"
    yield service
    server.stop(None)


def backfill(*args: str) -> str:
    out = StringIO()
    call_command("backfill_history", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_backfill_records_past_orders_once_and_updates_the_metrics(
    order_service, in_tenant, tenant_a, customer_a, tenant_b, customer_b
):
    from tests.factories import CustomerFactory

    other = CustomerFactory(tenant=tenant_a)
    for n, total in enumerate(["100.00", "200.00", "300.00"], start=1):
        order_service.add(customer_a.id, f"A-{n}", total, day=n)
    order_service.add(customer_a.id, "A-X", "999.00", day=9, status="CANCELLED")
    order_service.add(other.id, "O-1", "50.00", day=3)

    summary = backfill("--tenant", tenant_a.slug, "--address", order_service.address)
    assert "customers: 2, orders: 5, recorded: 4, already recorded: 0, not a sale: 1" in summary
    # customer_a's 4 orders came in two pages
    assert [r.page_token for r in order_service.requests if r.customer_id == str(customer_a.id)] == ["", "2"]
    assert {r.tenant_id for r in order_service.requests} == {tenant_a.slug}
    with in_tenant(tenant_a):
        assert sorted(Purchase.objects.filter(customer=customer_a).values_list("source_id", flat=True)) == [
            "A-1",
            "A-2",
            "A-3",
        ]
        metrics = customer_metrics_get(customer_a)
    assert (metrics.order_count, metrics.lifetime_value) == (3, Decimal("600.00"))

    again = backfill("--tenant", tenant_a.slug, "--address", order_service.address)
    assert "recorded: 0, already recorded: 4" in again
    with in_tenant(tenant_a):
        assert Purchase.objects.count() == 4


def test_backfill_of_one_customer(order_service, in_tenant, tenant_a, customer_a):
    order_service.add(customer_a.id, "A-1", "10.00", day=1)
    assert "customers: 1, orders: 1, recorded: 1" in backfill(
        "--customer", str(customer_a.id), "--address", order_service.address
    )
    with pytest.raises(CommandError, match="No customer"):
        backfill("--customer", "00000000-0000-0000-0000-000000000000", "--address", order_service.address)


def test_an_unreachable_order_service_fails_the_command_without_recording_anything(
    in_tenant, tenant_a, customer_a
):
    with pytest.raises(CommandError, match="could not be backfilled"):
        backfill("--tenant", tenant_a.slug, "--address", "127.0.0.1:1")
    with in_tenant(tenant_a):
        assert not Purchase.objects.exists()
