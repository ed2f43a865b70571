"""A customer's purchase history and its aggregates: recorded from order/POS events and the backfill, read by
the REST API and the dashboard.

A purchase is recorded once per (tenant, source, source id); a replay returns the first record. The customer's
aggregates (order count, lifetime value, average order value, first/last purchase, purchase frequency) are
recomputed from the purchases under a lock of the metrics row, so events that arrive out of order or twice, and a
backfill that overlaps them, always leave the same figures. An anonymous sale has no customer: it counts only
toward the tenant's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext_noop

from core.errors import InvalidInput
from core.money import CENTS, check_currency
from core.tenancy import require_tenant_slug, tenant_cached
from customers.errors import InvalidCustomer
from customers.models import Customer, CustomerMetrics, Purchase, PurchaseItem, PurchaseSource

MAX_ITEMS = 1000
MAX_QUANTITY = Decimal("999999999.999")
MAX_PRICE = Decimal("999999999999.99")


class InvalidPurchase(InvalidInput):
    code = "invalid_purchase"
    message = gettext_noop("The purchase is not valid.")


def _decimal(value: Any, *, field: str, places: Decimal, maximum: Decimal) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidPurchase(f"{field} must be a decimal number.", code="invalid_item", field=field)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidPurchase(
            f"{field} is not a number: {value!r}.", code="invalid_item", field=field
        ) from exc
    if not number.is_finite() or number < 0 or number > maximum:
        raise InvalidPurchase(f"{field} is out of range: {value!r}.", code="invalid_item", field=field)
    if number != number.quantize(places):
        raise InvalidPurchase(f"{field} has too many decimals: {value!r}.", code="invalid_item", field=field)
    return number.quantize(places)


def purchase_items_parse(items: Any) -> list[dict[str, Any]]:
    """Items as [{sku, category, quantity: Decimal, unit_price: Decimal}] (quantity may be fractional: kg)."""
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise InvalidPurchase(f"items must be a list of at most {MAX_ITEMS} items.", code="invalid_item")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidPurchase(f"items[{index}] must be an object.", code="invalid_item")
        sku = str(item.get("sku") or "").strip()
        if not sku or len(sku) > 64:
            raise InvalidPurchase(
                f"items[{index}].sku is required (at most 64 characters).", code="invalid_item"
            )
        category = str(item.get("category") or "").strip()[:64]
        parsed.append(
            {
                "sku": sku,
                "category": category,
                "quantity": _decimal(
                    item.get("quantity", 1),
                    field=f"items[{index}].quantity",
                    places=Decimal("0.001"),
                    maximum=MAX_QUANTITY,
                ),
                "unit_price": _decimal(
                    item.get("unit_price"),
                    field=f"items[{index}].unit_price",
                    places=CENTS,
                    maximum=MAX_PRICE,
                ),
            }
        )
    return parsed


@transaction.atomic
def purchase_record(
    *,
    tenant_id: str,
    source: str,
    source_id: str,
    customer: Customer | None,
    total_amount: Decimal,
    currency: str | None,
    completed_at: datetime,
    channel: str = "",
    store_id: str = "",
    items: list[dict[str, Any]] | None = None,
) -> tuple[Purchase, bool]:
    """Record a completed sale once (per source id) and keep the buyer's aggregates current; (purchase, created)."""

    if source not in PurchaseSource.values:
        raise InvalidPurchase(f"Unknown purchase source {source!r}.", code="invalid_source")
    source_id = str(source_id or "").strip()
    if not source_id or len(source_id) > 100:
        raise InvalidPurchase("The order or transaction id is required.", code="invalid_source_id")
    if customer is not None and customer.tenant_id != tenant_id:
        raise InvalidCustomer("The customer belongs to another business.", code="customer_not_found")
    if not isinstance(total_amount, Decimal) or not total_amount.is_finite() or total_amount < 0:
        raise InvalidPurchase("total_amount must be a non-negative decimal.", code="invalid_amount")
    if timezone.is_naive(completed_at):
        raise InvalidPurchase("completed_at must carry a time zone.", code="invalid_timestamp")
    tenant = tenant_cached(tenant_id)
    currency = check_currency(currency, tenant_currency=tenant.currency)
    parsed_items = purchase_items_parse(items)

    existing = Purchase.objects.filter(tenant_id=tenant_id, source=source, source_id=source_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            purchase = Purchase.objects.create(
                tenant_id=tenant_id,
                customer=customer,
                source=source,
                source_id=source_id,
                channel=str(channel or "")[:32],
                store_id=str(store_id or "")[:64],
                total_amount=total_amount.quantize(CENTS),
                currency=currency,
                completed_at=completed_at,
            )
    except IntegrityError:
        # recorded concurrently by another door (event and backfill at once): the first record wins
        return Purchase.objects.get(tenant_id=tenant_id, source=source, source_id=source_id), False
    PurchaseItem.objects.bulk_create(
        [PurchaseItem(tenant_id=tenant_id, purchase=purchase, **item) for item in parsed_items]
    )
    if customer is not None:
        customer_metrics_refresh(customer=customer)
    return purchase, True


@transaction.atomic
def customer_metrics_refresh(*, customer: Customer) -> CustomerMetrics:
    """Recompute a customer's aggregates from their purchases, under a lock of the metrics row."""
    CustomerMetrics.objects.bulk_create(
        [CustomerMetrics(tenant_id=customer.tenant_id, customer=customer)], ignore_conflicts=True
    )
    metrics = CustomerMetrics.objects.select_for_update().get(customer=customer)
    figures = Purchase.objects.filter(customer=customer).aggregate(
        count=Count("id"), total=Sum("total_amount"), first=Min("completed_at"), last=Max("completed_at")
    )
    count = figures["count"] or 0
    total = figures["total"] or Decimal("0")
    metrics.order_count = count
    metrics.lifetime_value = total
    metrics.average_order_value = (
        (total / count).quantize(CENTS, rounding=ROUND_HALF_UP) if count else Decimal("0")
    )
    metrics.first_purchase_at = figures["first"]
    metrics.last_purchase_at = figures["last"]
    if count >= 2 and figures["first"] and figures["last"]:
        span_days = Decimal((figures["last"] - figures["first"]).total_seconds()) / Decimal(86400)
        metrics.purchase_frequency_days = (span_days / (count - 1)).quantize(CENTS, rounding=ROUND_HALF_UP)
    else:
        metrics.purchase_frequency_days = None
    metrics.save()
    return metrics


# --- reads -------------------------------------------------------------------------------------------------------
def purchase_list(customer: Customer) -> QuerySet[Purchase]:
    """A customer's purchases, newest first, with their items."""
    return (
        Purchase.objects.filter(customer=customer).prefetch_related("items").order_by("-completed_at", "-id")
    )


@dataclass(frozen=True)
class MetricsView:
    order_count: int
    lifetime_value: Decimal
    average_order_value: Decimal
    currency: str
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    purchase_frequency_days: Decimal | None
    days_since_last_purchase: int | None


def customer_metrics_get(customer: Customer) -> MetricsView:
    """The customer's aggregates (zeros before the first purchase), in the tenant's currency."""

    currency = tenant_cached(customer.tenant_id).currency
    metrics = CustomerMetrics.objects.filter(customer=customer).first()
    if metrics is None:
        return MetricsView(0, Decimal("0.00"), Decimal("0.00"), currency, None, None, None, None)
    last = metrics.last_purchase_at
    return MetricsView(
        order_count=metrics.order_count,
        lifetime_value=metrics.lifetime_value,
        average_order_value=metrics.average_order_value,
        currency=currency,
        first_purchase_at=metrics.first_purchase_at,
        last_purchase_at=last,
        purchase_frequency_days=metrics.purchase_frequency_days,
        days_since_last_purchase=(timezone.now() - last).days if last else None,
    )


def sales_kpis(*, start: datetime, end: datetime) -> dict[str, Any]:
    """The current tenant's sales in [start, end): identified and anonymous together, and split."""
    require_tenant_slug()
    anonymous = Q(customer__isnull=True)
    figures = Purchase.objects.filter(completed_at__gte=start, completed_at__lt=end).aggregate(
        count=Count("id"),
        revenue=Sum("total_amount"),
        anonymous_count=Count("id", filter=anonymous),
        anonymous_revenue=Sum("total_amount", filter=anonymous),
    )
    count = figures["count"] or 0
    revenue = figures["revenue"] or Decimal("0")
    anonymous_count = figures["anonymous_count"] or 0
    anonymous_revenue = figures["anonymous_revenue"] or Decimal("0")
    return {
        "sales_count": count,
        "revenue": revenue,
        "average_ticket": (revenue / count).quantize(CENTS, rounding=ROUND_HALF_UP)
        if count
        else Decimal("0"),
        "identified_sales_count": count - anonymous_count,
        "identified_revenue": revenue - anonymous_revenue,
        "anonymous_sales_count": anonymous_count,
        "anonymous_revenue": anonymous_revenue,
    }


# --- backfill from the Order Service -------------------------------------------------------------------------------
# Orders in these states never became a sale; anything else the Order Service returns is a past purchase.
NOT_A_SALE = frozenset(
    {"cancelled", "canceled", "refunded", "rejected", "failed", "pending", "draft", "created"}
)


@dataclass
class BackfillCounts:
    orders: int = 0
    recorded: int = 0
    already_recorded: int = 0
    not_a_sale: int = 0
    refused: int = 0

    def add(self, other: BackfillCounts) -> None:
        for name in ("orders", "recorded", "already_recorded", "not_a_sale", "refused"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def history_backfill_customer(
    *, tenant_id: str, customer_id: Any, client: Any, page_size: int = 100
) -> BackfillCounts:
    """Record a customer's past orders from the Order Service (history only: no points), idempotently.

    The orders are fetched before the transaction opens (no database transaction waits on the network); each is then
    recorded through `purchase_record`, so orders already in the history (from events or an earlier backfill) are
    left as they are. Raises the client's ServiceUnavailable when the Order Service cannot be reached.
    """
    import logging

    from core.errors import DomainError
    from core.tenancy import tenant_context

    orders = list(client.iter_orders(tenant_id, customer_id, page_size=page_size))
    counts = BackfillCounts(orders=len(orders))
    with tenant_context(tenant_id):
        customer = Customer.objects.get(pk=customer_id)
        for order in orders:
            if (order.status or "").strip().lower() in NOT_A_SALE:
                counts.not_a_sale += 1
                continue
            try:
                _, created = purchase_record(
                    tenant_id=tenant_id,
                    source=PurchaseSource.ORDER,
                    source_id=order.order_id,
                    customer=customer,
                    total_amount=order.total_amount,
                    currency=order.currency,
                    completed_at=order.completed_at,
                    channel=order.channel,
                    store_id=order.store_id,
                    items=order.item_dicts(),
                )
            except DomainError as exc:
                counts.refused += 1
                logging.getLogger(__name__).warning(
                    "Backfill: order %s of customer %s refused: %s", order.order_id, customer_id, exc.code
                )
                continue
            if created:
                counts.recorded += 1
            else:
                counts.already_recorded += 1
    return counts
