"""Every read of commercial credit the doors need: summaries, lists, aging, payment behaviour and KPIs.

All of them run inside the caller's `tenant_context` and never write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet, Sum

from core import clock
from core.tenancy import current_tenant, tenant_cached
from credit.errors import CreditLineNotFound
from credit.models import (
    OPEN_STATUSES,
    UNPAID_STATUSES,
    ZERO,
    CreditCharge,
    CreditChargeStatus,
    CreditHold,
    CreditHoldStatus,
    CreditLine,
    CreditLineStatus,
    CreditPayment,
    VolumeDiscountBracket,
)
from customers.models import Customer

AGING_BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")


@dataclass(frozen=True)
class CreditSummary:
    status: str
    credit_limit: Decimal
    available: Decimal
    currency: str
    payment_terms_days: int
    credit_line_id: UUID | None = None
    requested_limit: Decimal = ZERO
    used: Decimal = ZERO
    charges_outstanding: Decimal = ZERO
    holds_active: Decimal = ZERO
    overdue_amount: Decimal = ZERO
    unapplied_credit: Decimal = ZERO


@dataclass(frozen=True)
class AgingReport:
    """Unpaid charges by days past their due date; `current` is not yet due (or due today)."""

    buckets: dict[str, Decimal]
    total: Decimal
    currency: str
    as_of: date


@dataclass(frozen=True)
class CustomerAging:
    customer_id: UUID
    customer_name: str
    aging: AgingReport


@dataclass(frozen=True)
class PaymentBehaviour:
    """How the customer has paid: days late on settled charges, and on unpaid ones past due today."""

    charges_paid: int
    paid_on_time: int
    paid_late: int
    average_days_late: Decimal
    max_days_late: int
    unpaid_overdue: int
    oldest_overdue_days: int
    late_charges: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CommercialTerms:
    customer_id: UUID
    currency: str
    credit_status: str
    payment_terms_days: int | None
    volume_discounts: list[VolumeDiscountBracket]


def credit_today() -> date:
    """Today in the current tenant's time zone, by the clock (due dates and overdue count in it)."""
    return clock.today(current_tenant().time_zone)


# --- Lines -----------------------------------------------------------------------------------------------------------
def credit_line_open(customer: Customer) -> CreditLine | None:
    """The customer's one open line (requested, approved, suspended or on hold), if any."""
    return CreditLine.objects.filter(customer_id=customer.pk, status__in=OPEN_STATUSES).first()


def credit_line_current(customer: Customer) -> CreditLine | None:
    """The customer's open line, else its latest (rejected or closed) one, else None."""
    return (
        credit_line_open(customer)
        or CreditLine.objects.filter(customer_id=customer.pk).order_by("-created_at").first()
    )


def credit_line_list(*, status: str | None = None, customer_id: Any = None) -> QuerySet[CreditLine]:
    qs = CreditLine.objects.select_related("customer")
    if status:
        qs = qs.filter(status=status)
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    return qs


