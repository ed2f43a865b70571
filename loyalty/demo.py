"""Demo data: the default program, a café stamp card, and some points for the demo customers.

Called by `manage.py seed_demo` inside the demo tenant's context. Every write carries a fixed idempotency key, so
running it again changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.demo import demo_seeder
from customers.models import Customer
from loyalty.models import StampRule
from loyalty.services import points_earn, points_redeem, program_ensure, stamp_rule_save

# Purchases (amount, reference) per demo customer (by email), and points redeemed afterwards.
DEMO_ACTIVITY: dict[str, dict[str, Any]] = {
    "ana.perez@example.com": {"purchases": [("2500.00", "POS-1001"), ("3100.00", "POS-1002")], "redeem": 500},
    "bruno.soto@example.com": {"purchases": [("1490.00", "POS-1003")], "redeem": 0},
    "carla@example.com": {
        "purchases": [("320.00", "POS-1004")],
        "redeem": 0,
        "items": [{"sku": "COFFEE-LATTE", "category": "coffee", "quantity": 3, "unit_price": "3.50"}],
    },
    "compras@andes.example.com": {
        "purchases": [("12500.00", "ORD-2001"), ("9800.00", "ORD-2002")],
        "redeem": 0,
    },
}


@demo_seeder(order=20)
def seed(tenant: Any) -> None:
    program_ensure(tenant.slug)
    if not StampRule.objects.filter(tenant_id=tenant.slug).exists():
        stamp_rule_save(
            tenant_id=tenant.slug,
            name="Coffee card",
            categories=["coffee"],
            stamps_per_card=10,
            reward_description="One free coffee",
        )
    for email, activity in DEMO_ACTIVITY.items():
        customer = Customer.objects.filter(tenant_id=tenant.slug, email=email).first()
        if customer is None:
            continue
        for amount, reference in activity["purchases"]:
            points_earn(
                customer=customer,
                idempotency_key=f"demo:earn:{reference}",
                purchase_amount=Decimal(amount),
                reference=reference,
                items=activity.get("items"),
                source="demo",
                actor="seed_demo",
            )
        if activity["redeem"]:
            points_redeem(
                customer=customer,
                idempotency_key=f"demo:redeem:{customer.pk}",
                points=activity["redeem"],
                reference="POS-1010",
                actor="seed_demo",
                source="demo",
            )
