"""Checkout holds: credit reserved for an order until it is charged, released or expires."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction

from core import clock
from core.holds import hold_expiry
from core.money import check_currency, parse_amount
from core.tenancy import require_tenant_slug, tenant_cached
from credit.errors import (
    CreditHoldExists,
    CreditHoldNotActive,
    CreditHoldNotFound,
    CreditLimitExceeded,
    CreditOrderAlreadyCharged,
    InvalidOrderId,
)
from credit.models import (
    CreditCharge,
    CreditChargeStatus,
    CreditHold,
    CreditHoldStatus,
    CreditLedgerKind,
    CreditLine,
)
from credit.selectors import (
    credit_lines_with_expired_holds,
)
from credit.services.exposure import (
    _check_fits,
    _check_usable,
    _insert,
    _keyed,
    _lock_customer_line,
    _lock_line,
    _move_exposure,
    _Movement,
    _record_limit_exceeded,
)
from credit.services.inputs import MAX_HOLD_DAYS, _clean_ref, hold_ttl
from credit.services.results import HoldResult
from customers.models import Customer


def _expire_holds(line: CreditLine, *, now: datetime, actor: str, due: list[CreditHold] | None = None) -> int:
    """Release the line's holds whose time is up (the line must be locked); `due`: the caller already read them
    (active, of this line, expired by `now`, in primary-key order)."""
    expired = (
        due
        if due is not None
        else list(
            CreditHold.objects.filter(
                line=line, status=CreditHoldStatus.ACTIVE, expires_at__lte=now
            ).order_by("pk")
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
    tenant = tenant_cached(customer.tenant_id)
    currency = check_currency(currency, tenant_currency=tenant.currency)
    now = clock.now()
    expires = hold_expiry(
        now=now, default=hold_ttl(), longest=timedelta(days=MAX_HOLD_DAYS), expires_at=expires_at
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