def credit_line_get(line_id: Any) -> CreditLine:
    """A line of the current tenant; another tenant's (or a malformed id) is 'not found'."""
    try:
        uuid = line_id if isinstance(line_id, UUID) else UUID(str(line_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CreditLineNotFound(credit_line_id=str(line_id)) from exc
    line = CreditLine.objects.select_related("customer").filter(pk=uuid).first()
    if line is None:
        raise CreditLineNotFound(credit_line_id=str(line_id))
    return line


def credit_summary(customer: Customer) -> CreditSummary | None:
    """What GetCustomer and the customer's credit page show; None when the customer never had a line."""
    line = credit_line_current(customer)
    if line is None:
        return None
    charges = CreditCharge.objects.filter(line=line, status__in=UNPAID_STATUSES).aggregate(
        total_outstanding=Sum("outstanding"),
        total_overdue=Sum("outstanding", filter=Q(status=CreditChargeStatus.OVERDUE)),
    )
    holds = CreditHold.objects.filter(line=line, status=CreditHoldStatus.ACTIVE).aggregate(
        total=Sum("amount")
    )
    unapplied = CreditPayment.objects.filter(line__customer_id=customer.pk).aggregate(
        total=Sum("unapplied_amount")
    )
    return CreditSummary(
        status=line.status,
        credit_limit=line.approved_limit,
        available=line.available,
        currency=line.currency,
        payment_terms_days=line.payment_terms_days,
        credit_line_id=line.pk,
        requested_limit=line.requested_limit,
        used=line.exposure,
        charges_outstanding=charges["total_outstanding"] or ZERO,
        holds_active=holds["total"] or ZERO,
        overdue_amount=charges["total_overdue"] or ZERO,
        unapplied_credit=unapplied["total"] or ZERO,
    )


def credit_kpis() -> dict[str, Any]:
    """Credit used vs available across the tenant (the dashboard). Limits and exposure count every line that can
    still owe (approved, on hold, suspended); available counts only approved lines, the ones that can be used."""
    live = CreditLine.objects.filter(
        status__in=[CreditLineStatus.APPROVED, CreditLineStatus.ON_HOLD, CreditLineStatus.SUSPENDED]
    )
    totals = live.aggregate(
        limit_total=Sum("approved_limit"),
        used_total=Sum("exposure"),
        lines_active=Count("pk", filter=Q(status=CreditLineStatus.APPROVED)),
        lines_on_hold=Count("pk", filter=Q(status=CreditLineStatus.ON_HOLD)),
    )
    available = sum(
        (
            max(ZERO, limit - used)
            for limit, used in live.filter(status=CreditLineStatus.APPROVED).values_list(
                "approved_limit", "exposure"
            )
        ),
        ZERO,
    )
    return {
        "limit_total": totals["limit_total"] or ZERO,
        "used_total": totals["used_total"] or ZERO,
        "available_total": available,
        "lines_active": totals["lines_active"] or 0,
        "lines_on_hold": totals["lines_on_hold"] or 0,
        "lines_pending": CreditLine.objects.filter(status=CreditLineStatus.REQUESTED).count(),
        "overdue_total": CreditCharge.objects.filter(status=CreditChargeStatus.OVERDUE).aggregate(
            total=Sum("outstanding")
        )["total"]
        or ZERO,
    }


def credit_lines_for_overdue_run(*, today: date) -> list[UUID]:
    """Lines the nightly run must look at, in primary-key order (the order every multi-line job locks them in):
    open charges past due, approved lines with overdue charges, and lines on hold (which paying may release)."""
    return list(
        CreditLine.objects.filter(
            Q(charges__status=CreditChargeStatus.OPEN, charges__due_date__lt=today)
            | Q(status=CreditLineStatus.APPROVED, charges__status=CreditChargeStatus.OVERDUE)
            | Q(status=CreditLineStatus.ON_HOLD)
        )
        .values_list("pk", flat=True)
        .distinct()
        .order_by("pk")
    )


def credit_lines_with_expired_holds(*, now: datetime) -> list[UUID]:
    """Lines with an active hold whose time is up, in primary-key order."""
    return list(
        CreditHold.objects.filter(status=CreditHoldStatus.ACTIVE, expires_at__lte=now)
        .values_list("line_id", flat=True)
        .distinct()
        .order_by("line_id")
    )


# --- Documents ------------------------------------------------------------------------------------------------------
def charge_list(*, customer: Customer, status: str | None = None) -> QuerySet[CreditCharge]:
    qs = CreditCharge.objects.filter(line__customer_id=customer.pk).order_by("-created_at", "pk")
    return qs.filter(status=status) if status else qs


def hold_list(*, customer: Customer, status: str | None = None) -> QuerySet[CreditHold]:
    qs = CreditHold.objects.filter(line__customer_id=customer.pk).order_by("-created_at", "pk")
    return qs.filter(status=status) if status else qs


def payment_list(*, customer: Customer) -> QuerySet[CreditPayment]:
    return (
        CreditPayment.objects.filter(line__customer_id=customer.pk)
        .prefetch_related("allocations__charge")
        .order_by("-received_at", "pk")
    )


# --- Aging -----------------------------------------------------------------------------------------------------------
def aging_bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1_30"
    if days_past_due <= 60:
        return "31_60"
    if days_past_due <= 90:
        return "61_90"
    return "over_90"


def _aging(rows: list[tuple[date, Decimal]], *, today: date, currency: str) -> AgingReport:
    buckets = dict.fromkeys(AGING_BUCKETS, ZERO)
    for due_date, outstanding in rows:
        buckets[aging_bucket((today - due_date).days)] += outstanding
    return AgingReport(buckets=buckets, total=sum(buckets.values(), ZERO), currency=currency, as_of=today)


def _unpaid() -> QuerySet[CreditCharge]:
    return CreditCharge.objects.filter(status__in=UNPAID_STATUSES, outstanding__gt=0)


def credit_aging(*, customer: Customer | None = None, today: date | None = None) -> AgingReport:
    """Aging of one customer's unpaid charges, or of the whole tenant's when no customer is given."""
    tenant = tenant_cached(customer.tenant_id) if customer is not None else current_tenant()
    today = today or clock.today(tenant.time_zone)
    qs = _unpaid()
    if customer is not None:
        qs = qs.filter(line__customer_id=customer.pk)
    return _aging(list(qs.values_list("due_date", "outstanding")), today=today, currency=tenant.currency)


def credit_aging_by_customer(*, today: date | None = None) -> list[CustomerAging]:
    """The tenant's aging, one row per customer that owes anything, largest balance first."""
    tenant = current_tenant()
    today = today or clock.today(tenant.time_zone)
    per_customer: dict[UUID, list[tuple[date, Decimal]]] = {}
    for customer_id, due_date, outstanding in _unpaid().values_list(
        "line__customer_id", "due_date", "outstanding"
    ):
        per_customer.setdefault(customer_id, []).append((due_date, outstanding))
    customers = Customer.objects.in_bulk(list(per_customer))
    rows = [
        CustomerAging(
            customer_id=customer_id,
            customer_name=customers[customer_id].display_name
            if customer_id in customers
            else str(customer_id),
            aging=_aging(charges, today=today, currency=tenant.currency),
        )
        for customer_id, charges in per_customer.items()
    ]
    return sorted(rows, key=lambda row: (-row.aging.total, row.customer_name))


# --- Payment behaviour -----------------------------------------------------------------------------------------------
def payment_behaviour(customer: Customer, *, today: date | None = None) -> PaymentBehaviour:
    """Days late on the customer's past charges: what a credit manager weighs before approving."""
    tz = ZoneInfo(tenant_cached(customer.tenant_id).time_zone)
    today = today or clock.now().astimezone(tz).date()
    paid = list(
        CreditCharge.objects.filter(line__customer_id=customer.pk, status=CreditChargeStatus.PAID)
        .exclude(paid_at__isnull=True)
        .values_list("order_id", "due_date", "paid_at")
    )
    lateness = [
        (order_id, due, max(0, (paid_at.astimezone(tz).date() - due).days))
        for order_id, due, paid_at in paid
        if paid_at is not None
    ]
    late = [row for row in lateness if row[2] > 0]
    overdue = list(
        _unpaid()
        .filter(line__customer_id=customer.pk, due_date__lt=today)
        .values_list("order_id", "due_date", "outstanding")
    )
    return PaymentBehaviour(
        charges_paid=len(lateness),
        paid_on_time=len(lateness) - len(late),
        paid_late=len(late),
        average_days_late=(
            (Decimal(sum(days for *_, days in lateness)) / len(lateness)).quantize(Decimal("0.1"))
            if lateness
            else Decimal("0.0")
        ),
        max_days_late=max((days for *_, days in lateness), default=0),
        unpaid_overdue=len(overdue),
        oldest_overdue_days=max(((today - due).days for _, due, _ in overdue), default=0),
        late_charges=[
            {"order_id": order_id, "due_date": due, "days_late": days}
            for order_id, due, days in sorted(late, key=lambda r: -r[2])[:10]
        ],
    )


# --- Commercial terms -------------------------------------------------------------------------------------------------
def commercial_terms(customer: Customer) -> CommercialTerms:
    """A B2B customer's terms as the Pricing service reads them: payment terms and volume discount brackets."""
    line = credit_line_current(customer)
    return CommercialTerms(
        customer_id=customer.pk,
        currency=tenant_cached(customer.tenant_id).currency,
        credit_status=line.status if line else "none",
        payment_terms_days=line.payment_terms_days if line else None,
        volume_discounts=list(VolumeDiscountBracket.objects.filter(customer_id=customer.pk)),
    )


def open_lines_by_customer(customer_ids: list[Any]) -> dict[Any, CreditLine]:
    """Each customer's open credit line (requested, approved, on hold, suspended), for the customers list."""
    return {
        line.customer_id: line
        for line in CreditLine.objects.filter(customer_id__in=customer_ids, status__in=OPEN_STATUSES)
    }
