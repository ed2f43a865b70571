"""The back-office dashboard: KPI cards and charts, for staff, inside the admin's look.

Everything the page needs (Chart.js included) is served from the project's static files: many stores run without
internet access.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.errors import DomainError
from core.models import Tenant
from core.tenancy import tenant_context
from segmentation.api import DEFAULT_PERIOD_DAYS, PeriodInput, default_end, kpis_jsonable
from segmentation.selectors import analytics_kpis


def _tenant_for(request: HttpRequest) -> Tenant | None:
    """A staff user's own tenant; a superuser picks one (?tenant=slug), the first by default."""
    user = request.user
    if not user.is_superuser:
        tenant_id = getattr(user, "tenant_id", None)
        return Tenant.objects.filter(slug=tenant_id).first() if tenant_id else None
    wanted = request.GET.get("tenant")
    tenants = Tenant.objects.order_by("slug")
    return (tenants.filter(slug=wanted).first() if wanted else None) or tenants.first()


def _period(request: HttpRequest, tenant: Tenant) -> tuple[date, date, str]:
    data = PeriodInput(data=request.GET)
    error = ""
    if not data.is_valid():
        error = "The period is not valid; showing the last 30 days."
        values: dict[str, Any] = {}
    else:
        values = dict(data.validated_data)
    end = values.get("end") or default_end(tenant)
    start = values.get("start") or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    return start, end, error


def _chart_data(report: dict[str, Any]) -> dict[str, Any]:
    segments = report["segments"]
    rows = [row for row in segments["distribution"] if row["customers"] or row["previous"]]
    points = report["points"]
    credit = report["credit"]
    return kpis_jsonable(
        {
            "segments": {
                "as_of": segments["as_of"],
                "previous_as_of": segments["previous_as_of"],
                "labels": [row["label"] for row in rows],
                "current": [row["customers"] for row in rows],
                "previous": [row["previous"] or 0 for row in rows] if segments["previous_as_of"] else None,
            },
            "points": None
            if points is None
            else {
                "labels": [row["month"] for row in points.get("by_month", [])],
                "issued": [int(row.get("issued") or 0) for row in points.get("by_month", [])],
                "redeemed": [int(row.get("redeemed") or 0) for row in points.get("by_month", [])],
            },
            # A doughnut of nothing draws nothing: no chart until some credit is granted.
            "credit": None
            if credit is None or not (credit.get("used_total") or credit.get("available_total"))
            else {
                "used": Decimal(credit.get("used_total") or 0),
                "available": Decimal(credit.get("available_total") or 0),
            },
        }
    )


def _percent(value: Decimal | None) -> str:
    return "—" if value is None else f"{(value * 100).quantize(Decimal('0.1'))} %"


def _cards(report: dict[str, Any]) -> list[dict[str, str]]:
    """The KPI cards: label, value and the definition shown as a hint."""
    currency = report["currency"]
    definitions = report["definitions"]
    cards = [
        {"key": "active_customers", "label": "Active customers", "value": str(report["active_customers"])},
        {"key": "retention_rate", "label": "Retention rate", "value": _percent(report["retention_rate"])},
        {
            "key": "average_lifetime_value",
            "label": "Average lifetime value",
            "value": f"{report['average_lifetime_value']} {currency}",
        },
        {
            "key": "average_order_value",
            "label": "Average order value",
            "value": f"{report['average_order_value']} {currency}",
        },
        {
            "key": "purchase_frequency",
            "label": "Purchase frequency",
            "value": f"{report['purchase_frequency']} / customer",
        },
        {
            "key": "revenue",
            "label": "Revenue",
            "value": f"{report['revenue']} {currency} · {report['orders']} orders",
        },
    ]
    points = report["points"]
    if points is not None:
        cards += [
            {
                "key": "points",
                "label": "Points issued / redeemed",
                "value": f"{points.get('issued', 0)} / {points.get('redeemed', 0)}",
            },
            {
                "key": "liability",
                "label": "Outstanding points liability",
                "value": f"{points.get('liability', 0)} {currency} ({points.get('outstanding_points', 0)} pts)",
            },
        ]
    credit = report["credit"]
    if credit is not None:
        cards.append(
            {
                "key": "credit",
                "label": "Credit used / available",
                "value": f"{credit.get('used_total', 0)} / {credit.get('available_total', 0)} {currency} "
                f"({_percent(credit.get('utilisation'))} used)",
            }
        )
    segments = report["segments"]
    cards.append({"key": "vip", "label": "VIP customers", "value": str(segments.get("vip_count", 0))})
    for card in cards:
        card["hint"] = definitions.get(card["key"], "")
    return cards


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "tenants": list(Tenant.objects.order_by("slug")) if request.user.is_superuser else [],
    }
    tenant = _tenant_for(request)
    if tenant is None:
        context["error"] = "Your staff account belongs to no tenant."
        return TemplateResponse(request, "admin/segmentation/dashboard.html", context)
    start, end, error = _period(request, tenant)
    try:
        with tenant_context(tenant):
            report = analytics_kpis(start=start, end=end)
    except DomainError as exc:
        error = exc.message
        end = default_end(tenant)
        start = end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        with tenant_context(tenant):
            report = analytics_kpis(start=start, end=end)
    context.update(
        tenant=tenant,
        subtitle=tenant.name,
        error=error,
        report=report,
        chart_data=_chart_data(report),
        cards=_cards(report),
        start=start,
        end=end,
    )
    return TemplateResponse(request, "admin/segmentation/dashboard.html", context)
