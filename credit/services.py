"""Every write of commercial credit. The only code that changes a line's exposure.

One lock per line serialises everything that touches its exposure: each write first locks the customer's credit line
(`select_for_update()`), decides on the locked row, moves the exposure and appends the ledger row in the same
transaction. The database refuses an exposure above the approved limit (see `CreditLine.Meta.constraints`), so a
bug here cannot overspend either.

A refused use still leaves `credit.limit.exceeded` in the outbox: the refusal hands the event to
`core.refusals.refusal_record`, which writes it after the refused transaction rolled back, in its own transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from psycopg.errors import UniqueViolation

from core.errors import DomainError, IdempotencyKeyReused, InvalidInput
from core.idempotency import fingerprint_of, idempotent
from core.models import Tenant
from core.money import check_currency, parse_amount
from core.outbox import outbox_record
from core.refusals import refusal_record
from core.tenancy import require_tenant_slug
from credit import clock
from credit.errors import (
    CreditBusinessOnly,
    CreditChargeNotCancellable,
    CreditChargeNotFound,
    CreditHoldExists,
    CreditHoldNotActive,
    CreditHoldNotFound,
    CreditLimitExceeded,
    CreditLineExists,
    CreditLineHasExposure,
    CreditLineNotActive,
    CreditLineNotFound,
    CreditLineTransitionInvalid,
    CreditOnHold,
    CreditOrderAlreadyCharged,
    InvalidDiscountBracket,
    InvalidOrderId,
    InvalidPaymentId,
    InvalidPaymentTerms,
    SelfApprovalForbidden,
)
from credit.models import (
    OPEN_STATUSES,
    UNPAID_STATUSES,
    ZERO,
    CreditCharge,
    CreditChargeStatus,
    CreditHold,
    CreditHoldStatus,
    CreditLedgerEntry,
    CreditLedgerKind,
    CreditLine,
    CreditLineChange,
    CreditLineStatus,
    CreditPayment,
    CreditPaymentAllocation,
    VolumeDiscountBracket,
)
from credit.selectors import (
    credit_line_current,
    credit_line_open,
    credit_lines_for_overdue_run,
    credit_lines_with_expired_holds,
)
from customers.cache import customer_cache_invalidate
from customers.errors import CustomerBlocked
from customers.models import Customer, CustomerStatus, CustomerType

MAX_TERMS_DAYS = 365
MAX_HOLD_DAYS = 30


def overdue_grace_days() -> int:
    """Days after a charge's due date before the line goes on hold (setting CREDIT_OVERDUE_GRACE_DAYS)."""
    return int(getattr(settings, "CREDIT_OVERDUE_GRACE_DAYS", 7))


def hold_ttl() -> timedelta:
    """How long a checkout hold lives when the caller gives no expiry (setting CREDIT_HOLD_TTL_MINUTES)."""
    return timedelta(minutes=int(getattr(settings, "CREDIT_HOLD_TTL_MINUTES", 60)))


# --- Results ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreditAvailability:
    available: bool
    credit_limit: Decimal
    used: Decimal
    available_amount: Decimal
    currency: str
    status: str
    payment_terms_days: int
    reason: str


@dataclass(frozen=True)
class CreditUsageResult:
    usage_id: UUID
    amount: Decimal
    available_amount: Decimal
    due_date: date
    currency: str
    order_id: str = ""
    replayed: bool = False
    created: bool = True  # the first answer to this request created the charge (201), not found it (200)


@dataclass(frozen=True)
class HoldResult:
    hold_id: UUID
    order_id: str
    amount: Decimal
    currency: str
    status: str
    expires_at: datetime
    available_amount: Decimal
    replayed: bool = False
    created: bool = True


@dataclass(frozen=True)
class PaymentAllocationResult:
    usage_id: UUID
    order_id: str
    amount: Decimal


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    amount: Decimal
    applied_amount: Decimal
    unapplied_amount: Decimal
    allocations: tuple[PaymentAllocationResult, ...]
    available_amount: Decimal
    currency: str
    line_status: str
    replayed: bool = False
    created: bool = True


@dataclass(frozen=True)
class OverdueRunResult:
    charges_marked_overdue: int = 0
    lines_put_on_hold: int = 0
    lines_released: int = 0

    @classmethod
    def total(cls, results: Iterable[OverdueRunResult]) -> OverdueRunResult:
        rows = list(results)
        return cls(
            charges_marked_overdue=sum(r.charges_marked_overdue for r in rows),
            lines_put_on_hold=sum(r.lines_put_on_hold for r in rows),
            lines_released=sum(r.lines_released for r in rows),
        )


# --- Small helpers ------------------------------------------------------------------------------------------------
def _tenant(tenant_id: str) -> Tenant:
    return Tenant.objects.get(slug=tenant_id)


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(payload, cls=DjangoJSONEncoder)))


def _clean_ref(value: Any, *, error: type[InvalidInput]) -> str:
    """An order or payment id: 1 to 100 characters, no control characters (NUL breaks SQL), never truncated (a cut
    id could name another order)."""
    text = str(value or "").strip()
    if not text or len(text) > 100 or any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise error()
    return text


def _clean_terms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidPaymentTerms(field="payment_terms_days")
    try:
        days = int(value)
    except ValueError as exc:
        raise InvalidPaymentTerms(field="payment_terms_days") from exc
    if not 0 <= days <= MAX_TERMS_DAYS:
        raise InvalidPaymentTerms(field="payment_terms_days")
    return days


