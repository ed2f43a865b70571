"""Checking and using credit: an order charged to the line (converting its hold), and cancelled again."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q

from core import clock
from core.errors import IdempotencyKeyReused
from core.models import Tenant
from core.money import check_currency, parse_amount
from core.outbox import outbox_event, outbox_statement
from core.tenancy import tenant_cached, tenant_today
from core.writes import Statement, insert_statement, update_statement
from credit.errors import (
    CreditChargeNotCancellable,
    CreditChargeNotFound,
    CreditLimitExceeded,
    CreditLineNotActive,
    CreditOnHold,
    InvalidOrderId,
)
from credit.models import (
    UNPAID_STATUSES,
    ZERO,
    CreditCharge,
    CreditChargeStatus,
    CreditHold,
    CreditHoldStatus,
    CreditLedgerKind,
    CreditLineStatus,
)
from credit.selectors import (
    credit_line_current,
)
from credit.services.exposure import (
    _check_fits,
    _check_usable,
    _keyed,
    _lock_customer_line,
    _lock_line,
    _move_exposure,
    _Movement,
    _record_limit_exceeded,
    _write_together,
)
from credit.services.holds import _expire_holds
from credit.services.inputs import _clean_ref, _require_text
from credit.services.overdue import _reconcile_overdue_hold
from credit.services.results import CreditAvailability, CreditUsageResult
from customers.errors import CustomerBlocked
from customers.models import Customer, CustomerStatus

# The reason `credit_check` gives for a customer that has no credit line at all.
NO_CREDIT_LINE = "no_credit_line"


# --- Check and use ---------------------------------------------------------------------------------------------------
def credit_check(*, customer: Customer, amount: Decimal) -> CreditAvailability:
    """Would `amount` fit right now? Changes nothing; `credit_use` checks again under the line's lock. A customer
    without a credit line is an answer (`no_credit_line`), not "not found": the caller asked whether it may sell
    on credit, and the answer is no."""
    amount = parse_amount(amount)
    line = credit_line_current(customer)
    if line is None:
        return CreditAvailability(
            available=False,
            credit_limit=ZERO,
            used=ZERO,
            available_amount=ZERO,
            currency=tenant_cached(customer.tenant_id).currency,
            status="",
            payment_terms_days=0,
            reason=NO_CREDIT_LINE,
        )
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
    tenant = tenant_cached(customer.tenant_id)
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
    # the line's expired holds and the order's active hold, in one read
    holds = list(
        CreditHold.objects.filter(status=CreditHoldStatus.ACTIVE)
        .filter(Q(line=line, expires_at__lte=now) | Q(tenant_id=tenant.slug, order_id=order_id))
        .order_by("pk")
    )
    expired = [h for h in holds if h.line_id == line.pk and h.expires_at is not None and h.expires_at <= now]
    if expired:
        _expire_holds(line, now=now, actor=actor or "system:hold-expiry", due=expired)
    hold = next((h for h in holds if h.order_id == order_id and h not in expired), None)
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
    writes: list[Statement] = []
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
        writes.append(insert_statement([charge]))
    movements = []
    if hold is not None:
        hold.status = CreditHoldStatus.CONVERTED
        hold.ended_at = now
        writes.append(update_statement(hold, ["status", "ended_at"]))
        movements.append(
            _Movement(CreditLedgerKind.HOLD_CONVERTED, -hold.amount, order_id=order_id, hold=hold)
        )
    movements.append(_Movement(CreditLedgerKind.CHARGE, amount, order_id=order_id, charge=charge))
    _move_exposure(line, movements, actor=actor, writes=writes)
    event = outbox_event(
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
    writes.append(outbox_statement(event))
    # the charge, the converted hold, the line, its ledger rows and the event in one statement
    _write_together(
        writes,
        conflict=IdempotencyKeyReused(
            "This order id was charged concurrently elsewhere.", field="order_id", order_id=order_id
        ),
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
    _reconcile_overdue_hold(line, today=tenant_today(line.tenant_id), actor=actor or "system")
    return charge
