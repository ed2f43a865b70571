"""Redemption holds: validate now, deduct at the end.

A point of sale quotes a redemption, lets Pricing apply the discount, and redeems when the sale is paid. Between
the two, a hold reserves the points: placing it locks the account and checks what is available (balance minus
the account's `held_points`, one row), then adds to `held_points` in the same transaction; every other
redemption (and quote) sees only what is left. The end of a hold, under the same lock:
- commit: the points are redeemed through the ordinary redeem (`points_redeem`, ledger, awards, event
  `loyalty.points.redeemed`) with the key `hold:<hold id>`, so a repeated or concurrent commit redeems once and
  answers the same redemption. A hold that expired may still be committed while its points are available
  (nothing else spent them); otherwise `points_hold_expired`.
- release: the points are free again; releasing an ended hold again changes nothing.
- expiry: any operation that locks the account releases its holds past their time first (`maturing`), and a
  periodic job does the same for accounts nobody touches, so correctness never waits for the job.
Holds publish no events: the balance changes only at the commit, whose redemption is published as usual.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from core import clock
from core.holds import hold_expiry
from core.models import IdempotencyRecord
from core.money import parse_amount
from core.tenancy import tenant_cached
from core.writes import insert_statement, update_statement, write_together
from customers.models import Customer
from loyalty.calculations import discount_for
from loyalty.errors import PointsHoldExpired, PointsHoldNotActive, PointsHoldNotFound
from loyalty.models import HoldStatus, LoyaltyAccount, OperationKind, PointsHold
from loyalty.selectors import hold_get
from loyalty.services.inputs import (
    _check_key,
    _check_points,
    _check_reference,
    _refuse_blocked,
    hold_longest,
    hold_ttl,
)
from loyalty.services.ledger import _atomic, _Ctx, _earlier, _run_idempotent
from loyalty.services.maturing import _expire_holds_due, _lock, _mature
from loyalty.services.points import _check_redemption, points_redeem
from loyalty.services.results import HoldResult, LoyaltyResult
from loyalty.services.tiers import _finish

_HELD_FIELDS = ("held_points", "next_hold_expiry_at", "updated_at")


def _result(
    hold: PointsHold,
    account: LoyaltyAccount,
    *,
    balance: int | None = None,
    redemption: LoyaltyResult | None = None,
    replayed: bool = False,
) -> HoldResult:
    balance = account.available if balance is None else balance
    return HoldResult(
        hold_id=hold.pk,
        status=hold.status,
        points=hold.points,
        reference=hold.reference,
        purchase_amount=hold.purchase_amount,
        discount_amount=hold.discount_amount,
        currency=hold.currency,
        expires_at=hold.expires_at,
        points_balance=balance,
        held_points=account.held_points,
        available_points=balance - account.held_points,
        redemption=redemption,
        replayed=replayed,
    )


def commit_key(hold_id: Any) -> str:
    """The idempotency key of the redemption a hold's commit writes (one per hold)."""
    return f"hold:{hold_id}"


# --- Place ----------------------------------------------------------------------------------------------------
@_atomic
def points_hold_place(
    *,
    customer: Customer,
    idempotency_key: str,
    points: int,
    reference: str = "",
    purchase_amount: Decimal | None = None,
    ttl_seconds: int | None = None,
    source: str = "api",
    actor: str = "",
) -> HoldResult:
    """Reserve points for a sale until it is paid (commit), abandoned (release) or the hold expires (default
    LOYALTY_HOLD_TTL_SECONDS); refused as a redemption of them would be. Once per idempotency key."""
    points = _check_points(points)
    reference = _check_reference(reference)
    amount = parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    key = _check_key(idempotency_key)
    now = clock.now()
    expires = hold_expiry(now=now, default=hold_ttl(), longest=hold_longest(), ttl_seconds=ttl_seconds)
    currency = str(tenant_cached(customer.tenant_id).currency)
    payload = {
        "points": points,
        "reference": reference,
        "purchase_amount": str(amount) if amount is not None else None,
        "ttl_seconds": ttl_seconds,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        _refuse_blocked(customer)  # a hold is a redemption to come: refused as the redemption would be
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        account = ctx.account
        _check_redemption(ctx.program, points, account.available - account.held_points, amount)
        hold = PointsHold(
            id=uuid.uuid4(),
            tenant_id=account.tenant_id,
            account=account,
            customer_id=customer.pk,
            operation=operation,
            idempotency_key=key,
            points=points,
            reference=reference,
            purchase_amount=amount,
            discount_amount=discount_for(points, points_per_unit=ctx.program.redemption_points_per_unit),
            currency=currency,
            status=HoldStatus.HELD,
            expires_at=ctx.now + (expires - now),
            source=source,
            actor=actor[:200],
            created_at=ctx.now,
        )
        account.held_points += points
        account.next_hold_expiry_at = _earlier(account.next_hold_expiry_at, hold.expires_at)
        # the hold and the account's held total in one statement
        write_together([insert_statement([hold]), update_statement(account, _HELD_FIELDS)])
        _finish(ctx)
        return _result(hold, account).as_json()

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.HOLD, key=key, payload=payload, work=work
    )
    return HoldResult.from_json(result, replayed=replayed)


