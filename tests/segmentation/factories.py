"""Purchases for the segmentation tests, written straight into the purchase history inside the tenant's context."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from core.tenancy import tenant_context
from customers.models import Purchase

_sequence = count(1)


def noon_utc(day: date) -> datetime:
    """Noon UTC falls on the same calendar day in every tenant time zone the tests use."""
    return datetime.combine(day, time(12), tzinfo=UTC)


def purchase(tenant: Any, customer: Any, amount: str | Decimal, when: datetime | date) -> Purchase:
    moment = noon_utc(when) if not isinstance(when, datetime) else when
    slug = tenant if isinstance(tenant, str) else tenant.slug
    with tenant_context(slug):
        return Purchase.objects.create(
            tenant_id=slug,
            customer=customer,
            source="pos",
            source_id=f"test-{next(_sequence)}",
            total_amount=Decimal(amount),
            currency="CLP",
            completed_at=moment,
        )


def purchases(
    tenant: Any, customer: Any, *, last: date, n: int, total: str | Decimal, every_days: int = 7
) -> None:
    """`n` purchases `every_days` apart ending on `last`, adding up to `total` (the last one takes the rest)."""
    total = Decimal(total)
    unit = Decimal("10.00")
    for i in range(n):
        amount = total - unit * (n - 1) if i == 0 else unit
        purchase(tenant, customer, amount, last - timedelta(days=every_days * i))
