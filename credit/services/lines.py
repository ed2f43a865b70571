"""Credit lines: request, approval (never by the requester), rejection, suspension, reinstatement, closing
and limit changes."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from core import clock
from core.money import parse_amount
from core.outbox import outbox_record
from core.tenancy import tenant_cached, tenant_today
from credit.errors import (
    CreditBusinessOnly,
    CreditLineExists,
    CreditLineHasExposure,
    CreditLineTransitionInvalid,
    SelfApprovalForbidden,
)
from credit.models import (
    OPEN_STATUSES,
    ZERO,
    CreditLine,
    CreditLineStatus,
)
from credit.selectors import (
    credit_line_open,
)
from credit.services.exposure import _history, _insert, _invalidate, _lock_line, _set_status
from credit.services.holds import _expire_holds
from credit.services.inputs import _clean_terms, _require_text, same_actor
from credit.services.line_events import limit_changed_event, line_status_event
from credit.services.overdue import _reconcile_overdue_hold
from customers.errors import CustomerBlocked
from customers.models import Customer, CustomerStatus, CustomerType


# --- Credit lines ---------------------------------------------------------------------------------------------------
@transaction.atomic
def credit_line_request(
    *,
    customer: Customer,
    requested_limit: Decimal,
    payment_terms_days: int,
    requested_by: str,
    reason: str = "",
) -> CreditLine:
    """Open a request for a business customer's credit line; it waits for a credit manager's decision."""
    requested_by = _require_text(requested_by, "requested_by")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.type != CustomerType.BUSINESS:
        raise CreditBusinessOnly(customer_id=str(customer.pk))
    if customer.status != CustomerStatus.ACTIVE:
        raise CustomerBlocked(customer_id=str(customer.pk))
    limit = parse_amount(requested_limit, field="requested_limit")
    terms = _clean_terms(payment_terms_days)
    existing = credit_line_open(customer)
    if existing is not None:
        raise CreditLineExists(credit_line_id=str(existing.pk), status=existing.status)
    now = clock.now()
    line = CreditLine(
        tenant_id=customer.tenant_id,
        customer=customer,
        status=CreditLineStatus.REQUESTED,
        currency=tenant_cached(customer.tenant_id).currency,
        requested_limit=limit,
        payment_terms_days=terms,
        requested_by=requested_by[:200],
        request_reason=(reason or "").strip(),
        requested_at=now,
        status_changed_at=now,
    )
    _insert(line, conflict=CreditLineExists(customer_id=str(customer.pk)))
    _history(line, action="requested", actor=requested_by, reason=line.request_reason)
    _invalidate(line)
    return line


@transaction.atomic
def credit_line_approve(
    *,
    line: CreditLine,
    decided_by: str,
    approved_limit: Decimal | None = None,
    payment_terms_days: int | None = None,
    comment: str = "",
) -> CreditLine:
    """A credit manager approves a request (never their own); emits `credit.approved`."""
    decided_by = _require_text(decided_by, "decided_by")
    line = _lock_line(line.pk)
    if line.status != CreditLineStatus.REQUESTED:
        raise CreditLineTransitionInvalid(
            "Only a requested credit line can be approved.", credit_line_id=str(line.pk), status=line.status
        )
    if same_actor(line.requested_by, decided_by):
        raise SelfApprovalForbidden(credit_line_id=str(line.pk), requested_by=line.requested_by)
    limit = parse_amount(
        line.requested_limit if approved_limit is None else approved_limit, field="approved_limit"
    )
    terms = line.payment_terms_days if payment_terms_days is None else _clean_terms(payment_terms_days)
    now = clock.now()
    from_limit, from_terms = line.approved_limit, line.payment_terms_days
    line.status = CreditLineStatus.APPROVED
    line.approved_limit = limit
    line.payment_terms_days = terms
    line.excess_allowance = max(ZERO, line.exposure - limit)
    line.decided_by = decided_by[:200]
    line.decided_at = now
    line.decision_comment = (comment or "").strip()
    line.status_reason = line.decision_comment
    line.status_changed_at = now
    line.save()
    _history(
        line,
        action="approved",
        actor=decided_by,
        reason=line.decision_comment,
        from_status=CreditLineStatus.REQUESTED,
        from_limit=from_limit,
        from_terms=from_terms,
    )
    _emit_approved(line, change="approved")
    _invalidate(line)
    return line


def _emit_approved(line: CreditLine, *, change: str) -> None:
    outbox_record(
        tenant_id=line.tenant_id,
        event_type="credit.approved",
        data={
            "credit_line_id": str(line.pk),
            "customer_id": str(line.customer_id),
            "change": change,
            "status": line.status,
            "credit_limit": line.approved_limit,
            "used": line.exposure,
            "available": line.available,
            "currency": line.currency,
            "payment_terms_days": line.payment_terms_days,
            "requested_by": line.requested_by,
            "decided_by": line.decided_by,
            "decided_at": line.decided_at,
        },
        aggregate_id=str(line.customer_id),
    )


@transaction.atomic
def credit_line_reject(*, line: CreditLine, decided_by: str, reason: str) -> CreditLine:
    """A credit manager turns a request down, saying why."""
    decided_by = _require_text(decided_by, "decided_by")
    reason = _require_text(reason, "reason")
    line = _lock_line(line.pk)
    if line.status != CreditLineStatus.REQUESTED:
        raise CreditLineTransitionInvalid(
            "Only a requested credit line can be rejected.", credit_line_id=str(line.pk), status=line.status
        )
    line.decided_by = decided_by[:200]
    line.decided_at = clock.now()
    line.decision_comment = reason
    line.save(update_fields=["decided_by", "decided_at", "decision_comment", "updated_at"])
    _set_status(line, CreditLineStatus.REJECTED, action="rejected", actor=decided_by, reason=reason)
    return line


@transaction.atomic
def credit_line_suspend(*, line: CreditLine, actor: str, reason: str) -> CreditLine:
    """Stop new uses of a line (risk decision); charges and payments go on as before."""
    actor = _require_text(actor, "actor")
    reason = _require_text(reason, "reason")
    line = _lock_line(line.pk)
    if line.status not in (CreditLineStatus.APPROVED, CreditLineStatus.ON_HOLD):
        raise CreditLineTransitionInvalid(
            "Only an approved or on-hold line can be suspended.",
            credit_line_id=str(line.pk),
            status=line.status,
        )
    previous = line.status
    _set_status(line, CreditLineStatus.SUSPENDED, action="suspended", actor=actor, reason=reason)
    line_status_event(line, "credit.suspended", previous_status=previous, actor=actor, reason=reason)
    return line


@transaction.atomic
def credit_line_reinstate(*, line: CreditLine, actor: str, reason: str = "") -> CreditLine:
    """Lift a suspension; the line goes straight on hold if overdue charges still block it."""
    actor = _require_text(actor, "actor")
    line = _lock_line(line.pk)
    if line.status != CreditLineStatus.SUSPENDED:
        raise CreditLineTransitionInvalid(
            "Only a suspended line can be reinstated.", credit_line_id=str(line.pk), status=line.status
        )
    _set_status(line, CreditLineStatus.APPROVED, action="reinstated", actor=actor, reason=reason)
    _reconcile_overdue_hold(line, today=tenant_today(line.tenant_id), actor=actor)
    # Recorded after the overdue check: a line that goes straight back on hold says so (usable false) here too.
    line_status_event(
        line, "credit.reinstated", previous_status=CreditLineStatus.SUSPENDED, actor=actor, reason=reason
    )
    return line


@transaction.atomic
def credit_line_close(*, line: CreditLine, actor: str, reason: str) -> CreditLine:
    """Close a line (or withdraw a request) once nothing is owed or held on it."""
    actor = _require_text(actor, "actor")
    reason = _require_text(reason, "reason")
    line = _lock_line(line.pk)
    if line.status not in OPEN_STATUSES:
        raise CreditLineTransitionInvalid(
            "The credit line is already closed or rejected.", credit_line_id=str(line.pk), status=line.status
        )
    _expire_holds(line, now=clock.now(), actor=actor)
    if line.exposure > 0:
        raise CreditLineHasExposure(credit_line_id=str(line.pk), exposure=str(line.exposure))
    previous = line.status
    _set_status(line, CreditLineStatus.CLOSED, action="closed", actor=actor, reason=reason)
    line_status_event(line, "credit.closed", previous_status=previous, actor=actor, reason=reason)
    return line


@transaction.atomic
def credit_line_limit_change(
    *,
    line: CreditLine,
    actor: str,
    approved_limit: Decimal,
    reason: str,
    payment_terms_days: int | None = None,
) -> CreditLine:
    """Raise or lower an approved line's limit (and terms). Lowering it below the exposure refuses new uses
    until enough is paid; the database keeps the exposure from ever growing past the new limit."""
    actor = _require_text(actor, "actor")
    reason = _require_text(reason, "reason")
    line = _lock_line(line.pk)
    if line.status not in (CreditLineStatus.APPROVED, CreditLineStatus.ON_HOLD, CreditLineStatus.SUSPENDED):
        raise CreditLineTransitionInvalid(
            "Only an approved, suspended or on-hold line has a limit to change.",
            credit_line_id=str(line.pk),
            status=line.status,
        )
    limit = parse_amount(approved_limit, field="approved_limit")
    terms = line.payment_terms_days if payment_terms_days is None else _clean_terms(payment_terms_days)
    from_limit, from_terms = line.approved_limit, line.payment_terms_days
    if (limit, terms) == (from_limit, from_terms):
        return line
    line.approved_limit = limit
    line.payment_terms_days = terms
    line.excess_allowance = max(ZERO, line.exposure - limit)
    line.save(update_fields=["approved_limit", "payment_terms_days", "excess_allowance", "updated_at"])
    _history(
        line,
        action="limit_changed",
        actor=actor,
        reason=reason,
        from_status=line.status,
        from_limit=from_limit,
        from_terms=from_terms,
    )
    _emit_approved(line, change="limit_changed")  # what consumers of credit.approved have always received
    limit_changed_event(
        line,
        previous_limit=from_limit,
        previous_terms=from_terms,
        actor=actor,
        reason=reason,
        changed_at=line.updated_at,
    )
    _invalidate(line)
    return line
