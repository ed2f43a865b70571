"""The back-office dashboard: KPI cards and charts, for staff, inside the admin's look.

Everything the page needs (Chart.js included) is served from the project's static files: many stores run without
internet access.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from core.backoffice import displayed_for
from core.display import money_display, number_display, percent_display, tenant_locale
from core.errors import DomainError
from core.models import Tenant
from core.tenancy import tenant_context
from segmentation.api import DEFAULT_PERIOD_DAYS, PeriodInput, kpis_jsonable
from segmentation.selectors import analytics_kpis

APPROVE_PERMISSION = "credit.approve_creditline"


def _tenant_for(request: HttpRequest) -> Tenant | None:
    """A staff user's own tenant; a superuser picks one (?tenant=slug), the first by default."""
    user = request.user
    if not user.is_superuser:
        tenant_id = getattr(user, "tenant_id", None)
        return Tenant.objects.filter(slug=tenant_id).first() if tenant_id else None
    wanted = request.GET.get("tenant")
    tenants = Tenant.objects.order_by("slug")
    return (tenants.filter(slug=wanted).first() if wanted else None) or tenants.first()


def _today(tenant: Tenant) -> date:
    return timezone.now().astimezone(ZoneInfo(tenant.time_zone)).date()


def _period(request: HttpRequest, tenant: Tenant) -> tuple[date, date, str]:
    """The period asked for, else the last 30 days up to and including today (what a manager opens the page for)."""
    data = PeriodInput(data=request.GET)
    error = ""
    if not data.is_valid():
        error = _("The period is not valid; showing the last 30 days.")
        values: dict[str, Any] = {}
    else:
        values = dict(data.validated_data)
    end = values.get("end") or _today(tenant)
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


def _cards(report: dict[str, Any], tenant: Tenant, user: Any) -> list[dict[str, str]]:
    """The KPI cards: label, value (money and counts as people read them), the definition as a hint, and where
    the card leads."""
    locale = tenant_locale(tenant)
    currency = report["currency"]
    definitions = report["definitions"]

    def money(amount: Any) -> str:
        return money_display(Decimal(amount or 0), currency, locale)

    def count(value: Any) -> str:
        return number_display(value or 0, locale)

    cards: list[dict[str, str]] = []
    credit = report["credit"]
    if credit is not None:
        queue = reverse("admin:credit_creditrequest_changelist") if user.has_perm(APPROVE_PERMISSION) else ""
        lines = (
            reverse("admin:credit_creditline_changelist") if user.has_perm("credit.view_creditline") else ""
        )
        cards += [
            {
                "key": "credit_pending",
                "label": _("Credit requests waiting"),
                "value": count(credit.get("lines_pending")),
                "url": queue,
            },
            {
                "key": "credit_overdue",
                "label": _("Overdue credit"),
                "value": money(credit.get("overdue_total")),
                "url": reverse("admin:credit_creditline_aging") if lines else "",
            },
            {
                "key": "credit_on_hold",
                "label": _("Lines on hold"),
                "value": count(credit.get("lines_on_hold")),
                "url": f"{lines}?status__exact=on_hold" if lines else "",
            },
        ]
    points = report["points"]
    if points is not None:
        cards.append(
            {
                "key": "liability",
                "label": _("Points liability"),
                "value": _("%(money)s (%(points)s points)")
                % {
                    "money": money(points.get("liability")),
                    "points": count(points.get("outstanding_points")),
                },
            }
        )
    cards += [
        {
            "key": "active_customers",
            "label": _("Active customers"),
            "value": count(report["active_customers"]),
        },
        {
            "key": "retention_rate",
            "label": _("Retention rate"),
            "value": percent_display(report["retention_rate"], locale),
        },
        {
            "key": "revenue",
            "label": _("Revenue"),
            "value": _("%(money)s · %(orders)s orders")
            % {"money": money(report["revenue"]), "orders": count(report["orders"])},
        },
        {
            "key": "average_order_value",
            "label": _("Average order value"),
            "value": money(report["average_order_value"]),
        },
        {
            "key": "average_lifetime_value",
            "label": _("Average lifetime value"),
            "value": money(report["average_lifetime_value"]),
        },
        {
            "key": "purchase_frequency",
            "label": _("Purchase frequency"),
            "value": _("%(count)s / customer")
            % {"count": number_display(report["purchase_frequency"], locale)},
        },
    ]
    if points is not None:
        cards.append(
            {
                "key": "points",
                "label": _("Points issued / redeemed"),
                "value": f"{count(points.get('issued'))} / {count(points.get('redeemed'))}",
            }
        )
    if credit is not None:
        cards.append(
            {
                "key": "credit",
                "label": _("Credit used / available"),
                "value": _("%(used)s / %(available)s (%(ratio)s used)")
                % {
                    "used": money(credit.get("used_total")),
                    "available": money(credit.get("available_total")),
                    "ratio": percent_display(credit.get("utilisation"), locale),
                },
            }
        )
    segments = report["segments"]
    cards.append({"key": "vip", "label": _("VIP customers"), "value": count(segments.get("vip_count", 0))})
    for card in cards:
        card["hint"] = definitions.get(card["key"], "")
        card.setdefault("url", "")
    return cards


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "tenants": list(Tenant.objects.order_by("slug")) if request.user.is_superuser else [],
    }
    tenant = _tenant_for(request)
    if tenant is None:
        context["error"] = _("Your staff account belongs to no tenant.")
        return TemplateResponse(request, "admin/segmentation/dashboard.html", context)
    start, end, error = _period(request, tenant)
    try:
        with tenant_context(tenant):
            report = analytics_kpis(start=start, end=end)
    except DomainError as exc:
        error = exc.message
        end = _today(tenant)
        start = end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        with tenant_context(tenant):
            report = analytics_kpis(start=start, end=end)
    context.update(
        tenant=tenant,
        subtitle=tenant.name,
        error=error,
        report=report,
        chart_data={
            **_chart_data(report),
            "locale": tenant_locale(tenant).replace("_", "-"),
            "text": _chart_text(),
        },
        cards=_cards(report, tenant, request.user),
        start=start,
        end=end,
    )
    with displayed_for(tenant):
        return TemplateResponse(request, "admin/segmentation/dashboard.html", context).render()


def _chart_text() -> dict[str, str]:
    return {
        "as_of": _("As of"),
        "issued": _("Issued"),
        "redeemed": _("Redeemed"),
        "used": _("Used"),
        "available": _("Available"),
    }
