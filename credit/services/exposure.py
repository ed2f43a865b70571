"""A line's exposure: idempotent writes, the line lock that serialises every change, the ledger of
movements, status changes with their history, and the checks a use or hold must pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from psycopg.errors import UniqueViolation

from core import clock
from core.errors import DomainError
from core.idempotency import idempotent
from core.outbox import outbox_record
from core.refusals import refusal_record
from core.writes import Statement, insert_statement, update_statement, write_together
from credit.errors import (
    CreditLimitExceeded,
    CreditLineNotActive,
    CreditLineNotFound,
    CreditOnHold,
)
from credit.models import (
    OPEN_STATUSES,
    ZERO,
    CreditCharge,
    CreditHold,
    CreditLedgerEntry,
    CreditLine,
    CreditLineChange,
    CreditLineStatus,
    CreditPayment,
)
from credit.services.inputs import _jsonable
from customers.cache import customer_cache_invalidate
from customers.errors import CustomerBlocked
from customers.models import Customer, CustomerStatus

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


def _write_together(writes: list[Statement], *, conflict: DomainError) -> None:
    """Send `writes` as one statement (`core.writes`), with no savepoint: a unique constraint lost to another
    transaction is `conflict`, which ends the transaction anyway (the door's, or the savepoint a nested caller's
    idempotent run or atomic block holds); any other integrity error is a bug, raised."""
    try:
        write_together(writes)
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


def _move_exposure(
    line: CreditLine, movements: Iterable[_Movement], *, actor: str, writes: list[Statement] | None = None
) -> None:
    """Append ledger rows and move the cached exposure by their sum (the line must be locked). With `writes`,
    the line's update and the rows are added to it (for `core.writes.write_together`) instead of sent now."""
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
    if writes is None:
        line.save(update_fields=["exposure", "excess_allowance", "updated_at"])
        CreditLedgerEntry.objects.bulk_create(rows)
    else:
        writes.append(update_statement(line, ["exposure", "excess_allowance", "updated_at"]))
        writes.append(insert_statement(rows))
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