def _require_text(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{field} is required.", code=f"{field}_required", field=field)
    return text[:2000]


def same_actor(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


IDEMPOTENCY_SCOPE = "credit"
_R = TypeVar("_R")


def _keyed(
    *,
    tenant_id: str,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    work: Callable[[], _R],
    to_json: Callable[[_R], dict[str, Any]],
    from_json: Callable[[dict[str, Any]], _R],
) -> _R:
    """Run `work` in a transaction, once per Idempotency-Key (core's mechanism, in the credit key space): the key is
    claimed before any line is locked, so a concurrent duplicate waits for the first and replays its result."""
    if not key:
        with transaction.atomic():
            return work()
    first: list[_R] = []

    def run(record: Any) -> dict[str, Any]:
        first.append(work())
        return _jsonable(to_json(first[0]))

    stored, replayed = idempotent(
        tenant_id=tenant_id, scope=IDEMPOTENCY_SCOPE, key=key, operation=operation, payload=payload, work=run
    )
    return from_json(stored) if replayed else first[0]


def _insert(row: models.Model, *, conflict: DomainError) -> None:
    """Insert `row` in a savepoint. Losing a unique constraint to another transaction (ids unique across the tenant,
    which the lock of our own line does not serialise) is `conflict`; any other integrity error is a bug, raised."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError as exc:
        if isinstance(exc.__cause__, UniqueViolation):
            raise conflict from exc
        raise


def _lock_line(pk: Any) -> CreditLine:
    return CreditLine.objects.select_for_update().get(pk=pk)


def _lock_customer_line(customer: Customer) -> CreditLine:
    """Lock the customer's open line (or its latest one): the lock that serialises every change of exposure."""
    line = (
        CreditLine.objects.select_for_update()
        .filter(customer_id=customer.pk, status__in=OPEN_STATUSES)
        .order_by("pk")
        .first()
    )
    if line is not None:
        return line
    latest = CreditLine.objects.filter(customer_id=customer.pk).order_by("-created_at").first()
    if latest is None:
        raise CreditLineNotFound(customer_id=str(customer.pk))
    return _lock_line(latest.pk)


def _history(
    line: CreditLine,
    *,
    action: str,
    actor: str,
    reason: str = "",
    from_status: str = "",
    from_limit: Decimal | None = None,
    from_terms: int | None = None,
) -> None:
    CreditLineChange.objects.create(
        tenant_id=line.tenant_id,
        line=line,
        action=action,
        from_status=from_status,
        to_status=line.status,
        from_limit=from_limit,
        to_limit=line.approved_limit,
        from_terms_days=from_terms,
        to_terms_days=line.payment_terms_days,
        actor=actor[:200],
        reason=reason,
    )


def _set_status(line: CreditLine, status: str, *, action: str, actor: str, reason: str) -> None:
    previous = line.status
    line.status = status
    line.status_reason = reason
    line.status_changed_at = clock.now()
    line.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
    _history(line, action=action, actor=actor, reason=reason, from_status=previous)
    _invalidate(line)


def _invalidate(line: CreditLine) -> None:
    customer_cache_invalidate(tenant_id=line.tenant_id, customer_id=line.customer_id)


@dataclass(frozen=True)
class _Movement:
    kind: str
    amount: Decimal
    order_id: str = ""
    charge: CreditCharge | None = None
    hold: CreditHold | None = None
    payment: CreditPayment | None = None


def _move_exposure(line: CreditLine, movements: Iterable[_Movement], *, actor: str) -> None:
    """Append ledger rows and move the cached exposure by their sum (the line must be locked)."""
    now = clock.now()
    exposure = line.exposure
    net = ZERO
    rows = []
    for movement in movements:
        exposure += movement.amount
        net += movement.amount
        rows.append(
            CreditLedgerEntry(
                tenant_id=line.tenant_id,
                line=line,
                kind=movement.kind,
                amount=movement.amount,
                exposure_after=exposure,
                order_id=movement.order_id,
                charge=movement.charge,
                hold=movement.hold,
                payment=movement.payment,
                actor=actor[:200],
                created_at=now,
            )
        )
    if not rows:
        return
    line.exposure = exposure
    if net < 0:
        # Released exposure also shrinks what a limit decrease left above the limit: it never grows back.
        line.excess_allowance = max(ZERO, line.excess_allowance + net)
    line.save(update_fields=["exposure", "excess_allowance", "updated_at"])
    CreditLedgerEntry.objects.bulk_create(rows)
    _invalidate(line)


def _check_usable(line: CreditLine, customer: Customer) -> None:
    if customer.status == CustomerStatus.BLOCKED:
        raise CustomerBlocked(customer_id=str(customer.pk))
    if line.status == CreditLineStatus.ON_HOLD:
        raise CreditOnHold(credit_line_id=str(line.pk), status=line.status)
    if line.status != CreditLineStatus.APPROVED:
        raise CreditLineNotActive(credit_line_id=str(line.pk), status=line.status)


def _check_fits(
    line: CreditLine, *, increase: Decimal, amount: Decimal, order_id: str, operation: str
) -> None:
    """Refuse an increase of exposure beyond the approved limit (a lowered limit's excess never counts as room)."""
    if increase > 0 and line.exposure + increase > line.approved_limit:
        raise CreditLimitExceeded(
            credit_line_id=str(line.pk),
            customer_id=str(line.customer_id),
            order_id=order_id,
            operation=operation,
            amount=str(amount),
            currency=line.currency,
            credit_limit=str(line.approved_limit),
            used=str(line.exposure),
            available=str(line.available),
        )


def _record_limit_exceeded(tenant_id: str, error: CreditLimitExceeded) -> None:
    """Keep the refusal on record: written once the refused transaction rolled back, in a transaction of its own."""

    def write() -> None:
        outbox_record(
            tenant_id=tenant_id,
            event_type="credit.limit.exceeded",
            data=dict(error.details),
            aggregate_id=str(error.details.get("customer_id", "")),
        )

    refusal_record(tenant_id=tenant_id, write=write)


def _expire_holds(line: CreditLine, *, now: datetime, actor: str) -> int:
    """Release the line's holds whose time is up (the line must be locked)."""
    expired = list(
        CreditHold.objects.filter(line=line, status=CreditHoldStatus.ACTIVE, expires_at__lte=now).order_by(
            "pk"
        )
    )
    for hold in expired:
        hold.status = CreditHoldStatus.EXPIRED
        hold.ended_at = now
        hold.save(update_fields=["status", "ended_at"])
    _move_exposure(
        line,
        [_Movement(CreditLedgerKind.HOLD_EXPIRED, -h.amount, order_id=h.order_id, hold=h) for h in expired],
        actor=actor,
    )
    return len(expired)


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
        return "held"
    if line.status == CreditLineStatus.ON_HOLD and not blocks:
        _set_status(
            line,
            CreditLineStatus.APPROVED,
            action="hold_released",
            actor=actor,
            reason="Overdue charges paid.",
        )
        return "released"
    return ""


def _tenant_today(tenant_id: str) -> date:
    return clock.today(_tenant(tenant_id).time_zone)


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
        currency=_tenant(customer.tenant_id).currency,
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
    _set_status(line, CreditLineStatus.SUSPENDED, action="suspended", actor=actor, reason=reason)
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
    _reconcile_overdue_hold(line, today=_tenant_today(line.tenant_id), actor=actor)
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
    _set_status(line, CreditLineStatus.CLOSED, action="closed", actor=actor, reason=reason)
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
    _emit_approved(line, change="limit_changed")
    _invalidate(line)
    return line


# --- Check and use ---------------------------------------------------------------------------------------------------
def credit_check(*, customer: Customer, amount: Decimal) -> CreditAvailability:
    """Would `amount` fit right now? Changes nothing; `credit_use` checks again under the line's lock."""
    amount = parse_amount(amount)
    line = credit_line_current(customer)
    if line is None:
        raise CreditLineNotFound(customer_id=str(customer.pk))
    reason = ""
    if customer.status == CustomerStatus.BLOCKED:
        reason = CustomerBlocked.code
    elif line.status == CreditLineStatus.ON_HOLD:
        reason = CreditOnHold.code
    elif line.status != CreditLineStatus.APPROVED:
        reason = CreditLineNotActive.code
    elif amount > line.available:
        reason = CreditLimitExceeded.code
    return CreditAvailability(
        available=not reason,
        credit_limit=line.approved_limit,
        used=line.exposure,
        available_amount=line.available,
        currency=line.currency,
        status=line.status,
        payment_terms_days=line.payment_terms_days,
        reason=reason,
    )


def _usage_result(charge: CreditCharge, *, replayed: bool) -> CreditUsageResult:
    return CreditUsageResult(
        usage_id=charge.pk,
        amount=charge.amount,
        available_amount=charge.available_after,
        due_date=charge.due_date,
        currency=charge.currency,
        order_id=charge.order_id,
        replayed=replayed,
        created=not replayed,
    )


def _usage_to_json(result: CreditUsageResult) -> dict[str, Any]:
    return {
        "usage_id": str(result.usage_id),
        "amount": str(result.amount),
        "available_amount": str(result.available_amount),
        "due_date": result.due_date.isoformat(),
        "currency": result.currency,
        "order_id": result.order_id,
        "created": result.created,
    }


def _usage_from_json(data: dict[str, Any]) -> CreditUsageResult:
    return CreditUsageResult(
        usage_id=UUID(data["usage_id"]),
        amount=Decimal(data["amount"]),
        available_amount=Decimal(data["available_amount"]),
        due_date=date.fromisoformat(data["due_date"]),
        currency=data["currency"],
        order_id=data["order_id"],
        replayed=True,
        created=bool(data.get("created", False)),
    )


def credit_use(
    *,
    customer: Customer,
    amount: Decimal,
    order_id: str,
    idempotency_key: str | None = None,
    currency: str | None = None,
    actor: str = "",
) -> CreditUsageResult:
    """Charge an order to the customer's credit (converting its hold), due after the line's terms. Idempotent by
    order id (and key); refused beyond the limit with `credit.limit.exceeded` still recorded."""
    amount = parse_amount(amount)
    order_id = _clean_ref(order_id, error=InvalidOrderId)
    tenant = _tenant(customer.tenant_id)
    currency = check_currency(currency, tenant_currency=tenant.currency)
    payload = {
        "customer_id": str(customer.pk),
        "order_id": order_id,
        "amount": str(amount),
        "currency": currency,
    }
    try:
        return _keyed(
            tenant_id=tenant.slug,
            key=idempotency_key,
            operation="credit_use",
            payload=payload,
            work=lambda: _credit_use(
                customer=customer,
                tenant=tenant,
                amount=amount,
                order_id=order_id,
                currency=currency,
                actor=actor,
            ),
            to_json=_usage_to_json,
            from_json=_usage_from_json,
        )
    except CreditLimitExceeded as exc:
        _record_limit_exceeded(tenant.slug, exc)
        raise


def _credit_use(
    *,
    customer: Customer,
    tenant: Tenant,
    amount: Decimal,
    order_id: str,
    currency: str,
    actor: str,
) -> CreditUsageResult:
    line = _lock_customer_line(customer)
    existing = (
        CreditCharge.objects.select_related("line").filter(tenant_id=tenant.slug, order_id=order_id).first()
    )
    if existing is not None and existing.line.customer_id != customer.pk:
        raise IdempotencyKeyReused(
            "This order id was charged to another customer.", field="order_id", order_id=order_id
        )
    if existing is not None and existing.status != CreditChargeStatus.CANCELLED:
        if existing.amount != amount:
            raise IdempotencyKeyReused(
                "This order was already charged with another amount.",
                field="order_id",
                order_id=order_id,
                charged_amount=str(existing.amount),
            )
        return _usage_result(existing, replayed=True)

    _check_usable(line, customer)
    now = clock.now()
    _expire_holds(line, now=now, actor=actor or "system:hold-expiry")
    hold = CreditHold.objects.filter(
        tenant_id=tenant.slug, order_id=order_id, status=CreditHoldStatus.ACTIVE
    ).first()
    if hold is not None and hold.line_id != line.pk:
        raise IdempotencyKeyReused(
            "This order id is held for another customer.", field="order_id", order_id=order_id
        )
    increase = amount - (hold.amount if hold else ZERO)
    # A cancelled order that comes back is charged again like a new one: checked against today's exposure.
    _check_fits(line, increase=increase, amount=amount, order_id=order_id, operation="use")

    today = clock.today(tenant.time_zone)
    due_date = today + timedelta(days=line.payment_terms_days)
    available_after = max(ZERO, line.approved_limit - (line.exposure + increase))
    if existing is not None:
        charge = existing
        charge.line = line
        charge.amount = amount
        charge.outstanding = amount
        charge.currency = currency
        charge.charged_on = today
        charge.due_date = due_date
        charge.status = CreditChargeStatus.OPEN
        charge.available_after = available_after
        charge.hold = hold
        charge.cancelled_at = None
        charge.cancel_reason = ""
        charge.save()
    else:
        charge = CreditCharge(
            tenant_id=tenant.slug,
            line=line,
            order_id=order_id,
            amount=amount,
            outstanding=amount,
            currency=currency,
            charged_on=today,
            due_date=due_date,
            status=CreditChargeStatus.OPEN,
            available_after=available_after,
            hold=hold,
            created_by=actor[:200],
            created_at=now,
        )
        _insert(
            charge,
            conflict=IdempotencyKeyReused(
                "This order id was charged concurrently elsewhere.", field="order_id", order_id=order_id
            ),
        )
    movements = []
    if hold is not None:
        hold.status = CreditHoldStatus.CONVERTED
        hold.ended_at = now
        hold.save(update_fields=["status", "ended_at"])
        movements.append(
            _Movement(CreditLedgerKind.HOLD_CONVERTED, -hold.amount, order_id=order_id, hold=hold)
        )
    movements.append(_Movement(CreditLedgerKind.CHARGE, amount, order_id=order_id, charge=charge))
    _move_exposure(line, movements, actor=actor)
    outbox_record(
        tenant_id=tenant.slug,
        event_type="credit.used",
        data={
            "usage_id": str(charge.pk),
            "credit_line_id": str(line.pk),
            "customer_id": str(customer.pk),
            "order_id": order_id,
            "amount": amount,
            "currency": currency,
            "due_date": due_date,
            "credit_limit": line.approved_limit,
            "used": line.exposure,
            "available": line.available,
            "hold_id": str(hold.pk) if hold else None,
            "reopened": existing is not None,
        },
        aggregate_id=str(customer.pk),
    )
    return _usage_result(charge, replayed=False)


_CHARGE_FIELDS = (
    "id",
    "line_id",
    "order_id",
    "amount",
    "outstanding",
    "currency",
    "charged_on",
    "due_date",
    "status",
    "paid_at",
    "cancelled_at",
    "cancel_reason",
    "created_at",
)


def _charge_to_json(charge: CreditCharge) -> dict[str, Any]:
    values = {name: getattr(charge, name) for name in _CHARGE_FIELDS}
    # isoformat keeps the microseconds that the JSON encoder would cut to milliseconds
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}


def _charge_from_json(data: dict[str, Any]) -> CreditCharge:
    """The charge as the first cancel answered it (a row as it was then, not saved again)."""
    if "status" not in data:  # a key stored before first results were kept: its charge as it is now
        charge = CreditCharge.objects.get(pk=data["usage_id"])
    else:
        fields = {f.attname: f for f in CreditCharge._meta.concrete_fields}
        charge = CreditCharge(**{name: fields[name].to_python(data[name]) for name in _CHARGE_FIELDS})
        charge._state.adding = False
    charge.replayed = True  # type: ignore[attr-defined]
    return charge


def credit_charge_cancel(
    *,
    customer: Customer,
    reason: str,
    charge_id: Any = None,
    order_id: str | None = None,
    idempotency_key: str | None = None,
    actor: str = "",
) -> CreditCharge:
    """Release an unpaid charge (order cancelled, full credit note). Cancelling twice is a no-op."""
    reason = _require_text(reason, "reason")
    charges = CreditCharge.objects.filter(tenant_id=customer.tenant_id, line__customer_id=customer.pk)
    try:
        if charge_id is not None:
            found = charges.get(pk=charge_id)
        else:
            found = charges.get(order_id=_clean_ref(order_id, error=InvalidOrderId))
    except (CreditCharge.DoesNotExist, ValueError, ValidationError) as exc:
        raise CreditChargeNotFound(charge_id=str(charge_id or ""), order_id=order_id or "") from exc
    return _keyed(
        tenant_id=customer.tenant_id,
        key=idempotency_key,
        operation="charge_cancel",
        payload={"customer_id": str(customer.pk), "usage_id": str(found.pk), "reason": reason},
        work=lambda: _charge_cancel(customer=customer, charge_pk=found.pk, reason=reason, actor=actor),
        to_json=_charge_to_json,
        from_json=_charge_from_json,
    )


def _charge_cancel(*, customer: Customer, charge_pk: Any, reason: str, actor: str) -> CreditCharge:
    line = _lock_customer_line(customer)
    charge = CreditCharge.objects.get(pk=charge_pk)
    if charge.status == CreditChargeStatus.CANCELLED:
        return charge
    if charge.status not in UNPAID_STATUSES or charge.outstanding != charge.amount:
        raise CreditChargeNotCancellable(usage_id=str(charge.pk), status=charge.status)
    if charge.line_id != line.pk:
        line = _lock_line(charge.line_id)
    released = charge.outstanding
    charge.status = CreditChargeStatus.CANCELLED
    charge.outstanding = ZERO
    charge.cancelled_at = clock.now()
    charge.cancel_reason = reason
    charge.save(update_fields=["status", "outstanding", "cancelled_at", "cancel_reason"])
    _move_exposure(
        line,
        [_Movement(CreditLedgerKind.CHARGE_CANCELLED, -released, order_id=charge.order_id, charge=charge)],
        actor=actor,
    )
    _reconcile_overdue_hold(line, today=_tenant_today(line.tenant_id), actor=actor or "system")
    return charge


# --- Holds --------------------------------------------------------------------------------------------------------
def _hold_result(hold: CreditHold, line: CreditLine, *, replayed: bool) -> HoldResult:
    return HoldResult(
        hold_id=hold.pk,
        order_id=hold.order_id,
        amount=hold.amount,
        currency=hold.currency,
        status=hold.status,
        expires_at=hold.expires_at,
        available_amount=line.available,
        replayed=replayed,
        created=not replayed,
    )


def _hold_to_json(result: HoldResult) -> dict[str, Any]:
    return {
        "hold_id": str(result.hold_id),
        "order_id": result.order_id,
        "amount": str(result.amount),
        "currency": result.currency,
        "status": result.status,
        "expires_at": result.expires_at.isoformat(),
        "available_amount": str(result.available_amount),
        "created": result.created,
    }


def _hold_from_json(data: dict[str, Any]) -> HoldResult:
    if "status" not in data:  # a key stored before first results were kept: its hold as it is now
        hold = CreditHold.objects.select_related("line").get(pk=data["hold_id"])
        return dataclasses.replace(_hold_result(hold, hold.line, replayed=True), created=False)
    return HoldResult(
        hold_id=UUID(data["hold_id"]),
        order_id=data["order_id"],
        amount=Decimal(data["amount"]),
        currency=data["currency"],
        status=data["status"],
        expires_at=datetime.fromisoformat(data["expires_at"]),
        available_amount=Decimal(data["available_amount"]),
        replayed=True,
        created=bool(data["created"]),
    )


def credit_hold_place(
    *,
    customer: Customer,
    amount: Decimal,
    order_id: str,
    expires_at: datetime | None = None,
    idempotency_key: str | None = None,
    currency: str | None = None,
    actor: str = "",
) -> HoldResult:
    """Reserve credit for an order during checkout, until `expires_at`; refused beyond the limit (recorded)."""
    amount = parse_amount(amount)
    order_id = _clean_ref(order_id, error=InvalidOrderId)
    tenant = _tenant(customer.tenant_id)
    currency = check_currency(currency, tenant_currency=tenant.currency)
    now = clock.now()
    expires = expires_at or now + hold_ttl()
    if expires <= now or expires > now + timedelta(days=MAX_HOLD_DAYS):
        raise InvalidInput(
            f"expires_at must be in the future and within {MAX_HOLD_DAYS} days.",
            code="invalid_hold_expiry",
            field="expires_at",
        )
    payload = {
        "customer_id": str(customer.pk),
        "order_id": order_id,
        "amount": str(amount),
        "currency": currency,
    }
    if expires_at is not None:  # an expiry the caller chose is part of what it asked for
        payload["expires_at"] = expires.isoformat()
    try:
        return _keyed(
            tenant_id=tenant.slug,
            key=idempotency_key,
            operation="credit_hold",
            payload=payload,
            work=lambda: _hold_place(
                customer=customer,
                line=_lock_customer_line(customer),
                amount=amount,
                order_id=order_id,
                currency=currency,
                expires=expires,
                now=now,
                actor=actor,
            ),
            to_json=_hold_to_json,
            from_json=_hold_from_json,
        )
    except CreditLimitExceeded as exc:
        _record_limit_exceeded(tenant.slug, exc)
        raise


def _hold_place(
    *,
    customer: Customer,
    line: CreditLine,
    amount: Decimal,
    order_id: str,
    currency: str,
    expires: datetime,
    now: datetime,
    actor: str,
) -> HoldResult:
    charged = (
        CreditCharge.objects.filter(tenant_id=line.tenant_id, order_id=order_id)
        .exclude(status=CreditChargeStatus.CANCELLED)
        .first()
    )
    if charged is not None:
        raise CreditOrderAlreadyCharged(order_id=order_id, usage_id=str(charged.pk))
    _expire_holds(line, now=now, actor="system:hold-expiry")
    active = CreditHold.objects.filter(
        tenant_id=line.tenant_id, order_id=order_id, status=CreditHoldStatus.ACTIVE
    ).first()
    if active is not None:
        if active.line_id == line.pk and active.amount == amount:
            return _hold_result(active, line, replayed=True)
        raise CreditHoldExists(order_id=order_id, hold_id=str(active.pk), amount=str(active.amount))
    _check_usable(line, customer)
    _check_fits(line, increase=amount, amount=amount, order_id=order_id, operation="hold")
    hold = CreditHold(
        tenant_id=line.tenant_id,
        line=line,
        order_id=order_id,
        amount=amount,
        currency=currency,
        status=CreditHoldStatus.ACTIVE,
        expires_at=expires,
        created_by=actor[:200],
        created_at=now,
    )
    _insert(hold, conflict=CreditHoldExists(order_id=order_id))
    _move_exposure(
        line, [_Movement(CreditLedgerKind.HOLD_PLACED, amount, order_id=order_id, hold=hold)], actor=actor
    )
    return _hold_result(hold, line, replayed=False)


def credit_hold_release(
    *, customer: Customer, hold_id: Any, idempotency_key: str | None = None, actor: str = ""
) -> HoldResult:
    """Give a hold's amount back (checkout abandoned); releasing an ended hold again changes nothing."""
    try:
        found = CreditHold.objects.get(
            pk=hold_id, tenant_id=customer.tenant_id, line__customer_id=customer.pk
        )
    except (CreditHold.DoesNotExist, ValueError, ValidationError) as exc:
        raise CreditHoldNotFound(hold_id=str(hold_id)) from exc
    return _keyed(
        tenant_id=customer.tenant_id,
        key=idempotency_key,
        operation="hold_release",
        payload={"customer_id": str(customer.pk), "hold_id": str(found.pk)},
        work=lambda: _hold_release(customer=customer, hold_pk=found.pk, actor=actor),
        to_json=_hold_to_json,
        from_json=_hold_from_json,
    )


def _hold_release(*, customer: Customer, hold_pk: Any, actor: str) -> HoldResult:
    line = _lock_customer_line(customer)
    hold = CreditHold.objects.get(pk=hold_pk)
    if hold.status in (CreditHoldStatus.RELEASED, CreditHoldStatus.EXPIRED):
        return _hold_result(hold, line, replayed=True)
    if hold.status != CreditHoldStatus.ACTIVE:
        raise CreditHoldNotActive(hold_id=str(hold.pk), status=hold.status)
    if hold.line_id != line.pk:
        line = _lock_line(hold.line_id)
    hold.status = CreditHoldStatus.RELEASED
    hold.ended_at = clock.now()
    hold.save(update_fields=["status", "ended_at"])
    _move_exposure(
        line, [_Movement(CreditLedgerKind.HOLD_RELEASED, -hold.amount, order_id=hold.order_id, hold=hold)],
        actor=actor,
    )  # fmt: skip
    return _hold_result(hold, line, replayed=False)


@transaction.atomic
def credit_line_holds_expire(
    *, line_id: Any, now: datetime | None = None, actor: str = "system:hold-expiry"
) -> int:
    """Release one line's holds whose time is up, under the line's lock (a use may be converting one right now)."""
    return _expire_holds(_lock_line(line_id), now=now or clock.now(), actor=actor)


def credit_holds_expire(*, now: datetime | None = None, actor: str = "system:hold-expiry") -> int:
    """Release every hold of the current tenant whose time is up, line by line in primary-key order (the periodic
    task gives each line a transaction of its own)."""
    require_tenant_slug()
    now = now or clock.now()
    return sum(
        credit_line_holds_expire(line_id=line_id, now=now, actor=actor)
        for line_id in credit_lines_with_expired_holds(now=now)
    )


# --- Payments ------------------------------------------------------------------------------------------------------
def _payment_result(payment: CreditPayment, line: CreditLine, *, replayed: bool) -> PaymentResult:
    allocations = tuple(
        PaymentAllocationResult(usage_id=a.charge_id, order_id=a.charge.order_id, amount=a.amount)
        for a in payment.allocations.select_related("charge").order_by("id")
    )
    return PaymentResult(
        payment_id=payment.payment_id,
        amount=payment.amount,
        applied_amount=payment.amount - payment.unapplied_amount,
        unapplied_amount=payment.unapplied_amount,
        allocations=allocations,
        available_amount=line.available,
        currency=payment.currency,
        line_status=line.status,
        replayed=replayed,
        created=not replayed,
    )


def _payment_to_json(result: PaymentResult) -> dict[str, Any]:
    return {
        "payment_id": result.payment_id,
        "amount": str(result.amount),
        "applied_amount": str(result.applied_amount),
        "unapplied_amount": str(result.unapplied_amount),
        "allocations": [
            {"usage_id": str(a.usage_id), "order_id": a.order_id, "amount": str(a.amount)}
            for a in result.allocations
        ],
        "available_amount": str(result.available_amount),
        "currency": result.currency,
        "line_status": result.line_status,
        "created": result.created,
    }


def _payment_from_json(data: dict[str, Any]) -> PaymentResult:
    if "line_status" not in data:  # a key stored before first results were kept: the payment as it is now
        payment = CreditPayment.objects.select_related("line").get(payment_id=data["payment_id"])
        return dataclasses.replace(_payment_result(payment, payment.line, replayed=True), created=False)
    return PaymentResult(
        payment_id=data["payment_id"],
        amount=Decimal(data["amount"]),
        applied_amount=Decimal(data["applied_amount"]),
        unapplied_amount=Decimal(data["unapplied_amount"]),
        allocations=tuple(
            PaymentAllocationResult(
                usage_id=UUID(a["usage_id"]), order_id=a["order_id"], amount=Decimal(a["amount"])
            )
            for a in data["allocations"]
        ),
        available_amount=Decimal(data["available_amount"]),
        currency=data["currency"],
        line_status=data["line_status"],
        replayed=True,
        created=bool(data["created"]),
    )


def payment_record(
    *,
    customer: Customer,
    payment_id: str,
    amount: Decimal,
    currency: str | None = None,
    order_id: str | None = None,
    received_at: datetime | None = None,
    actor: str = "",
    idempotency_key: str | None = None,
) -> PaymentResult:
    """Apply a payment to the order's charge (when given), then to the oldest due charges; keep the excess as
    unapplied credit; release the exposure, and an overdue hold once nothing blocks it. Idempotent by payment id."""
    payment_id = _clean_ref(payment_id, error=InvalidPaymentId)
    amount = parse_amount(amount)
    order_id = _clean_ref(order_id, error=InvalidOrderId) if (order_id or "").strip() else ""
    tenant = _tenant(customer.tenant_id)
    currency = check_currency(currency, tenant_currency=tenant.currency)
    payload = {
        "customer_id": str(customer.pk),
        "payment_id": payment_id,
        "amount": str(amount),
        "currency": currency,
        "order_id": order_id,
    }
    fingerprint = fingerprint_of(payload)
    return _keyed(
        tenant_id=tenant.slug,
        key=idempotency_key,
        operation="payment",
        payload=payload,
        work=lambda: _payment_record(
            customer=customer,
            tenant=tenant,
            payment_id=payment_id,
            amount=amount,
            currency=currency,
            order_id=order_id,
            received_at=received_at,
            fingerprint=fingerprint,
            actor=actor,
        ),
        to_json=_payment_to_json,
        from_json=_payment_from_json,
    )


def _payment_record(
    *,
    customer: Customer,
    tenant: Tenant,
    payment_id: str,
    amount: Decimal,
    currency: str,
    order_id: str,
    received_at: datetime | None,
    fingerprint: str,
    actor: str,
) -> PaymentResult:
    line = _lock_customer_line(customer)
    existing = CreditPayment.objects.filter(tenant_id=tenant.slug, payment_id=payment_id).first()
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This payment id was recorded with another amount or customer.",
                field="payment_id",
                payment_id=payment_id,
            )
        return _payment_result(existing, line, replayed=True)
    return _payment_apply(
        line=line,
        payment_id=payment_id,
        amount=amount,
        currency=currency,
        order_id=order_id,
        received_at=received_at or clock.now(),
        fingerprint=fingerprint,
        actor=actor,
        today=clock.today(tenant.time_zone),
    )


