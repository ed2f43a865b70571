"""Commercial terms of a business customer: its volume discount brackets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from core.money import parse_amount
from credit.errors import (
    CreditBusinessOnly,
    InvalidDiscountBracket,
)
from credit.models import (
    VolumeDiscountBracket,
)
from customers.models import Customer, CustomerType


# --- Commercial terms -------------------------------------------------------------------------------------------------
def _clean_bracket(data: dict[str, Any]) -> tuple[str, Decimal, Decimal]:
    category = str(data.get("category") or "").strip().lower()
    if len(category) > 64:
        raise InvalidDiscountBracket("category is longer than 64 characters.", field="category")
    min_amount = parse_amount(data.get("min_amount"), field="min_amount", allow_zero=True)
    percent = parse_amount(data.get("discount_percent"), field="discount_percent")
    if percent > 100:
        raise InvalidDiscountBracket("discount_percent must be at most 100.", field="discount_percent")
    return category, min_amount, percent


def _business_customer(customer: Customer) -> Customer:
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.type != CustomerType.BUSINESS:
        raise CreditBusinessOnly(
            "Volume discounts are for business customers only.", customer_id=str(customer.pk)
        )
    return customer


@transaction.atomic
def volume_discounts_replace(
    *, customer: Customer, brackets: list[dict[str, Any]], actor: str
) -> list[VolumeDiscountBracket]:
    """Set a business customer's volume discount brackets (what the Pricing service reads) in one go."""
    customer = _business_customer(customer)
    cleaned = [_clean_bracket(b) for b in brackets]
    keys = [(category, minimum) for category, minimum, _ in cleaned]
    if len(set(keys)) != len(keys):
        raise InvalidDiscountBracket("Two brackets share a category and min_amount.")
    VolumeDiscountBracket.objects.filter(customer=customer).delete()
    return VolumeDiscountBracket.objects.bulk_create(
        [
            VolumeDiscountBracket(
                tenant_id=customer.tenant_id,
                customer=customer,
                category=category,
                min_amount=minimum,
                discount_percent=percent,
                updated_by=actor[:200],
            )
            for category, minimum, percent in sorted(cleaned)
        ]
    )


def volume_discount_bracket_check(
    *,
    customer: Customer,
    category: str,
    min_amount: Any,
    discount_percent: Any,
    bracket: VolumeDiscountBracket | None = None,
) -> tuple[str, Decimal, Decimal]:
    """Validate one bracket without writing (the admin form shows the errors): (category, min_amount, percent)."""
    category, minimum, percent = _clean_bracket(
        {"category": category, "min_amount": min_amount, "discount_percent": discount_percent}
    )
    clash = VolumeDiscountBracket.objects.filter(customer=customer, category=category, min_amount=minimum)
    if bracket is not None and bracket.pk:
        clash = clash.exclude(pk=bracket.pk)
    if clash.exists():
        raise InvalidDiscountBracket("A bracket with this category and min_amount exists.")
    return category, minimum, percent


@transaction.atomic
def volume_discount_bracket_save(
    *,
    customer: Customer,
    category: str,
    min_amount: Decimal,
    discount_percent: Decimal,
    actor: str,
    bracket: VolumeDiscountBracket | None = None,
) -> VolumeDiscountBracket:
    """Add or change one bracket (the admin's form)."""
    customer = _business_customer(customer)
    category, minimum, percent = volume_discount_bracket_check(
        customer=customer,
        category=category,
        min_amount=min_amount,
        discount_percent=discount_percent,
        bracket=bracket,
    )
    target = (
        bracket if bracket is not None and bracket.pk else VolumeDiscountBracket(tenant_id=customer.tenant_id)
    )
    target.customer = customer
    target.category = category
    target.min_amount = minimum
    target.discount_percent = percent
    target.updated_by = actor[:200]
    target.save()
    return target
