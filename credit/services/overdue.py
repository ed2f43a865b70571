"""Overdue charges: the nightly run marks them, puts a line on hold past the grace period, releases it when
nothing blocks it any more."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db import transaction

from core.tenancy import require_tenant_slug, tenant_today
from credit.models import (
    UNPAID_STATUSES,
    CreditCharge,
    CreditChargeStatus,
    CreditLine,
    CreditLineStatus,
)
from credit.selectors import (
    credit_lines_for_overdue_run,
)
from credit.services.exposure import _lock_line, _set_status
from credit.services.inputs import overdue_grace_days
from credit.services.line_events import overdue_hold_event
from credit.services.results import OverdueRunResult


def _overdue_blocks(line: CreditLine, *, today: date) -> bool:
    """True when an unpaid charge is overdue for longer than the grace period."""
    cutoff = today - timedelta(days=overdue_grace_days())
    return CreditCharge.objects.filter(line=line, status__in=UNPAID_STATUSES, due_date__lt=cutoff).exists()


def _reconcile_overdue_hold(line: CreditLine, *, today: date, actor: str) -> str:
    """Put an approved line on hold when overdue past the grace period; release it once that is paid."""
    blocks = _overdue_blocks(line, today=today)
    if line.status == CreditLineStatus.APPROVED and blocks:
        _set_status(
            line,
            CreditLineStatus.ON_HOLD,
            action="put_on_hold",
            actor=actor,
            reason=f"Charges overdue for more than {overdue_grace_days()} days.",
        )
        overdue_hold_event(
            line, placed=True, previous_status=CreditLineStatus.APPROVED, actor=actor, today=today
        )
        return "held"
    if line.status == CreditLineStatus.ON_HOLD and not blocks:
        _set_status(
            line,
            CreditLineStatus.APPROVED,
            action="hold_released",
            actor=actor,
            reason="Overdue charges paid.",
        )
        overdue_hold_event(
            line, placed=False, previous_status=CreditLineStatus.ON_HOLD, actor=actor, today=today
        )
        return "released"
    return ""


# --- Overdue ---------------------------------------------------------------------------------------------------------
@transaction.atomic
def credit_line_overdue_process(
    *, line_id: Any, today: date | None = None, actor: str = "system:overdue"
) -> OverdueRunResult:
    """One line of the nightly run, under its lock: mark its charges past due as overdue, put it on hold when they
    are overdue past the grace period, release its hold when nothing blocks it any more."""
    line = _lock_line(line_id)
    today = today or tenant_today(line.tenant_id)
    marked = CreditCharge.objects.filter(
        line=line, status=CreditChargeStatus.OPEN, due_date__lt=today
    ).update(status=CreditChargeStatus.OVERDUE)
    outcome = _reconcile_overdue_hold(line, today=today, actor=actor)
    return OverdueRunResult(
        charges_marked_overdue=marked,
        lines_put_on_hold=int(outcome == "held"),
        lines_released=int(outcome == "released"),
    )


def credit_overdue_process(*, today: date | None = None, actor: str = "system:overdue") -> OverdueRunResult:
    """The nightly run for the current tenant, line by line in primary-key order (the nightly task gives each line
    a transaction of its own)."""
    today = today or tenant_today(require_tenant_slug())
    return OverdueRunResult.total(
        credit_line_overdue_process(line_id=line_id, today=today, actor=actor)
        for line_id in credit_lines_for_overdue_run(today=today)
    )