def _payment_apply(
    *,
    line: CreditLine,
    payment_id: str,
    amount: Decimal,
    currency: str,
    order_id: str,
    received_at: datetime,
    fingerprint: str,
    actor: str,
    today: date,
) -> PaymentResult:
    now = clock.now()
    payment = CreditPayment(
        tenant_id=line.tenant_id,
        line=line,
        payment_id=payment_id,
        amount=amount,
        currency=currency,
        order_id=order_id,
        unapplied_amount=amount,
        received_at=received_at,
        fingerprint=fingerprint,
        created_by=actor[:200],
        created_at=now,
    )
    _insert(
        payment,
        conflict=IdempotencyKeyReused(
            "This payment id was recorded concurrently for another customer.", field="payment_id"
        ),
    )
    unpaid = CreditCharge.objects.filter(line=line, status__in=UNPAID_STATUSES)
    targets = list(unpaid.filter(order_id=order_id)) if order_id else []
    targets += list(unpaid.exclude(pk__in=[c.pk for c in targets]).order_by("due_date", "created_at", "pk"))
    remaining = amount
    allocations = []
    for charge in targets:
        if remaining <= 0:
            break
        part = min(remaining, charge.outstanding)
        remaining -= part
        charge.outstanding -= part
        if charge.outstanding == 0:
            charge.status = CreditChargeStatus.PAID
            charge.paid_at = received_at
        charge.save(update_fields=["outstanding", "status", "paid_at"])
        allocations.append(
            CreditPaymentAllocation(
                tenant_id=line.tenant_id, payment=payment, charge=charge, amount=part, created_at=now
            )
        )
    CreditPaymentAllocation.objects.bulk_create(allocations)
    applied = amount - remaining
    if remaining != amount:
        payment.unapplied_amount = remaining
        payment.save(update_fields=["unapplied_amount"])
    if applied > 0:
        _move_exposure(
            line,
            [_Movement(CreditLedgerKind.PAYMENT, -applied, order_id=order_id, payment=payment)],
            actor=actor,
        )
    _reconcile_overdue_hold(line, today=today, actor=actor or "system:payment")
    return _payment_result(payment, line, replayed=False)


