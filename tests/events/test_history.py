"""Purchase history: recorded once per sale, aggregates kept current, read over REST per tenant."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from core.errors import InvalidCurrency
from customers.history import customer_metrics_get, purchase_record
from customers.models import CustomerMetrics, Purchase

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def record(tenant, customer, source_id, total, *, at=T0, source="order", currency="CLP", **extra):
    return purchase_record(
        tenant_id=tenant.slug,
        source=source,
        source_id=source_id,
        customer=customer,
        total_amount=Decimal(total),
        currency=currency,
        completed_at=at,
        channel=extra.pop("channel", "web"),
        store_id=extra.pop("store_id", ""),
        items=extra.pop("items", [{"sku": "A", "category": "food", "quantity": "1", "unit_price": total}]),
    )


def test_a_sale_is_recorded_once_and_the_metrics_follow(in_tenant, tenant_a, customer_a):
    with in_tenant(tenant_a):
        first, created = record(tenant_a, customer_a, "O-1", "100.00", at=T0)
        again, created_again = record(tenant_a, customer_a, "O-1", "100.00", at=T0)
        record(tenant_a, customer_a, "O-2", "50.00", at=T0 + timedelta(days=10))
        record(tenant_a, customer_a, "P-1", "30.00", at=T0 + timedelta(days=30), source="pos")
        metrics = customer_metrics_get(customer_a)
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert metrics.order_count == 3
    assert metrics.lifetime_value == Decimal("180.00")
    assert metrics.average_order_value == Decimal("60.00")
    assert (metrics.first_purchase_at, metrics.last_purchase_at) == (T0, T0 + timedelta(days=30))
    assert metrics.purchase_frequency_days == Decimal("15.00")
    assert metrics.currency == "CLP"


def test_an_out_of_order_sale_leaves_the_same_figures(in_tenant, tenant_a, customer_a):
    with in_tenant(tenant_a):
        record(tenant_a, customer_a, "late", "10.00", at=T0 + timedelta(days=4))
        record(tenant_a, customer_a, "early", "20.00", at=T0)
        metrics = customer_metrics_get(customer_a)
    assert (metrics.first_purchase_at, metrics.last_purchase_at) == (T0, T0 + timedelta(days=4))
    assert metrics.purchase_frequency_days == Decimal("4.00")


def test_an_anonymous_sale_has_no_customer_and_touches_no_metrics(in_tenant, tenant_a, customer_a):
    with in_tenant(tenant_a):
        purchase, _ = record(tenant_a, None, "walk-in", "12.00", source="pos")
        assert purchase.customer_id is None
        assert not CustomerMetrics.objects.exists()


def test_another_currency_than_the_tenants_is_refused(in_tenant, tenant_a, customer_a):
    with in_tenant(tenant_a), pytest.raises(InvalidCurrency):
        record(tenant_a, customer_a, "usd", "10.00", currency="USD")
    with in_tenant(tenant_a):
        assert not Purchase.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_sales_of_one_customer_all_count(tenant_a, customer_a):
    from core.tenancy import tenant_context

    barrier = threading.Barrier(8)

    def sell(n: int) -> None:
        try:
            barrier.wait()
            with tenant_context(tenant_a):
                record(tenant_a, customer_a, f"C-{n}", "10.00", at=T0 + timedelta(days=n))
        finally:
            connection.close()

    threads = [threading.Thread(target=sell, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with tenant_context(tenant_a):
        metrics = customer_metrics_get(customer_a)
    assert (metrics.order_count, metrics.lifetime_value) == (8, Decimal("80.00"))


# --- REST ---------------------------------------------------------------------------------------------------------
def test_purchase_history_over_rest_with_filters_and_cursor_pages(in_tenant, tenant_a, customer_a, api_a):
    with in_tenant(tenant_a):
        for n in range(5):
            record(
                tenant_a, customer_a, f"O-{n}", f"{10 * (n + 1)}.00", at=T0 + timedelta(days=n), channel="web"
            )
        record(tenant_a, customer_a, "P-9", "99.00", at=T0 + timedelta(days=9), source="pos", store_id="s1",
               items=[{"sku": "LATTE", "category": "cafe", "quantity": 2, "unit_price": "49.50"}])  # fmt: skip

    url = f"/api/v1/customers/{customer_a.id}/purchases/"
    first = api_a.get(url, {"page_size": 4})
    assert first.status_code == 200, first.content
    body = first.json()
    assert [p["source_id"] for p in body["results"]] == ["P-9", "O-4", "O-3", "O-2"]
    assert body["results"][0]["items"] == [
        {"sku": "LATTE", "category": "cafe", "quantity": "2.000", "unit_price": "49.50"}
    ]
    assert body["results"][0]["total_amount"] == "99.00"
    second = api_a.get(body["next"]).json()
    assert [p["source_id"] for p in second["results"]] == ["O-1", "O-0"]
    assert second["next"] is None

    assert [p["source_id"] for p in api_a.get(url, {"source": "pos"}).json()["results"]] == ["P-9"]
    assert [p["source_id"] for p in api_a.get(url, {"sku": "LATTE"}).json()["results"]] == ["P-9"]
    assert [p["source_id"] for p in api_a.get(url, {"store_id": "s1"}).json()["results"]] == ["P-9"]
    in_range = api_a.get(
        url,
        {
            "completed_after": (T0 + timedelta(days=1)).isoformat(),
            "completed_before": (T0 + timedelta(days=3)).isoformat(),
        },
    )
    assert [p["source_id"] for p in in_range.json()["results"]] == ["O-2", "O-1"]
    assert [
        p["source_id"] for p in api_a.get(url, {"min_total": "40", "max_total": "60"}).json()["results"]
    ] == [
        "O-4",
        "O-3",
    ]


def test_metrics_over_rest(in_tenant, tenant_a, customer_a, api_a):
    url = f"/api/v1/customers/{customer_a.id}/metrics/"
    empty = api_a.get(url).json()
    assert (
        empty["order_count"] == 0 and empty["lifetime_value"] == "0.00" and empty["last_purchase_at"] is None
    )
    with in_tenant(tenant_a):
        record(tenant_a, customer_a, "O-1", "100.00", at=T0)
        record(tenant_a, customer_a, "O-2", "50.50", at=T0 + timedelta(days=3))
    body = api_a.get(url).json()
    assert body["order_count"] == 2
    assert body["lifetime_value"] == "150.50"
    assert body["average_order_value"] == "75.25"
    assert body["purchase_frequency_days"] == "3.00"
    assert body["currency"] == "CLP"
    assert body["days_since_last_purchase"] >= 0


def test_another_tenants_customer_is_not_found_and_the_scope_is_required(
    tenant_a, customer_a, api_b, api_client_for
):
    for suffix in ("purchases/", "metrics/"):
        response = api_b.get(f"/api/v1/customers/{customer_a.id}/{suffix}")
        assert response.status_code == 404
        assert response.json()["code"] == "customer_not_found"
    no_scope = api_client_for(tenant_a, scopes=["loyalty:read"])
    response = no_scope.get(f"/api/v1/customers/{customer_a.id}/purchases/")
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
