"""Client of the Order Service's `GetOrdersByCustomer` (feeds the purchase-history backfill).

    client = OrderServiceClient(settings.ORDER_SERVICE_GRPC_ADDRESS)
    orders, next_page = client.orders_by_customer("acme", customer_id, "")
    for order in client.iter_orders("acme", customer_id): ...

Each attempt has a deadline; `UNAVAILABLE` is retried with exponential backoff and jitter. When the service stays
down (or times out) the call raises `OrderServiceUnavailable`; any other failure, including a malformed answer,
raises `OrderServiceFailed`. Both are `core.errors.ServiceUnavailable` (HTTP 503 / gRPC UNAVAILABLE at our doors).
A customer the Order Service does not know has no orders.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import grpc
from django.utils.translation import gettext_noop

from core.errors import ServiceUnavailable
from core.logs import request_id_var
from zenlogic.order.v1 import order_service_pb2, order_service_pb2_grpc


class OrderServiceUnavailable(ServiceUnavailable):
    code = "order_service_unavailable"
    message = gettext_noop("The Order Service is unavailable.")


class OrderServiceFailed(ServiceUnavailable):
    code = "order_service_failed"
    message = gettext_noop("The Order Service refused the request or answered something unreadable.")


@dataclass(frozen=True)
class OrderItem:
    sku: str
    category: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    customer_id: str
    total_amount: Decimal
    currency: str
    completed_at: datetime
    channel: str
    status: str
    store_id: str
    items: tuple[OrderItem, ...]

    def item_dicts(self) -> list[dict[str, Any]]:
        """The items as `purchase_record(items=...)` and `order.completed` events carry them."""
        return [
            {"sku": i.sku, "category": i.category, "quantity": i.quantity, "unit_price": i.unit_price}
            for i in self.items
        ]


def _decimal(value: str, what: str) -> Decimal:
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise OrderServiceFailed(f"The Order Service sent a malformed {what}: {value!r}.") from exc
    if not number.is_finite():
        raise OrderServiceFailed(f"The Order Service sent a malformed {what}: {value!r}.")
    return number


def _datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise OrderServiceFailed(f"The Order Service sent a malformed completed_at: {value!r}.") from exc
    if moment.tzinfo is None:
        raise OrderServiceFailed(f"The Order Service sent completed_at without a time zone: {value!r}.")
    return moment


def order_record(order: order_service_pb2.Order) -> OrderRecord:
    return OrderRecord(
        order_id=order.order_id,
        customer_id=order.customer_id,
        total_amount=_decimal(order.total_amount, "total_amount"),
        currency=order.currency.upper(),
        completed_at=_datetime(order.completed_at),
        channel=order.channel,
        status=order.status,
        store_id=order.store_id,
        items=tuple(
            OrderItem(
                sku=item.sku,
                category=item.category,
                quantity=_decimal(item.quantity, "quantity"),
                unit_price=_decimal(item.unit_price, "unit_price"),
            )
            for item in order.items
        ),
    )


class OrderServiceClient:
    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 5.0,
        max_attempts: int = 4,
        initial_backoff: float = 0.2,
        max_backoff: float = 3.0,
        token: str | None = None,
        channel: grpc.Channel | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if address is None and channel is None:
            from django.conf import settings

            address = settings.ORDER_SERVICE_GRPC_ADDRESS
        self.address = address or ""
        self.timeout = timeout
        self.max_attempts = max(max_attempts, 1)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.token = token
        self._sleep = sleep
        # Retries are ours (below), so grpc's own transparent retries are switched off.
        self._channel = channel or grpc.insecure_channel(self.address, options=[("grpc.enable_retries", 0)])
        self._stub = order_service_pb2_grpc.OrderServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> OrderServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _metadata(self) -> list[tuple[str, str]]:
        metadata = []
        if self.token:
            metadata.append(("authorization", f"Bearer {self.token}"))
        request_id = request_id_var.get()
        if request_id and request_id != "-":
            metadata.append(("x-request-id", request_id))
        return metadata

    def _backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to initial * 2**attempt, capped."""
        return random.uniform(0, min(self.max_backoff, self.initial_backoff * (2**attempt)))

    def orders_by_customer(
        self, tenant: Any, customer_id: UUID | str, page_token: str = "", *, page_size: int = 100
    ) -> tuple[list[OrderRecord], str]:
        """One page of the customer's orders and the token of the next page ('' after the last)."""
        request = order_service_pb2.GetOrdersByCustomerRequest(
            tenant_id=tenant if isinstance(tenant, str) else tenant.slug,
            customer_id=str(customer_id),
            page_size=page_size,
            page_token=page_token,
        )
        last_error: grpc.RpcError | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(self._backoff(attempt - 1))
            try:
                response = self._stub.GetOrdersByCustomer(
                    request, timeout=self.timeout, metadata=self._metadata()
                )
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code == grpc.StatusCode.UNAVAILABLE:
                    last_error = exc
                    continue
                if code == grpc.StatusCode.NOT_FOUND:
                    return [], ""
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise OrderServiceUnavailable(
                        f"The Order Service did not answer within {self.timeout} s.",
                        address=self.address,
                        status="DEADLINE_EXCEEDED",
                    ) from exc
                raise OrderServiceFailed(
                    f"The Order Service answered {code.name if code else 'an error'}: {_details(exc)}",
                    address=self.address,
                    status=code.name if code else "",
                ) from exc
            return [order_record(order) for order in response.orders], response.next_page_token
        raise OrderServiceUnavailable(
            f"The Order Service is unavailable after {self.max_attempts} attempts: {_details(last_error)}",
            address=self.address,
            status="UNAVAILABLE",
            attempts=self.max_attempts,
        )

    def iter_orders(
        self, tenant: Any, customer_id: UUID | str, *, page_size: int = 100, max_pages: int = 10_000
    ) -> Iterator[OrderRecord]:
        """Every order of the customer, page after page (stops if the service repeats a page token)."""
        token = ""
        seen: set[str] = set()
        for _ in range(max_pages):
            orders, token = self.orders_by_customer(tenant, customer_id, token, page_size=page_size)
            yield from orders
            if not token or token in seen:
                return
            seen.add(token)


def _details(error: grpc.RpcError | None) -> str:
    if error is None:
        return ""
    details = error.details() if hasattr(error, "details") else None
    return str(details or error)[:300]