# --- Overdue ---------------------------------------------------------------------------------------------------------
@transaction.atomic
def credit_line_overdue_process(
    *, line_id: Any, today: date | None = None, actor: str = "system:overdue"
) -> OverdueRunResult:
    """One line of the nightly run, under its lock: mark its charges past due as overdue, put it on hold when they
    are overdue past the grace period, release its hold when nothing blocks it any more."""
    line = _lock_line(line_id)
    today = today or _tenant_today(line.tenant_id)
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
    today = today or _tenant_today(require_tenant_slug())
    return OverdueRunResult.total(
        credit_line_overdue_process(line_id=line_id, today=today, actor=actor)
        for line_id in credit_lines_for_overdue_run(today=today)
    )


# --- Commercial terms -------------------------------------------------------------------------------------------------
def _clean_bracket(data: dict[str, Any]) -> tuple[str, Decimal, Decimal]:
    category = str(data.get("category") or "").strip().lower()
    if len(category) > 64:
        raise InvalidDiscountBracket("category is longer than 64 characters.", field="category")
    min_amount = parse_amount(data.get("min_amount"), field="min_amount", allow_zero=True)
    percent = parse_amount(data.get("discount_percent"), field="discount_percent")
    if percent > 100:
        raise InvalidDiscountBracket("discount_percent must be at most 100.", field="discount_percent")
    return category, min_amount, percent


