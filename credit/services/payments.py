"""Payments: applied to the order's charge, then to the oldest due ones; the excess kept as unapplied credit."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from core import clock
from core.errors import IdempotencyKeyReused
from core.idempotency import fingerprint_of
from core.models import Tenant
from core.money import check_currency, parse_amount
from core.tenancy import tenant_cached
from credit.errors import (
    InvalidOrderId,
    InvalidPaymentId,
)
from credit.models import (
    UNPAID_STATUSES,
    CreditCharge,
    CreditChargeStatus,
    CreditLedgerKind,
    CreditLine,
    CreditPayment,
    CreditPaymentAllocation,
)
from credit.services.exposure import _insert, _keyed, _lock_customer_line, _move_exposure, _Movement
from credit.services.inputs import _clean_ref
from credit.services.line_events import payment_recorded_event
from credit.services.overdue import _reconcile_overdue_hold
from credit.services.results import PaymentAllocationResult, PaymentResult
from customers.models import Customer


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
    tenant = tenant_cached(customer.tenant_id)
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
    payment_recorded_event(line, payment, allocations)
    return _payment_result(payment, line, replayed=False)
