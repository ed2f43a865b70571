"""The admin dashboard: staff only, its own tenant's KPIs, and charts drawn in headless Chromium from files the
project serves itself (no CDN)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from core.models import User
from core.tenancy import tenant_context
from segmentation import selectors
from segmentation.services import rfm_recompute
from tests.segmentation.conftest import AS_OF, seed_hand_fixture
from tests.segmentation.factories import purchase

PASSWORD = "dashboard-pass-123"


def fake_other_apps(monkeypatch: Any) -> None:
    """The loyalty and credit KPIs as their apps provide them (their own tests cover the figures)."""

    def points_kpis(*, start: Any, end: Any) -> dict[str, Any]:
        return {
            "issued": 5400,
            "redeemed": 1200,
            "expired": 0,
            "outstanding_points": 4200,
            "liability": Decimal("42"),
        }

    def points_by_month(*, months: int) -> list[dict[str, Any]]:
        return [
            {"month": f"2025-{m:02d}", "issued": 400 + 50 * m, "redeemed": 100 + 20 * m}
            for m in range(1, months + 1)
        ]

    def credit_kpis() -> dict[str, Any]:
        return {
            "limit_total": Decimal("5000.00"),
            "used_total": Decimal("1750.00"),
            "available_total": Decimal("3250.00"),
            "lines_active": 3,
            "lines_on_hold": 1,
        }

    functions = {"points_kpis": points_kpis, "points_by_month": points_by_month, "credit_kpis": credit_kpis}
    monkeypatch.setattr(selectors, "_optional", lambda module, name: functions[name])


def prepare(tenant: Any) -> None:
    people = seed_hand_fixture(tenant)
    with tenant_context(tenant):
        rfm_recompute(tenant=tenant, as_of=AS_OF)
    purchase(tenant, people["I"], "50", AS_OF + timedelta(days=2))
    with tenant_context(tenant):
        rfm_recompute(tenant=tenant, as_of=AS_OF + timedelta(days=2))


def staff_of(tenant: Any, username: str = "staff-a") -> User:
    user = User.objects.create_user(username, password=PASSWORD, tenant=tenant)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


PERIOD = {"start": "2025-03-01", "end": "2025-04-02"}


@pytest.mark.django_db
def test_the_dashboard_is_for_staff_only(client, tenant_a):
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    User.objects.create_user("not-staff", password=PASSWORD, tenant=tenant_a)
    client.login(username="not-staff", password=PASSWORD)
    assert client.get("/admin/dashboard/").status_code == 302


@pytest.mark.django_db
def test_the_dashboard_shows_its_own_tenants_kpis_from_local_files(client, tenant_a, tenant_b, monkeypatch):
    fake_other_apps(monkeypatch)
    prepare(tenant_a)
    seed_hand_fixture(tenant_b)
    with tenant_context(tenant_b):
        rfm_recompute(tenant=tenant_b, as_of=AS_OF)
    client.force_login(staff_of(tenant_a))
    response = client.get("/admin/dashboard/", PERIOD)
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["report"]["segments"]["customers_total"] == 12
    assert response.context["tenant"] == tenant_a and not response.context["tenants"]
    for canvas in ("chart-segments", "chart-points", "chart-credit"):
        assert f'id="{canvas}"' in html
    assert 'data-kpi="active_customers"' in html and 'data-kpi="retention_rate"' in html
    assert "/static/vendor/chart.umd.min.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), (
        "the page must not load anything from outside"
    )


@pytest.mark.django_db
def test_without_loyalty_and_credit_kpis_the_dashboard_says_so(client, tenant_a, monkeypatch):
    monkeypatch.setattr(selectors, "_optional", lambda module, name: None)
    client.force_login(staff_of(tenant_a))
    html = client.get("/admin/dashboard/").content.decode()
    assert "Loyalty KPIs are not available" in html and "Credit KPIs are not available" in html
    assert "No segmentation run yet" in html


@pytest.mark.django_db
def test_the_dashboard_renders_with_the_loyalty_and_credit_apps_own_kpis(client, tenant_a):
    prepare(tenant_a)
    client.force_login(staff_of(tenant_a))
    response = client.get("/admin/dashboard/", PERIOD)
    assert response.status_code == 200
    report = response.context["report"]
    html = response.content.decode()
    if report["points"] is not None:
        assert 'id="chart-points"' in html and 'data-kpi="liability"' in html
    if report["credit"] is not None:
        assert 'data-kpi="credit"' in html
        assert 'id="chart-credit"' in html or "No credit granted yet." in html


def drawn_pixels(page: Any, canvas_id: str) -> int:
    return int(
        page.evaluate(
            """(id) => {
                const canvas = document.getElementById(id);
                const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                let drawn = 0;
                for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { drawn++; } }
                return drawn;
            }""",
            canvas_id,
        )
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_draws_its_charts_in_headless_chromium(live_server, page, tenant_a, monkeypatch):
    fake_other_apps(monkeypatch)
    prepare(tenant_a)
    staff_of(tenant_a)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(
        f"{live_server.url}/admin/login/?next=/admin/dashboard/%3Fstart%3D2025-03-01%26end%3D2025-04-02"
    )
    page.fill("#id_username", "staff-a")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/dashboard/.*"))
    page.wait_for_function("window.dashboardReady === true", timeout=10_000)

    assert page.evaluate("window.dashboardCharts.length") == 3
    for canvas_id in ("chart-segments", "chart-points", "chart-credit"):
        assert drawn_pixels(page, canvas_id) > 2_000, f"{canvas_id} looks blank"
    assert (
        page.locator('[data-kpi="active_customers"] .dashboard-card-value').inner_text() == "8"
    )  # A to G, and I who came back
    assert "Champions" in page.evaluate("window.dashboardCharts[0].data.labels.join(',')")
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        page.screenshot(path=os.environ["DASHBOARD_SCREENSHOT"], full_page=True)
    outside = [url for url in requested if not url.startswith(live_server.url)]
    assert outside == [], f"requests outside the project: {outside}"
