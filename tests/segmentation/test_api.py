"""REST: a customer's segment and its history (segments:read), the KPIs (analytics:read) on known answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.tenancy import tenant_context
from segmentation import selectors
from segmentation.services import rfm_recompute
from tests.segmentation.conftest import AS_OF, make_customers
from tests.segmentation.factories import purchase

pytestmark = pytest.mark.django_db


def recompute(tenant: Any, as_of: date = AS_OF) -> Any:
    with tenant_context(tenant):
        return rfm_recompute(tenant=tenant, as_of=as_of).run


# --- Segment and history ------------------------------------------------------------------------------------------
def test_a_customer_never_scored_is_unclassified(api_a, customer_a):
    response = api_a.get(f"/api/v1/customers/{customer_a.id}/segment/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "customer_id": str(customer_a.id),
        "segment": "unclassified",
        "recency_score": 0,
        "frequency_score": 0,
        "monetary_score": 0,
        "is_vip": False,
        "churn_risk": "",
        "computed_at": None,
        "as_of": None,
        "rule_version": None,
        "segment_since": None,
    }


def test_the_segment_comes_from_the_latest_run(api_a, tenant_a, hand):
    recompute(tenant_a)
    latest = recompute(tenant_a, AS_OF + timedelta(days=1))  # no segment change: A's row is not rewritten
    body = api_a.get(f"/api/v1/customers/{hand['A'].id}/segment/").json()
    assert {
        k: body[k] for k in ("segment", "recency_score", "frequency_score", "monetary_score", "is_vip")
    } == {
        "segment": "champions",
        "recency_score": 5,
        "frequency_score": 5,
        "monetary_score": 5,
        "is_vip": True,
    }
    assert body["churn_risk"] == "low"
    assert body["as_of"] == latest.as_of.isoformat() and body["rule_version"] == 1
    assert body["segment_since"] == AS_OF.isoformat()
    assert datetime.fromisoformat(body["computed_at"]) == latest.finished_at
    with tenant_context(tenant_a):
        view = selectors.segment_for_customer(hand["A"])
    assert (view.segment, view.computed_at) == ("champions", latest.finished_at)


def test_segment_history_lists_changes_newest_first_with_their_reason(api_a, tenant_a, hand):
    recompute(tenant_a)
    purchase(tenant_a, hand["I"], "50", AS_OF + timedelta(days=2))
    recompute(tenant_a, AS_OF + timedelta(days=2))
    response = api_a.get(f"/api/v1/customers/{hand['I'].id}/segment/history/")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["old_segment"], r["as_of"]) for r in results] == [
        ("lost", (AS_OF + timedelta(days=2)).isoformat()),
        ("unclassified", AS_OF.isoformat()),
    ]
    assert results[1]["new_segment"] == "lost"
    assert results[1]["monetary"] == "200.00"
    assert results[1]["reason"].startswith("R1 F1 M")
    assert {"recency_score", "frequency_score", "monetary_score", "rule_version", "event_id"} <= set(
        results[0]
    )


def test_segment_views_need_the_segments_read_scope(api_client_for, tenant_a, customer_a):
    client = api_client_for(tenant_a, scopes=["customers:read"])
    for path in ("segment/", "segment/history/"):
        response = client.get(f"/api/v1/customers/{customer_a.id}/{path}")
        assert response.status_code == 403 and response.json()["code"] == "missing_scope"


def test_another_tenants_customer_is_not_found(api_a, customer_b):
    for path in ("segment/", "segment/history/"):
        response = api_a.get(f"/api/v1/customers/{customer_b.id}/{path}")
        assert response.status_code == 404 and response.json()["code"] == "customer_not_found"


# --- KPIs ---------------------------------------------------------------------------------------------------------
def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def kpi_history(tenant_a: Any) -> dict[str, Any]:
    """Period 2025-03-01..2025-03-31 (31 days, America/Santiago); the previous period is 2025-01-29..2025-02-28;
    "active" means a purchase since 2025-01-01 (90 days up to the end of 2025-03-31)."""
    people = make_customers(tenant_a, ["P", "Q", "R", "S", "T", "U"])
    purchase(tenant_a, people["P"], "100", at("2025-02-10"))  # previous period ...
    purchase(tenant_a, people["P"], "200", at("2025-03-05"))  # ... and this one: retained
    purchase(tenant_a, people["P"], "999", at("2025-04-02"))  # after the period: ignored everywhere
    purchase(tenant_a, people["Q"], "50", at("2025-02-20"))  # previous period only
    purchase(tenant_a, people["Q"], "25", at("2025-03-01", hour=2))  # 23:00 on Feb 28 in Santiago: previous
    purchase(tenant_a, people["R"], "300", at("2025-03-10"))  # this period only
    purchase(tenant_a, people["R"], "100", at("2025-03-20"))
    purchase(tenant_a, people["S"], "1000", at("2024-06-01"))  # long ago: not active
    purchase(tenant_a, people["T"], "70", at("2025-01-15"))  # active, but before the previous period
    purchase(tenant_a, None, "400", at("2025-03-15"))  # anonymous sale: revenue and AOV only
    return people


def test_kpis_on_a_history_with_known_answers(api_a, tenant_a, kpi_history, monkeypatch):
    monkeypatch.setattr(selectors, "_optional", lambda module, name: None)
    response = api_a.get("/api/v1/analytics/kpis", {"start": "2025-03-01", "end": "2025-03-31"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["period"] == {"start": "2025-03-01", "end": "2025-03-31", "days": 31}
    assert body["currency"] == "CLP"
    assert body["active_customers"] == 4  # P, Q, R, T
    assert body["orders"] == 4 and body["revenue"] == "1000.00"  # P 200, R 300 + 100, anonymous 400
    assert body["average_order_value"] == "250.00"
    assert body["purchasing_customers"] == 2 and body["purchase_frequency"] == "1.50"  # 3 orders by P and R
    assert (body["previous_period_customers"], body["retained_customers"]) == (2, 1)  # P and Q; P came back
    assert body["retention_rate"] == "0.5000"
    assert body["average_lifetime_value"] == "369.00"  # (300 + 75 + 400 + 1000 + 70) / 5 buyers
    assert body["points"] is None and body["credit"] is None
    assert body["segments"]["distribution"] == [] and body["segments"]["as_of"] is None
    assert "retention_rate" in body["definitions"]


def test_kpis_include_segment_movement_since_the_previous_run(api_a, tenant_a, hand):
    first = recompute(tenant_a)
    purchase(tenant_a, hand["I"], "50", AS_OF + timedelta(days=2))
    second = recompute(tenant_a, AS_OF + timedelta(days=2))
    body = api_a.get("/api/v1/analytics/kpis", {"start": "2025-03-01", "end": "2025-04-02"}).json()
    segments = body["segments"]
    assert (segments["as_of"], segments["previous_as_of"]) == ("2025-04-02", "2025-03-31")
    by_segment = {row["segment"]: row for row in segments["distribution"]}
    for segment, row in by_segment.items():
        assert row["customers"] == second.distribution.get(segment, 0)
        assert row["previous"] == first.distribution.get(segment, 0)
        assert row["change"] == row["customers"] - row["previous"]
    assert by_segment["champions"]["label"] == "Champions"
    assert sum(row["change"] for row in by_segment.values()) == 0
    assert sum(move["customers"] for move in segments["transitions"]) == second.segment_changes > 0
    moves = {(m["from"], m["to"]): m["customers"] for m in segments["transitions"]}
    assert moves[("lost", by_segment_of(tenant_a, hand["I"]))] == 1
    # A period that ends before the second run shows the first one.
    earlier = api_a.get("/api/v1/analytics/kpis", {"start": "2025-03-01", "end": "2025-03-31"}).json()
    assert earlier["segments"]["as_of"] == "2025-03-31" and earlier["segments"]["previous_as_of"] is None


def by_segment_of(tenant: Any, customer: Any) -> str:
    with tenant_context(tenant):
        return selectors.segment_for_customer(customer).segment


def test_kpis_take_points_and_credit_from_their_apps_when_they_provide_them(api_a, tenant_a, monkeypatch):
    calls: dict[str, Any] = {}

    def points_kpis(*, start: datetime, end: datetime) -> dict[str, Any]:
        calls["points"] = (start, end)
        return {
            "issued": 1200,
            "redeemed": 300,
            "expired": 0,
            "outstanding_points": 900,
            "liability": Decimal("9"),
        }

    def points_by_month(*, months: int) -> list[dict[str, Any]]:
        calls["months"] = months
        return [{"month": "2025-03", "issued": 1200, "redeemed": 300}]

    def credit_kpis() -> dict[str, Any]:
        return {
            "limit_total": Decimal("1000.00"),
            "used_total": Decimal("250.00"),
            "available_total": Decimal("750.00"),
            "lines_active": 2,
            "lines_on_hold": 0,
        }

    functions = {"points_kpis": points_kpis, "points_by_month": points_by_month, "credit_kpis": credit_kpis}
    monkeypatch.setattr(selectors, "_optional", lambda module, name: functions[name])
    body = api_a.get("/api/v1/analytics/kpis", {"start": "2025-03-01", "end": "2025-03-31"}).json()
    assert body["points"] == {
        "issued": 1200,
        "redeemed": 300,
        "expired": 0,
        "outstanding_points": 900,
        "liability": "9",
        "by_month": [{"month": "2025-03", "issued": 1200, "redeemed": 300}],
    }
    assert body["credit"]["used_total"] == "250.00" and body["credit"]["utilisation"] == "0.2500"
    start, end = calls["points"]
    assert (start.isoformat(), end.isoformat()) == ("2025-03-01T00:00:00-03:00", "2025-04-01T00:00:00-03:00")
    assert calls["months"] == 12


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"start": "2025-03-31", "end": "2025-03-01"}, "invalid_period"),
        ({"start": "2000-01-01", "end": "2025-03-01"}, "invalid_period"),
        ({"start": "yesterday"}, "validation_error"),
    ],
)
def test_kpis_refuse_a_bad_period(api_a, query, code):
    response = api_a.get("/api/v1/analytics/kpis", query)
    assert response.status_code == 400 and response.json()["code"] == code


def test_kpis_default_to_the_last_30_days_and_need_analytics_read(api_client_for, tenant_a):
    body = api_client_for(tenant_a).get("/api/v1/analytics/kpis").json()
    assert body["period"]["days"] == 30
    denied = api_client_for(tenant_a, scopes=["segments:read"]).get("/api/v1/analytics/kpis")
    assert denied.status_code == 403 and denied.json()["code"] == "missing_scope"


def test_kpis_with_the_loyalty_and_credit_apps_own_selectors(api_a, tenant_a):
    """Against the real `points_kpis`, `points_by_month` and `credit_kpis` (zeros for a tenant without activity)."""
    if selectors._optional("loyalty.selectors", "points_kpis") is None:
        pytest.skip("loyalty.selectors.points_kpis is not available")
    if selectors._optional("credit.selectors", "credit_kpis") is None:
        pytest.skip("credit.selectors.credit_kpis is not available")
    body = api_a.get("/api/v1/analytics/kpis", {"start": "2025-03-01", "end": "2025-03-31"}).json()
    points, credit = body["points"], body["credit"]
    assert {"issued", "redeemed", "expired", "outstanding_points", "liability", "by_month"} <= set(points)
    assert (points["issued"], points["redeemed"]) == (0, 0) and len(points["by_month"]) == 12
    assert {
        "limit_total",
        "used_total",
        "available_total",
        "lines_active",
        "lines_on_hold",
        "utilisation",
    } <= set(credit)
    assert credit["utilisation"] is None  # no credit granted: no ratio
