"""Fixtures of the segmentation tests: a small purchase history whose RFM scores are computed by hand, and the
headless Chromium the dashboard test drives (Debian's, through Playwright)."""

from __future__ import annotations

import os
import shutil
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


# --- Browser ----------------------------------------------------------------------------------------------------
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """CHROMIUM_PATH when set, otherwise Debian's Chromium."""
    wanted = os.environ.get("CHROMIUM_PATH")
    candidates = [wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.path.exists(c)), None)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Playwright drives the system's Chromium (its own browser build is never downloaded)."""
    path = chromium_path()
    if path is None:
        message = "Chromium not installed (apt-get install -y chromium, or set CHROMIUM_PATH)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, but REQUIRE_SERVICES=1")
        pytest.skip(message)
    args = [*browser_type_launch_args.get("args", []), *CHROMIUM_FLAGS]
    return {**browser_type_launch_args, "executable_path": path, "args": args, "headless": True}
