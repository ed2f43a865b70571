"""Demo data of the segmentation app: a year of purchases for the demo customers (when they have none), the
default rule table and a first run, so the dashboard has something to show. Idempotent."""

from __future__ import annotations

import importlib
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from core.demo import demo_seeder
from core.models import Tenant
from customers.models import Customer, Purchase
from segmentation.services import rfm_default_as_of, rfm_recompute, segmentation_settings_ensure

# (purchases, days between them, days since the last one, amount) per demo customer, in creation order.
DEMO_PATTERNS = [
    (14, 7, 2, "12500"),
    (6, 30, 20, "48000"),
    (2, 60, 150, "9900"),
    (9, 21, 4, "350000"),
    (1, 1, 300, "7500"),
]


@demo_seeder(order=40)
def seed(tenant: Tenant) -> None:
    segmentation_settings_ensure()
    try:
        purchase_record = importlib.import_module("customers.history").purchase_record
    except (ImportError, AttributeError):
        purchase_record = None
    customers = list(Customer.objects.order_by("created_at", "id")[: len(DEMO_PATTERNS)])
    if purchase_record is not None and not Purchase.objects.exists():
        today = timezone.now().astimezone(ZoneInfo(tenant.time_zone)).date()
        for index, (customer, (count, every, since, amount)) in enumerate(
            zip(customers, DEMO_PATTERNS, strict=False)
        ):
            for n in range(count):
                day = today - timedelta(days=since + every * n)
                purchase_record(
                    tenant_id=tenant.slug,
                    source="pos",
                    source_id=f"demo-{index}-{n}",
                    customer=customer,
                    total_amount=Decimal(amount),
                    currency=tenant.currency,
                    completed_at=datetime.combine(day, time(12), tzinfo=ZoneInfo(tenant.time_zone)),
                    store_id="demo-store",
                )
    rfm_recompute(tenant=tenant, as_of=rfm_default_as_of(tenant), triggered_by="seed_demo")