def _business_customer(customer: Customer) -> Customer:
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.type != CustomerType.BUSINESS:
        raise CreditBusinessOnly(
            "Volume discounts are for business customers only.", customer_id=str(customer.pk)
        )
    return customer


@transaction.atomic
def volume_discounts_replace(
    *, customer: Customer, brackets: list[dict[str, Any]], actor: str
) -> list[VolumeDiscountBracket]:
    """Set a business customer's volume discount brackets (what the Pricing service reads) in one go."""
    customer = _business_customer(customer)
    cleaned = [_clean_bracket(b) for b in brackets]
    keys = [(category, minimum) for category, minimum, _ in cleaned]
    if len(set(keys)) != len(keys):
        raise InvalidDiscountBracket("Two brackets share a category and min_amount.")
    VolumeDiscountBracket.objects.filter(customer=customer).delete()
    return VolumeDiscountBracket.objects.bulk_create(
        [
            VolumeDiscountBracket(
                tenant_id=customer.tenant_id,
                customer=customer,
                category=category,
                min_amount=minimum,
                discount_percent=percent,
                updated_by=actor[:200],
            )
            for category, minimum, percent in sorted(cleaned)
        ]
    )


def volume_discount_bracket_check(
    *,
    customer: Customer,
    category: str,
    min_amount: Any,
    discount_percent: Any,
    bracket: VolumeDiscountBracket | None = None,
) -> tuple[str, Decimal, Decimal]:
    """Validate one bracket without writing (the admin form shows the errors): (category, min_amount, percent)."""
    category, minimum, percent = _clean_bracket(
        {"category": category, "min_amount": min_amount, "discount_percent": discount_percent}
    )
    clash = VolumeDiscountBracket.objects.filter(customer=customer, category=category, min_amount=minimum)
    if bracket is not None and bracket.pk:
        clash = clash.exclude(pk=bracket.pk)
    if clash.exists():
        raise InvalidDiscountBracket("A bracket with this category and min_amount exists.")
    return category, minimum, percent


@transaction.atomic
def volume_discount_bracket_save(
    *,
    customer: Customer,
    category: str,
    min_amount: Decimal,
    discount_percent: Decimal,
    actor: str,
    bracket: VolumeDiscountBracket | None = None,
) -> VolumeDiscountBracket:
    """Add or change one bracket (the admin's form)."""
    customer = _business_customer(customer)
    category, minimum, percent = volume_discount_bracket_check(
        customer=customer,
        category=category,
        min_amount=min_amount,
        discount_percent=discount_percent,
        bracket=bracket,
    )
    target = (
        bracket if bracket is not None and bracket.pk else VolumeDiscountBracket(tenant_id=customer.tenant_id)
    )
    target.customer = customer
    target.category = category
    target.min_amount = minimum
    target.discount_percent = percent
    target.updated_by = actor[:200]
    target.save()
    return target
