"""The events of a credit line's life after approval: what the Order Service needs to stop (or resume) selling on
credit, written in the caller's transaction through the outbox.

Every event carries the line's state as the transaction leaves it (`status`, `usable`, limit, exposure), so a
consumer can act on the latest event it received whatever order they arrive in: `usable` false means refuse new
credit sales now.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Min, Sum

from core.outbox import outbox_record
from credit.models import UNPAID_STATUSES, ZERO, CreditCharge, CreditLine, CreditLineStatus, CreditPayment
from credit.services.inputs import overdue_grace_days


def _line_state(line: CreditLine) -> dict[str, Any]:
    return {
        "credit_line_id": str(line.pk),
        "customer_id": str(line.customer_id),
        "status": line.status,
        "usable": line.status == CreditLineStatus.APPROVED,
        "credit_limit": line.approved_limit,
        "used": line.exposure,
        "available": line.available,
        "currency": line.currency,
        "payment_terms_days": line.payment_terms_days,
    }


def _record(line: CreditLine, event_type: str, data: dict[str, Any]) -> None:
    outbox_record(
        tenant_id=line.tenant_id,
        event_type=event_type,
        data={**_line_state(line), **data},
        aggregate_id=str(line.customer_id),
    )


def line_status_event(
    line: CreditLine, event_type: str, *, previous_status: str, actor: str, reason: str = ""
) -> None:
    """`credit.suspended`, `credit.reinstated` or `credit.closed`: the line's new state and who changed it, why."""
    _record(
        line,
        event_type,
        {
            "previous_status": previous_status,
            "reason": reason,
            "changed_by": actor,
            "changed_at": line.status_changed_at,
        },
    )


def overdue_hold_event(
    line: CreditLine, *, placed: bool, previous_status: str, actor: str, today: date
) -> None:
    """`credit.hold.placed` / `credit.hold.released`: the overdue hold (not a checkout hold) and what is overdue."""
    cutoff = today - timedelta(days=overdue_grace_days())
    overdue = CreditCharge.objects.filter(
        line=line, status__in=UNPAID_STATUSES, due_date__lt=cutoff
    ).aggregate(amount=Sum("outstanding"), oldest=Min("due_date"))
    _record(
        line,
        "credit.hold.placed" if placed else "credit.hold.released",
        {
            "hold": "overdue",
            "previous_status": previous_status,
            "reason": line.status_reason,
            "overdue_amount": overdue["amount"] or ZERO,
            "oldest_overdue_due_date": overdue["oldest"],
            "grace_days": overdue_grace_days(),
            "changed_by": actor,
            "changed_at": line.status_changed_at,
        },
    )


def limit_changed_event(
    line: CreditLine,
    *,
    previous_limit: Decimal | None,
    previous_terms: int,
    actor: str,
    reason: str,
    changed_at: Any,
) -> None:
    """`credit.limit.changed`: the new limit and terms next to the old ones."""
    _record(
        line,
        "credit.limit.changed",
        {
            "previous_credit_limit": previous_limit,
            "previous_payment_terms_days": previous_terms,
            "reason": reason,
            "changed_by": actor,
            "changed_at": changed_at,
        },
    )


def payment_recorded_event(line: CreditLine, payment: CreditPayment, allocations: list[Any]) -> None:
    """`credit.payment.recorded`: the payment, the charges it paid, and the line's exposure after it."""
    _record(
        line,
        "credit.payment.recorded",
        {
            "payment_id": payment.payment_id,
            "amount": payment.amount,
            "applied_amount": payment.amount - payment.unapplied_amount,
            "unapplied_amount": payment.unapplied_amount,
            "payment_currency": payment.currency,
            "order_id": payment.order_id,
            "received_at": payment.received_at,
            "allocations": [
                {"usage_id": str(a.charge_id), "order_id": a.charge.order_id, "amount": a.amount}
                for a in allocations
            ],
        },
    )
