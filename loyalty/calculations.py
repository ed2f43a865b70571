"""The arithmetic of the program, free of the database: rounding, proportions, dates, tier choice."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Protocol, TypeVar

CENTS = Decimal("0.01")


def earn_points(amount: Decimal, *, rate: Decimal, multiplier: Decimal, rounding: str) -> int:
    """Points for a purchase: amount x rate x multiplier, rounded once (floor by default, never a fraction)."""
    exact = amount * rate * multiplier
    mode = ROUND_HALF_UP if rounding == "half_up" else ROUND_FLOOR
    return max(int(exact.to_integral_value(rounding=mode)), 0)


def discount_for(points: int, *, points_per_unit: int) -> Decimal:
    """The money value of points, rounded down to the cent (a discount never exceeds the points' value)."""
    return (Decimal(points) / Decimal(points_per_unit)).quantize(CENTS, rounding=ROUND_DOWN)


def max_points_for_purchase(purchase_amount: Decimal, *, share: Decimal, points_per_unit: int) -> int:
    """The most points one purchase may be paid with, under the program's maximum share."""
    return int((purchase_amount * share * points_per_unit).to_integral_value(rounding=ROUND_FLOOR))


def proportional_take(total: int, *, base: Decimal, returned: Decimal) -> int:
    """How much of `total` a return of `returned` out of `base` takes back, cumulatively.

    The customer keeps floor(total x what is left / base): a full return takes exactly `total`, and successive
    partial returns never take more than a single return of the same amount would.
    """
    if base <= 0 or returned >= base:
        return total
    if returned <= 0:
        return 0
    kept = int((Decimal(total) * (base - returned) / base).to_integral_value(rounding=ROUND_FLOOR))
    return total - kept


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later (the month's last day when the day does not exist)."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class TierLike(Protocol):
    code: str
    threshold: int


T = TypeVar("T", bound=TierLike)


def qualified_tier(tiers: Sequence[T], qualifying: int) -> T:
    """The highest tier whose threshold the qualifying points reach (tiers sorted by rank)."""
    chosen = tiers[0]
    for tier in tiers:
        if qualifying >= tier.threshold:
            chosen = tier
    return chosen
