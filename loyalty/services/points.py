"""Points: earn, redeem, adjust, and the release and expiry jobs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from core import clock
from core.errors import InvalidAmount
from core.models import IdempotencyRecord
from core.money import MAX_AMOUNT, check_currency, parse_amount
from core.outbox import outbox_event, outbox_record, outbox_statement
from core.tenancy import tenant_cached
from core.writes import Statement, insert_statement
from customers.models import Customer
from loyalty.calculations import (
    discount_for,
    earn_points,
    max_points_for_purchase,
)
from loyalty.errors import (
    BelowMinimumRedemption,
    InsufficientPoints,
    InvalidEarnRequest,
    InvalidPoints,
    ReasonRequired,
    RedemptionExceedsPurchaseShare,
)
from loyalty.models import (
    LoyaltyAccount,
    LoyaltyProgram,
    OperationKind,
    TransactionType,
)
from loyalty.selectors import (
    held_points,
    program_get,
    program_tiers,
    spendable_points,
)
from loyalty.services.inputs import (
    MAX_POINTS,
    _check_key,
    _check_points,
    _check_reference,
    _normalize_items,
    _refuse_blocked,
)
from loyalty.services.ledger import (
    _account_statement,
    _allocate,
    _atomic,
    _award_expiry,
    _credit,
    _draw,
    _new_award,
    _new_txn,
    _redraw,
    _run_idempotent,
    _save_account,
    _save_txn,
    _write_with_txn,
)
from loyalty.services.maturing import _lock, _mature
from loyalty.services.results import LoyaltyResult
from loyalty.services.stamps import _stamps_from_items
from loyalty.services.tiers import _evaluate_tier, _finish, _refresh_qualifying, _result


# --- Earn -----------------------------------------------------------------------------------------------------
@_atomic
def points_earn(
    *,
    customer: Customer,
    idempotency_key: str,
    purchase_amount: Decimal | None = None,
    points: int | None = None,
    currency: str | None = None,
    reference: str = "",
    items: list[dict] | None = None,
    source: str = "api",
    actor: str = "",
    qualifying: bool | None = None,
) -> LoyaltyResult:
    """Award points for a purchase (rate x tier multiplier, floored) or explicit bonus points, once per key."""
    if (purchase_amount is None) == (points is None):
        raise InvalidEarnRequest()
    key = _check_key(idempotency_key)
    amount = parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    bonus = _check_points(points) if points is not None else None
    tenant_currency = str(tenant_cached(customer.tenant_id).currency)  # the process copy: no statement
    currency = check_currency(currency, tenant_currency=tenant_currency)
    reference = _check_reference(reference)
    normalized_items = _normalize_items(items)
    # The fingerprint covers what is earned, not how the sale is described: a point-of-sale call (no items) and the
    # sale's event (with items) share the key `pos:<transaction id>` and must be the same request.
    payload = {
        "purchase_amount": str(amount) if amount is not None else None,
        "points": bonus,
        "currency": currency,
        "qualifying": qualifying,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        _refuse_blocked(customer)  # inside the claim: a replay still returns the first result
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        ctx.currency = tenant_currency
        program = ctx.program
        if amount is not None:
            multiplier = ctx.tier(ctx.account.tier).earn_multiplier
            earned = earn_points(
                amount, rate=program.earn_rate, multiplier=multiplier, rounding=program.earn_rounding
            )
            # Tier thresholds count spend, not the tier's own bonus.
            qualifying_points = earn_points(
                amount, rate=program.earn_rate, multiplier=Decimal(1), rounding=program.earn_rounding
            )
        else:
            multiplier = None
            earned = int(bonus or 0)
            counts = program.bonus_points_qualify if qualifying is None else qualifying
            qualifying_points = earned if counts else 0
        if earned > MAX_POINTS:
            raise InvalidAmount(
                f"purchase_amount would earn more than {MAX_POINTS} points at once.", field="purchase_amount"
            )
        pending = program.pending_days > 0 and earned > 0
        txn = _new_txn(
            ctx,
            TransactionType.EARN,
            earned,
            available_delta=0 if pending else earned,
            pending_delta=earned if pending else 0,
            qualifying_delta=0 if pending else qualifying_points,
            qualifying_points=qualifying_points,
            purchase_amount=amount,
            currency=currency,
            multiplier=multiplier,
            expires_at=_award_expiry(ctx) if earned else None,
            reference=reference,
            idempotency_key=key,
        )
        ctx.account.lifetime_earned += earned
        repay = 0
        if pending:
            ctx.account.pending += earned
        else:
            repay = _credit(ctx, earned)
        if txn.qualifying_delta:
            _refresh_qualifying(ctx, unsaved_delta=txn.qualifying_delta)
            _evaluate_tier(ctx, review=False)
        event: dict[str, Any] = {
            "tenant_id": customer.tenant_id,
            "event_type": "loyalty.points.earned",
            "data": {
                "customer_id": str(customer.pk),
                "transaction_id": str(txn.pk),
                "points": earned,
                "pending": pending,
                "points_balance": ctx.account.available,
                "pending_balance": ctx.account.pending,
                "purchase_amount": amount,
                "currency": currency,
                "reference": reference,
                "source": source,
                "tier": ctx.account.tier,
                "expires_at": txn.expires_at,
            },
            "aggregate_id": str(customer.pk),
        }
        if earned and not repay and not normalized_items:
            # the ledger row, its award, the account and the event in one statement
            award = _new_award(ctx, txn, earned, pending=pending, qualifying=qualifying_points, save=False)
            writes = [
                insert_statement([award]),
                _account_statement(ctx),
                outbox_statement(outbox_event(**event)),
            ]
            _write_with_txn(ctx, txn, writes)
            rewards = 0
        else:
            _save_txn(ctx, txn)
            if earned:
                award = _new_award(ctx, txn, earned, pending=pending, qualifying=qualifying_points)
                if repay:
                    _allocate(ctx, txn, award, repay)  # pays back the negative balance first
            _save_account(ctx)
            rewards = (
                _stamps_from_items(ctx, normalized_items, reference=reference) if normalized_items else 0
            )
            if earned:
                outbox_record(**event)
        _finish(ctx)
        return _result(ctx, txn, points=earned, discount=Decimal("0.00"), stamp_rewards_issued=rewards)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.EARN, key=key, payload=payload, work=work
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Redeem ---------------------------------------------------------------------------------------------------
def _check_redemption(program: LoyaltyProgram, points: int, available: int, amount: Decimal | None) -> None:
    if discount_for(points, points_per_unit=program.redemption_points_per_unit) > MAX_AMOUNT:
        raise InvalidPoints("points are worth more than one discount may be.", field="points")
    if points < program.min_redemption_points:
        raise BelowMinimumRedemption(minimum=program.min_redemption_points, requested=points)
    if amount is not None:
        most = max_points_for_purchase(
            amount, share=program.max_redemption_share, points_per_unit=program.redemption_points_per_unit
        )
        if points > most:
            raise RedemptionExceedsPurchaseShare(
                maximum_points=most, requested=points, max_share=str(program.max_redemption_share)
            )
    if points > available:
        raise InsufficientPoints(available=max(available, 0), requested=points)


@_atomic
def points_redeem(
    *,
    customer: Customer,
    idempotency_key: str,
    points: int,
    reference: str = "",
    dry_run: bool = False,
    actor: str = "",
    purchase_amount: Decimal | None = None,
    source: str = "api",
) -> LoyaltyResult:
    """Spend points for a discount, drawing on the soonest-expiring awards; `dry_run` quotes and writes nothing."""
    points = _check_points(points)
    reference = _check_reference(reference)
    amount = parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    tenant_currency = str(tenant_cached(customer.tenant_id).currency)  # the process copy: no statement
    if dry_run:
        _refuse_blocked(customer)
        program = program_get(customer.tenant_id)
        account = LoyaltyAccount.objects.filter(customer_id=customer.pk).first()
        now = clock.now()
        available = spendable_points(account, now=now) if account else 0
        # points held for other sales are not there to spend (`services.holds`)
        _check_redemption(
            program, points, available - (held_points(account, now=now) if account else 0), amount
        )
        tier = account.tier if account else program_tiers(program)[0].code
        return LoyaltyResult(
            transaction_id=None,
            points=points,
            points_balance=available - points,
            discount_amount=discount_for(points, points_per_unit=program.redemption_points_per_unit),
            currency=tenant_currency,
            tier=tier,
            previous_tier=tier,
            tier_changed=False,
            pending_balance=account.pending if account else 0,
        )
    key = _check_key(idempotency_key)
    payload = {
        "points": points,
        "reference": reference,
        "purchase_amount": str(amount) if amount is not None else None,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        _refuse_blocked(customer)
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        ctx.currency = tenant_currency
        _check_redemption(ctx.program, points, ctx.account.available - ctx.account.held_points, amount)
        discount = discount_for(points, points_per_unit=ctx.program.redemption_points_per_unit)
        txn = _new_txn(
            ctx,
            TransactionType.REDEEM,
            points,
            available_delta=-points,
            discount_amount=discount,
            purchase_amount=amount,
            currency=tenant_currency,
            reference=reference,
            idempotency_key=key,
        )
        ctx.account.available -= points
        ctx.account.redeemed += points
        writes: list[Statement] = []
        drawn = _draw(ctx, txn, points, writes=writes)
        if drawn != points:  # pragma: no cover - the awards always hold the available balance
            raise RuntimeError(f"Awards held {drawn} points, the account {points + ctx.account.available}")
        event = outbox_event(
            tenant_id=customer.tenant_id,
            event_type="loyalty.points.redeemed",
            data={
                "customer_id": str(customer.pk),
                "transaction_id": str(txn.pk),
                "points": points,
                "discount_amount": discount,
                "currency": tenant_currency,
                "points_balance": ctx.account.available,
                "reference": reference,
                "source": source,
            },
            aggregate_id=str(customer.pk),
        )
        # the ledger row, the awards drawn on, the allocations, the account and the event in one statement
        _write_with_txn(ctx, txn, [*writes, _account_statement(ctx), outbox_statement(event)])
        _finish(ctx)
        return _result(ctx, txn, points=points, discount=discount)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.REDEEM, key=key, payload=payload, work=work
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Adjust ---------------------------------------------------------------------------------------------------
@transaction.atomic
def points_adjust(
    *, customer: Customer, idempotency_key: str, points: int, reason: str, actor: str, source: str = "admin"
) -> LoyaltyResult:
    """A staff correction, positive or negative, with its reason on the ledger (the door checks permission).
    It never counts toward a tier."""
    key = _check_key(idempotency_key)
    points = _check_points(points, allow_negative=True)
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(field="reason")

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        account = ctx.account
        if points < 0 and -points > account.available:
            raise InsufficientPoints(available=max(account.available, 0), requested=-points)
        txn = _new_txn(
            ctx,
            TransactionType.ADJUST,
            abs(points),
            available_delta=points,
            reason=reason[:500],
            idempotency_key=key,
            expires_at=_award_expiry(ctx) if points > 0 else None,
        )
        account.adjusted += points
        if points > 0:
            repay = _credit(ctx, points)
            _save_txn(ctx, txn)
            award = _new_award(ctx, txn, points, pending=False, qualifying=0)
            if repay:
                _allocate(ctx, txn, award, repay)
        else:
            account.available += points
            _save_txn(ctx, txn)
            _redraw(ctx, txn, -points, first=None)
        _save_account(ctx)
        outbox_record(
            tenant_id=customer.tenant_id,
            event_type="loyalty.points.adjusted",
            data={
                "customer_id": str(customer.pk),
                "transaction_id": str(txn.pk),
                "points": points,
                "reason": txn.reason,
                "points_balance": account.available,
                "pending_balance": account.pending,
                "tier": account.tier,
                "expires_at": txn.expires_at,
                "adjusted_by": txn.actor,
                "source": source,
            },
            aggregate_id=str(customer.pk),
        )
        _finish(ctx)
        return _result(ctx, txn, points=points, discount=Decimal("0.00"))

    result, replayed = _run_idempotent(
        customer=customer,
        kind=OperationKind.ADJUST,
        key=key,
        payload={"points": points, "reason": reason},
        work=work,
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Jobs: release, expire, review ----------------------------------------------------------------------------
@transaction.atomic
def points_release_pending(*, customer: Customer, actor: str = "system") -> int:
    """Release the customer's pending points whose return window has passed (and everything else due, so the
    account never half-matures); returns how many points were released."""
    ctx = _lock(customer, actor=actor, source="system", mature=False)
    released, _ = _mature(ctx)
    _finish(ctx)
    return released


@transaction.atomic
def points_expire(*, customer: Customer, actor: str = "system") -> int:
    """Expire what is left of the customer's awards past their date (releasing due pending points first, with
    the tier they reach); returns how many points expired."""
    ctx = _lock(customer, actor=actor, source="system", mature=False)
    _, expired = _mature(ctx)
    _finish(ctx)
    return expired
