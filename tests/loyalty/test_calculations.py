"""The program's arithmetic, without the database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loyalty.calculations import (
    add_months,
    discount_for,
    earn_points,
    max_points_for_purchase,
    proportional_take,
)


@pytest.mark.parametrize(
    ("amount", "rate", "multiplier", "rounding", "points"),
    [
        ("99.99", "1", "1", "floor", 99),
        ("99.99", "1", "1", "half_up", 100),
        ("100.00", "1", "1.25", "floor", 125),
        ("0.99", "1", "1", "floor", 0),
        ("10.00", "0.1", "1.5", "floor", 1),
        ("3.33", "3", "1", "floor", 9),
    ],
)
def test_earn_points(amount, rate, multiplier, rounding, points):
    assert (
        earn_points(Decimal(amount), rate=Decimal(rate), multiplier=Decimal(multiplier), rounding=rounding)
        == points
    )


def test_discounts_round_down_to_the_cent():
    assert discount_for(150, points_per_unit=100) == Decimal("1.50")
    assert discount_for(100, points_per_unit=3) == Decimal("33.33")
    assert max_points_for_purchase(Decimal("10.00"), share=Decimal("0.5"), points_per_unit=100) == 500


def test_proportional_take_is_cumulative_and_exact_in_full():
    assert proportional_take(99, base=Decimal("100"), returned=Decimal("50")) == 50
    assert proportional_take(99, base=Decimal("100"), returned=Decimal("100")) == 99
    assert proportional_take(7, base=Decimal("3"), returned=Decimal("1")) == 3
    assert proportional_take(7, base=Decimal("3"), returned=Decimal("0")) == 0


def test_add_months_keeps_the_day_or_takes_the_months_last():
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2025, 3, 15, tzinfo=UTC), -12) == datetime(2024, 3, 15, tzinfo=UTC)
