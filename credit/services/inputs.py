"""Checks of what callers send the credit services, the limits and settings they read, the tenant's day."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from core.errors import InvalidInput
from credit.errors import (
    InvalidPaymentTerms,
)

MAX_TERMS_DAYS = 365


MAX_HOLD_DAYS = 30


def overdue_grace_days() -> int:
    """Days after a charge's due date before the line goes on hold (setting CREDIT_OVERDUE_GRACE_DAYS)."""
    return int(settings.CREDIT_OVERDUE_GRACE_DAYS)


def hold_ttl() -> timedelta:
    """How long a checkout hold lives when the caller gives no expiry (setting CREDIT_HOLD_TTL_MINUTES)."""
    return timedelta(minutes=int(settings.CREDIT_HOLD_TTL_MINUTES))


# --- Small helpers ------------------------------------------------------------------------------------------------
def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(payload, cls=DjangoJSONEncoder)))


def _clean_ref(value: Any, *, error: type[InvalidInput]) -> str:
    """An order or payment id: 1 to 100 characters, no control characters (NUL breaks SQL), never truncated (a cut
    id could name another order)."""
    text = str(value or "").strip()
    if not text or len(text) > 100 or any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise error()
    return text


def _clean_terms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidPaymentTerms(field="payment_terms_days")
    try:
        days = int(value)
    except ValueError as exc:
        raise InvalidPaymentTerms(field="payment_terms_days") from exc
    if not 0 <= days <= MAX_TERMS_DAYS:
        raise InvalidPaymentTerms(field="payment_terms_days")
    return days


def _require_text(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{field} is required.", code=f"{field}_required", field=field)
    return text[:2000]


def same_actor(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()
