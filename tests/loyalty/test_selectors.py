"""Reads other apps rely on: the KPIs of the dashboard and the summary behind gRPC GetCustomer."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import clock
from loyalty.selectors import loyalty_summary, points_by_month, points_kpis
from tests.loyalty.conftest import START

pytestmark = pytest.mark.django_db


def test_points_kpis(customer_a, customer_b, tenant_a, earn, redeem, frozen_clock, in_tenant):
    earn(customer_a, "1000.00")
    redeem(customer_a, 300)
    earn(customer_b, "999.00")  # another tenant: not counted
    frozen_clock(days=400)
    earn(customer_a, "50.00")  # 62 points (silver); expires the first award (700 left) before earning
    with in_tenant(tenant_a):
        first_year = points_kpis(start=START, end=START + timedelta(days=365))
        now = points_kpis(start=START, end=clock.now() + timedelta(seconds=1))
    assert (first_year["issued"], first_year["redeemed"], first_year["expired"]) == (1000, 300, 0)
    assert (now["issued"], now["expired"]) == (1062, 700)
    assert now["outstanding_points"] == 62
    assert now["liability"] == Decimal("0.62")
    assert now["currency"] == "CLP"


def test_points_by_month_in_the_tenants_time_zone(
    customer_a, tenant_a, earn, redeem, frozen_clock, in_tenant
):
    earn(customer_a, "1000.00")
    frozen_clock(days=31)
    redeem(customer_a, 200)
    earn(customer_a, "10.00")  # silver by now: 12 points
    with in_tenant(tenant_a):
        months = points_by_month(months=3)
    assert months == [
        {"month": "2024-12", "issued": 0, "redeemed": 0},
        {"month": "2025-01", "issued": 1000, "redeemed": 0},
        {"month": "2025-02", "issued": 12, "redeemed": 200},
    ]


def test_summary_reads_without_writing_and_uses_the_programs_lowest_tier(customer_a, in_tenant):
    with in_tenant(customer_a.tenant_id):
        summary = loyalty_summary(customer_a)
    assert (summary.points_balance, summary.pending, summary.tier, summary.points_to_next_tier) == (
        0,
        0,
        "bronze",
        1000,
    )
    assert summary.has_account is False
