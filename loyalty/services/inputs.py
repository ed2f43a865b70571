"""Checks of what callers send the loyalty services: points, keys, references, items; limits."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from core.errors import InvalidInput
from customers.errors import CustomerBlocked
from customers.models import Customer, CustomerStatus
from loyalty.errors import (
    InvalidPoints,
)

MAX_POINTS = 10**12


MAX_STAMPS = 1000  # per request, and per card from one purchase


MAX_ITEM_QUANTITY = Decimal(1_000_000)


MAX_REDEMPTION_POINTS_PER_UNIT = 1_000_000


MAX_MIN_REDEMPTION_POINTS = 1_000_000_000


def hold_ttl() -> timedelta:
    """How long a points hold lives when the caller gives no ttl (setting LOYALTY_HOLD_TTL_SECONDS)."""
    return timedelta(seconds=int(settings.LOYALTY_HOLD_TTL_SECONDS))


def hold_longest() -> timedelta:
    """The longest a points hold may live (setting LOYALTY_HOLD_MAX_SECONDS)."""
    return timedelta(seconds=int(settings.LOYALTY_HOLD_MAX_SECONDS))


_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


# --- The customer's standing ---------------------------------------------------------------------------------
def _refuse_blocked(customer: Customer) -> None:
    """A blocked customer neither earns nor redeems (points nor stamps). Read from the customer row the door
    already loaded in this transaction: no statement of its own."""
    if customer.status == CustomerStatus.BLOCKED:
        raise CustomerBlocked(customer_id=str(customer.pk))


# --- Input checks ---------------------------------------------------------------------------------------------
def _check_points(points: Any, *, allow_negative: bool = False) -> int:
    # ASCII digits only: str.isdigit() also accepts characters such as "²" that int() refuses.
    if isinstance(points, str) and _WHOLE_NUMBER.fullmatch(points.strip()):
        points = int(points.strip())
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidPoints(field="points")
    if abs(points) > MAX_POINTS or points == 0 or (points < 0 and not allow_negative):
        raise InvalidPoints(field="points")
    return points


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("An idempotency key is required.", code="missing_idempotency_key")
    key = key.strip()
    if len(key) > 200:
        raise InvalidInput(
            "The idempotency key is longer than 200 characters.", code="invalid_idempotency_key"
        )
    if _CONTROL_CHARACTERS.search(key):
        raise InvalidInput("The idempotency key has control characters.", code="invalid_idempotency_key")
    return key


def _check_reference(reference: Any) -> str:
    reference = (reference or "").strip() if isinstance(reference, str) or reference is None else None
    if reference is None or len(reference) > 100 or "\x00" in reference:
        raise InvalidInput(
            "reference must be a string of at most 100 characters, without NUL characters.",
            code="invalid_reference",
        )
    return reference


def _normalize_items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    normalized = []
    for item in items or []:
        if not isinstance(item, dict):
            raise InvalidInput("Every item must be an object.", code="invalid_item")
        try:
            quantity = Decimal(str(item.get("quantity", 1)))
        except Exception as exc:
            raise InvalidInput("An item's quantity is not a number.", code="invalid_item") from exc
        if not quantity.is_finite() or not 0 < quantity <= MAX_ITEM_QUANTITY:
            raise InvalidInput(
                f"An item's quantity must be greater than zero and at most {MAX_ITEM_QUANTITY}.",
                code="invalid_item",
            )
        normalized.append(
            {
                "sku": str(item.get("sku") or "").strip(),
                "category": str(item.get("category") or "").strip(),
                "quantity": str(quantity.normalize()),
            }
        )
    return normalized
