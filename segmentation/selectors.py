"""Every read of segments and analytics the doors need (REST, gRPC `GetCustomerSegment`, the admin dashboard)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Q, QuerySet

from core.models import Tenant
from core.tenancy import require_tenant_slug, tenant_cached
from customers.models import Customer
from segmentation.errors import InvalidPeriod
from segmentation.models import (
    NO_PURCHASES,
    UNCLASSIFIED,
    CustomerSegment,
    SegmentationSettings,
    SegmentChange,
    SegmentRun,
)
from segmentation.rules import segment_label

ACTIVE_DAYS = 90
MAX_PERIOD_DAYS = 3660
CENT = Decimal("0.01")


@dataclass(frozen=True)
class SegmentView:
    segment: str
    recency_score: int
    frequency_score: int
    monetary_score: int
    is_vip: bool
    churn_risk: str  # "low" | "medium" | "high" | "" (no purchases, or never computed)
    computed_at: datetime | None
    as_of: date | None = None
    rule_version: int | None = None
    segment_since: date | None = None


UNCLASSIFIED_VIEW = SegmentView(
    segment=UNCLASSIFIED,
    recency_score=0,
    frequency_score=0,
    monetary_score=0,
    is_vip=False,
    churn_risk="",
    computed_at=None,
)


def run_latest(*, as_of_at_most: date | None = None) -> SegmentRun | None:
    """The current tenant's latest run (optionally the latest as of a date)."""
    runs = SegmentRun.objects.all()
    if as_of_at_most is not None:
        runs = runs.filter(as_of__lte=as_of_at_most)
    return runs.order_by("-as_of", "-rule_version").first()


def run_previous(run: SegmentRun) -> SegmentRun | None:
    return (
        SegmentRun.objects.filter(
            Q(as_of__lt=run.as_of) | Q(as_of=run.as_of, rule_version__lt=run.rule_version)
        )
        .order_by("-as_of", "-rule_version")
        .first()
    )


def segment_for_customer(customer: Customer) -> SegmentView:
    """The customer's segment from the latest run; 'unclassified' with zero scores when never computed."""
    row = CustomerSegment.objects.filter(customer_id=customer.pk).first()
    if row is None:
        return UNCLASSIFIED_VIEW
    # A row is rewritten only when it changes: every later run confirmed it, so it is as recent as the latest run.
    latest = run_latest()
    return SegmentView(
        segment=row.segment,
        recency_score=row.recency_score,
        frequency_score=row.frequency_score,
        monetary_score=row.monetary_score,
        is_vip=row.is_vip,
        churn_risk=row.churn_risk,
        computed_at=latest.finished_at if latest else row.updated_at,
        as_of=latest.as_of if latest else None,
        rule_version=latest.rule_version if latest else None,
        segment_since=row.segment_since,
    )


def segment_history(customer: Customer) -> QuerySet[SegmentChange]:
    """The customer's segment changes, newest first."""
    return SegmentChange.objects.filter(customer_id=customer.pk).order_by("-as_of", "-created_at", "-id")


# --- KPIs -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period_check(start: date, end: date) -> Period:
    if start > end:
        raise InvalidPeriod("start must not be after end.", start=start.isoformat(), end=end.isoformat())
    period = Period(start, end)
    if period.days > MAX_PERIOD_DAYS:
        raise InvalidPeriod(f"The period may span at most {MAX_PERIOD_DAYS} days.", days=period.days)
    return period


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(numerator: Any, denominator: Any, places: str = "0.0001") -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


_PURCHASE_KPIS = """
WITH per_customer AS (
    SELECT p.customer_id,
           sum(p.total_amount) AS lifetime_value,
           count(*) FILTER (WHERE p.completed_at >= %(start)s) AS orders,
           coalesce(sum(p.total_amount) FILTER (WHERE p.completed_at >= %(start)s), 0) AS revenue,
           bool_or(p.completed_at >= %(previous_start)s AND p.completed_at < %(start)s) AS in_previous,
           bool_or(p.completed_at >= %(active_from)s) AS active
    FROM customers_purchase p
    WHERE p.completed_at < %(end)s
    GROUP BY p.customer_id
)
SELECT
    count(*) FILTER (WHERE customer_id IS NOT NULL AND active),
    coalesce(sum(orders), 0)::bigint,
    coalesce(sum(revenue), 0),
    coalesce(sum(orders) FILTER (WHERE customer_id IS NOT NULL), 0)::bigint,
    count(*) FILTER (WHERE customer_id IS NOT NULL AND orders > 0),
    count(*) FILTER (WHERE customer_id IS NOT NULL AND in_previous),
    count(*) FILTER (WHERE customer_id IS NOT NULL AND in_previous AND orders > 0),
    count(*) FILTER (WHERE customer_id IS NOT NULL),
    coalesce(sum(lifetime_value) FILTER (WHERE customer_id IS NOT NULL), 0)
FROM per_customer
"""

