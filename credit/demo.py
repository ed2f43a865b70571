"""Demo data of credit: the demo business customer gets an approved line (and a bracket), another one a pending
request so the credit managers' queue is not empty. Idempotent: does nothing for a customer that has a line."""

from __future__ import annotations

from decimal import Decimal

from core.demo import demo_seeder
from core.models import Tenant
from credit import services
from credit.models import CreditLine, VolumeDiscountBracket
from customers.models import Customer, CustomerType

APPROVED_CUSTOMER_EMAIL = "compras@andes.example.com"
PENDING_CUSTOMER_EMAIL = "hola@cafedelpuerto.example.com"


@demo_seeder(order=30)
def seed(tenant: Tenant) -> None:
    businesses = Customer.objects.filter(tenant=tenant, type=CustomerType.BUSINESS)
    approved = (
        businesses.filter(email=APPROVED_CUSTOMER_EMAIL).first() or businesses.order_by("created_at").first()
    )
    if approved is not None and not CreditLine.objects.filter(customer=approved).exists():
        line = services.credit_line_request(
            customer=approved,
            requested_limit=Decimal("5000000"),
            payment_terms_days=30,
            requested_by="seed_demo:sales",
            reason="Builder buying on 30-day terms.",
        )
        services.credit_line_approve(line=line, decided_by="seed_demo:credit-manager", comment="Demo line.")
    if approved is not None and not VolumeDiscountBracket.objects.filter(customer=approved).exists():
        services.volume_discounts_replace(
            customer=approved,
            brackets=[
                {"min_amount": "500000", "discount_percent": "3"},
                {"min_amount": "2000000", "discount_percent": "5"},
                {"category": "cement", "min_amount": "1000000", "discount_percent": "7.5"},
            ],
            actor="seed_demo",
        )
    pending = businesses.filter(email=PENDING_CUSTOMER_EMAIL).first()
    if (
        pending is not None
        and pending != approved
        and not CreditLine.objects.filter(customer=pending).exists()
    ):
        services.credit_line_request(
            customer=pending,
            requested_limit=Decimal("800000"),
            payment_terms_days=60,
            requested_by="seed_demo:sales",
            reason="Café chain asking for 60-day terms.",
        )