# --- Commit, release ------------------------------------------------------------------------------------------
def _hold_locked(customer: Customer, hold_id: Any, *, actor: str, source: str) -> tuple[_Ctx, PointsHold]:
    """Lock the account (releasing its expired holds first), then read the hold: holds change only under it."""
    try:
        pk = uuid.UUID(str(hold_id))
    except ValueError as exc:
        raise PointsHoldNotFound(hold_id=str(hold_id)) from exc
    ctx = _lock(customer, actor=actor, source=source)
    hold = hold_get(customer, pk)
    if hold is None:
        raise PointsHoldNotFound(hold_id=str(pk))
    return ctx, hold


def _unhold(ctx: _Ctx, hold: PointsHold) -> None:
    account = ctx.account
    account.held_points -= hold.points
    if not account.held_points:
        account.next_hold_expiry_at = None  # otherwise a lower bound still
    account.save(update_fields=list(_HELD_FIELDS))


@transaction.atomic
def points_hold_commit(
    *, customer: Customer, hold_id: Any, source: str = "api", actor: str = ""
) -> HoldResult:
    """Redeem exactly the held points (the sale is paid). Idempotent by hold: committing again answers the same
    redemption. Past its time a hold still commits while its points are available, else `points_hold_expired`;
    a released hold is `points_hold_not_active`."""
    ctx, hold = _hold_locked(customer, hold_id, actor=actor, source=source)
    account = ctx.account
    if hold.status == HoldStatus.RELEASED:
        raise PointsHoldNotActive(hold_id=str(hold.pk), status=hold.status)
    if hold.status == HoldStatus.HELD:
        _unhold(ctx, hold)  # the points stop being held and are spent by the redemption below
    elif hold.status == HoldStatus.EXPIRED and account.available - account.held_points < hold.points:
        raise PointsHoldExpired(
            hold_id=str(hold.pk),
            expired_at=hold.expires_at.isoformat(),
            available=max(account.available - account.held_points, 0),
            requested=hold.points,
        )
    replayed = hold.status == HoldStatus.COMMITTED
    redemption = points_redeem(
        customer=customer,
        idempotency_key=commit_key(hold.pk),
        points=hold.points,
        reference=hold.reference,
        purchase_amount=hold.purchase_amount,
        source=source,
        actor=actor,
    )
    if not replayed:
        hold.status = HoldStatus.COMMITTED
        hold.ended_at = ctx.now
        hold.redemption_id = redemption.transaction_id
        hold.save(update_fields=["status", "ended_at", "redemption"])
    _finish(ctx)
    balance = account.available if replayed else redemption.points_balance
    return _result(hold, account, balance=balance, redemption=redemption, replayed=replayed)


@transaction.atomic
def points_hold_release(
    *, customer: Customer, hold_id: Any, source: str = "api", actor: str = ""
) -> HoldResult:
    """Give the held points back (the sale was abandoned). Releasing a released or expired hold again changes
    nothing; a committed one is `points_hold_not_active`."""
    ctx, hold = _hold_locked(customer, hold_id, actor=actor, source=source)
    if hold.status == HoldStatus.COMMITTED:
        raise PointsHoldNotActive(hold_id=str(hold.pk), status=hold.status)
    replayed = hold.status != HoldStatus.HELD
    if not replayed:
        _unhold(ctx, hold)
        hold.status = HoldStatus.RELEASED
        hold.ended_at = ctx.now
        hold.save(update_fields=["status", "ended_at"])
    _finish(ctx)
    return _result(hold, ctx.account, replayed=replayed)


# --- Job ------------------------------------------------------------------------------------------------------
@transaction.atomic
def points_holds_expire(*, customer: Customer, actor: str = "system") -> int:
    """Release the customer's holds past their time (and mature the rest of the account, so it never
    half-matures); returns how many holds expired."""
    ctx = _lock(customer, actor=actor, source="system", mature=False)
    expired = _expire_holds_due(ctx)
    _mature(ctx)
    _finish(ctx)
    return expired
