"""Fixtures of the segmentation tests: a small purchase history whose RFM scores are computed by hand, and the
headless Chromium the dashboard test drives (Debian's, through Playwright)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.segmentation.factories import purchase, purchases

AS_OF = date(2025, 3, 31)

# name: (days since the last purchase, purchases in the window, spend in the window), 7 days apart.
# F and G tie on recency (60) and frequency (3) across a quintile boundary; H and I tie on spend (200).
HAND_FIXTURE = {
    "A": (1, 10, "1000"),
    "B": (2, 8, "900"),
    "C": (5, 6, "800"),
    "D": (10, 5, "700"),
    "E": (20, 4, "600"),
    "F": (60, 3, "500"),
    "G": (60, 3, "400"),
    "H": (90, 2, "200"),
    "I": (200, 1, "200"),
    "J": (300, 1, "100"),
}


def make_customers(tenant: Any, names: list[str]) -> dict[str, Any]:
    from tests.factories import CustomerFactory

    return {name: CustomerFactory(tenant=tenant, first_name=name) for name in names}


def seed_hand_fixture(tenant: Any) -> dict[str, Any]:
    """Ten buyers, two customers who never bought, an anonymous sale, and purchases outside the window."""
    people = make_customers(tenant, [*HAND_FIXTURE, "N1", "N2"])
    for name, (recency, n, total) in HAND_FIXTURE.items():
        purchases(tenant, people[name], last=AS_OF - timedelta(days=recency), n=n, total=total)
    # J bought once long before the window: not in F or M, but in its lifetime value and usual interval (200 d).
    purchase(tenant, people["J"], "5000", AS_OF - timedelta(days=500))
    # After the as-of date: ignored. Anonymous: ignored.
    purchase(tenant, people["A"], "777", AS_OF + timedelta(days=10))
    purchase(tenant, None, "999", AS_OF - timedelta(days=1))
    return people


@pytest.fixture
def hand(tenant_a: Any) -> dict[str, Any]:
    return seed_hand_fixture(tenant_a)
