"""Money on the wire: decimal strings with an ISO 4217 currency, never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from core.errors import InvalidAmount, InvalidCurrency

MAX_AMOUNT = Decimal("999999999999.99")
CENTS = Decimal("0.01")
# The only text an amount may be: ASCII digits, optionally a minus and a point followed by digits. No spaces, no
# "+", no exponent, no "_" separators, no other script's digits, no NaN/Infinity (Python's Decimal takes them all).
AMOUNT_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_amount(value: Any, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """A positive amount with at most two decimals, from a decimal string (or Decimal/int; floats are refused)."""
    if isinstance(value, bool | float) or value is None:
        raise InvalidAmount(f'{field} must be a decimal string such as "125.50".', field=field)
    if not isinstance(value, str | int | Decimal):
        raise InvalidAmount(f'{field} must be a decimal string such as "125.50".', field=field)
    text = str(value)
    if not text or len(text) > 32:
        raise InvalidAmount(f'{field} must be a decimal string such as "125.50".', field=field)
    if isinstance(value, str) and AMOUNT_TEXT.fullmatch(text) is None:
        raise InvalidAmount(f"{field} is not a number: {text!r}.", field=field)
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidAmount(f"{field} is not a number: {text!r}.", field=field) from exc
    if not amount.is_finite():
        raise InvalidAmount(f"{field} must be finite.", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmount(f"{field} must be greater than zero.", field=field)
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"{field} is too large.", field=field)
    if amount != amount.quantize(CENTS):
        raise InvalidAmount(f"{field} has more than two decimals.", field=field)
    return amount.quantize(CENTS)


def check_currency(currency: str | None, *, tenant_currency: str) -> str:
    """An empty currency means the tenant's own; any other than the tenant's is refused."""
    if not currency:
        return tenant_currency
    if currency.strip().upper() != tenant_currency.upper():
        raise InvalidCurrency(
            f"Currency {currency!r} is not this business's currency ({tenant_currency}).",
            field="currency",
            expected=tenant_currency,
        )
    return tenant_currency


def money_str(amount: Decimal) -> str:
    return str(amount.quantize(CENTS, rounding=ROUND_HALF_UP))