DEFINITIONS = {
    "active_customers": f"Customers with at least one purchase in the {ACTIVE_DAYS} days ending on `end`.",
    "retention_rate": "Of the customers who bought in the previous period of the same length (the days just "
    "before `start`), the share who bought again within the period. Null when nobody bought then.",
    "average_lifetime_value": "Total spend up to `end` of the customers who ever bought, divided by their number.",
    "average_order_value": "Revenue of the period divided by its purchases (anonymous sales included).",
    "purchase_frequency": "Purchases of identified customers in the period per customer who bought in it.",
    "segments": "Customers per segment in the latest run as of `end`, against the run before it.",
}


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """Another app's KPI function when that app provides it (each app ships its own selectors)."""
    try:
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _purchase_kpis(tenant: Tenant, period: Period) -> dict[str, Any]:
    zone = ZoneInfo(tenant.time_zone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=zone)

    after_end = period.end + timedelta(days=1)
    params = {
        "start": midnight(period.start),
        "end": midnight(after_end),
        "previous_start": midnight(period.start - timedelta(days=period.days)),
        "active_from": midnight(after_end - timedelta(days=ACTIVE_DAYS)),
    }
    with connection.cursor() as cursor:
        cursor.execute(_PURCHASE_KPIS, params)
        (
            active,
            orders,
            revenue,
            identified_orders,
            buyers,
            previous_buyers,
            retained,
            customers_ever,
            lifetime_total,
        ) = cursor.fetchone()
    return {
        "active_customers": int(active),
        "orders": int(orders),
        "revenue": _money(revenue),
        "purchasing_customers": int(buyers),
        "previous_period_customers": int(previous_buyers),
        "retained_customers": int(retained),
        "retention_rate": _ratio(retained, previous_buyers),
        "average_lifetime_value": _money(Decimal(lifetime_total) / customers_ever)
        if customers_ever
        else _money(0),
        "average_order_value": _money(Decimal(revenue) / orders) if orders else _money(0),
        "purchase_frequency": _ratio(identified_orders, buyers, "0.01") or Decimal("0.00"),
    }


def _points_kpis(tenant: Tenant, period: Period) -> dict[str, Any] | None:
    points_kpis = _optional("loyalty.selectors", "points_kpis")
    points_by_month = _optional("loyalty.selectors", "points_by_month")
    if points_kpis is None:
        return None
    zone = ZoneInfo(tenant.time_zone)
    totals = dict(
        points_kpis(
            start=datetime.combine(period.start, time.min, tzinfo=zone),
            end=datetime.combine(period.end + timedelta(days=1), time.min, tzinfo=zone),
        )
    )
    totals["by_month"] = list(points_by_month(months=12)) if points_by_month is not None else []
    return totals


def _credit_kpis() -> dict[str, Any] | None:
    credit_kpis = _optional("credit.selectors", "credit_kpis")
    if credit_kpis is None:
        return None
    totals = dict(credit_kpis())
    totals["utilisation"] = _ratio(totals.get("used_total") or 0, totals.get("limit_total"))
    return totals


def segment_movement(*, as_of_at_most: date | None = None) -> dict[str, Any]:
    """The distribution of the latest run against the run before it, and the commonest moves between them."""
    latest = run_latest(as_of_at_most=as_of_at_most)
    if latest is None:
        return {"as_of": None, "previous_as_of": None, "distribution": [], "transitions": [], "vip_count": 0}
    previous = run_previous(latest)
    now, before = latest.distribution, previous.distribution if previous else {}
    rules = latest.rules.get("rules", []) if isinstance(latest.rules, dict) else []
    labels = {rule["segment"]: rule.get("label", "") for rule in rules}
    order = [rule["segment"] for rule in rules]
    order += [s for s in (NO_PURCHASES, UNCLASSIFIED) if s not in order]
    seen = set(now) | set(before)
    segments = [s for s in dict.fromkeys(order) if s in labels or s in seen]
    segments += sorted(seen - set(segments))
    distribution = [
        {
            "segment": s,
            "label": segment_label(s, labels),
            "customers": int(now.get(s, 0)),
            "previous": int(before.get(s, 0)) if previous else None,
            "change": int(now.get(s, 0)) - int(before.get(s, 0)) if previous else None,
        }
        for s in segments
    ]
    transitions = [
        {
            "from": row["old_segment"],
            "to": row["new_segment"],
            "from_label": segment_label(row["old_segment"], labels),
            "to_label": segment_label(row["new_segment"], labels),
            "customers": row["n"],
        }
        for row in SegmentChange.objects.filter(run=latest)
        .values("old_segment", "new_segment")
        .annotate(n=Count("id"))
        .order_by("-n", "old_segment", "new_segment")[:20]
    ]
    return {
        "as_of": latest.as_of,
        "rule_version": latest.rule_version,
        "computed_at": latest.finished_at,
        "previous_as_of": previous.as_of if previous else None,
        "customers_total": latest.customers_total,
        "vip_count": latest.vip_count,
        "churn_risk": latest.churn_distribution,
        "segment_changes": latest.segment_changes,
        "distribution": distribution,
        "transitions": transitions,
    }


def analytics_kpis(*, start: date, end: date) -> dict[str, Any]:
    """The tenant's KPIs for a period (dates inclusive, in the tenant's time zone)."""
    period = period_check(start, end)
    tenant = tenant_cached(require_tenant_slug())
    return {
        "period": {"start": period.start, "end": period.end, "days": period.days},
        "currency": tenant.currency,
        **_purchase_kpis(tenant, period),
        "points": _points_kpis(tenant, period),
        "credit": _credit_kpis(),
        "segments": segment_movement(as_of_at_most=period.end),
        "definitions": DEFINITIONS,
    }


def rfm_run_due(as_of: date) -> bool:
    """True when the current tenant has no run as of that date under its current rule version."""
    config = SegmentationSettings.objects.first()
    version = config.rule_version if config else 1
    return not SegmentRun.objects.filter(as_of=as_of, rule_version=version).exists()


def segments_by_customer(customer_ids: list[Any]) -> dict[Any, tuple[str, bool]]:
    """(segment, is VIP) of each classified customer (the customers list shows it per row)."""
    rows = CustomerSegment.objects.filter(customer_id__in=customer_ids).values_list(
        "customer_id", "segment", "is_vip"
    )
    return {customer_id: (segment, is_vip) for customer_id, segment, is_vip in rows}
