"""Returns and refunds: a purchase reversed by reference takes back its points and stamps, gives back
redeemed points."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum

from core.errors import InvalidInput
from core.models import IdempotencyRecord
from core.money import parse_amount
from core.outbox import outbox_record
from customers.models import Customer
from loyalty.calculations import (
    discount_for,
    proportional_take,
)
from loyalty.errors import (
    NothingToReverse,
    PurchaseAmountUnknown,
    ReversalExceedsPurchase,
)
from loyalty.models import (
    AwardAllocation,
    AwardStatus,
    LoyaltyTransaction,
    OperationKind,
    PointsAward,
    PurchaseReversal,
    TransactionType,
)
from loyalty.services.inputs import _check_key, _check_reference
from loyalty.services.ledger import (
    _allocate,
    _credit,
    _Ctx,
    _new_txn,
    _redraw,
    _run_idempotent,
    _save_account,
    _save_txn,
)
from loyalty.services.maturing import _expire_due, _lock
from loyalty.services.results import ReversalResult
from loyalty.services.stamps import _reverse_stamps, _stamp_cards_for_reference
from loyalty.services.tiers import _evaluate_tier, _finish, _refresh_qualifying


# --- Reverse (returns and refunds) ----------------------------------------------------------------------------
@transaction.atomic
def points_reverse(
    *,
    customer: Customer,
    idempotency_key: str,
    reference: str,
    amount: Decimal | None = None,
    purchase_amount: Decimal | None = None,
    reason: str = "",
    source: str = "api",
    actor: str = "",
) -> ReversalResult:
    """Reverse a purchase fully (no amount) or partly: take back earned points in proportion, give back points
    it was paid with, take back its stamps. Cumulative, so the same purchase is never reversed twice."""
    key = _check_key(idempotency_key)
    reference = _check_reference(reference)
    if not reference:
        raise InvalidInput("A reversal needs the purchase's reference.", code="invalid_reference")
    returned = parse_amount(amount, field="amount") if amount is not None else None
    base_given = (
        parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    )
    payload = {
        "reference": reference,
        "amount": str(returned) if returned is not None else None,
        "purchase_amount": str(base_given) if base_given is not None else None,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        return _reverse(ctx, reference=reference, returned=returned, base_given=base_given, reason=reason)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.REVERSE, key=key, payload=payload, work=work
    )
    return ReversalResult.from_json(result, replayed=replayed)


def _reverse(
    ctx: _Ctx, *, reference: str, returned: Decimal | None, base_given: Decimal | None, reason: str
) -> dict[str, Any]:
    account = ctx.account
    txns = LoyaltyTransaction.objects.filter(account=account, reference=reference)
    earns = list(txns.filter(type=TransactionType.EARN).order_by("seq"))
    redeems = list(txns.filter(type=TransactionType.REDEEM).order_by("seq"))
    stamp_cards = _stamp_cards_for_reference(ctx, reference)
    if not earns and not redeems and not stamp_cards:
        raise NothingToReverse(
            f"Nothing was earned or redeemed with reference {reference!r}.", reference=reference
        )
    earn_amounts = [e.purchase_amount for e in earns if e.purchase_amount is not None]
    redeem_amounts = [r.purchase_amount for r in redeems if r.purchase_amount is not None]
    base = base_given or (sum(earn_amounts, Decimal(0)) if earn_amounts else None)
    base = base or (sum(redeem_amounts, Decimal(0)) if redeem_amounts else None)
    prior = list(PurchaseReversal.objects.filter(account=account, reference=reference))
    if any(p.full for p in prior):
        raise NothingToReverse(f"The purchase {reference!r} was already reversed.", reference=reference)
    returned_before = sum((p.amount or Decimal(0) for p in prior), Decimal(0))
    if returned is None:
        full = True
        returned_total = base if base is not None else Decimal(0)
    else:
        if base is None:
            raise PurchaseAmountUnknown(reference=reference)
        returned_total = returned_before + returned
        if returned_total > base:
            raise ReversalExceedsPurchase(
                purchase_amount=str(base), already_returned=str(returned_before), requested=str(returned)
            )
        full = returned_total == base

    def target(total: int) -> int:
        if full or base is None:
            return total
        return proportional_take(total, base=base, returned=returned_total)

    txn_ids: list[str] = []
    taken = unrecovered = given_back = 0
    first_returned_earn: LoyaltyTransaction | None = None
    qualifying_changed = False
    for earn in earns:
        already = list(earn.reversals.all())
        take = target(earn.points) - sum(r.points for r in already)
        take_q = target(earn.qualifying_points) - sum(r.qualifying_points for r in already)
        if take <= 0 and take_q <= 0:
            continue
        txn, missing = _reverse_earn(ctx, earn, max(take, 0), max(take_q, 0), reason=reason)
        txn_ids.append(str(txn.pk))
        taken += txn.points
        unrecovered += missing
        qualifying_changed = qualifying_changed or txn.qualifying_delta != 0
        first_returned_earn = first_returned_earn or earn
    for redeem in redeems:
        give = target(redeem.points) - sum(r.points for r in redeem.reversals.all())
        if give <= 0:
            continue
        txn = _reverse_redeem(ctx, redeem, give, reason=reason)
        txn_ids.append(str(txn.pk))
        given_back += give
    stamps = 0
    for card in stamp_cards:
        stamps += _reverse_stamps(ctx, card, reference=reference, target=target)
    assert ctx.operation is not None
    reversal = PurchaseReversal.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        operation=ctx.operation,
        reference=reference,
        full=full,
        amount=returned if returned is not None else (base - returned_before if base is not None else None),
        base_amount=base,
        reason=reason[:500],
        created_at=ctx.now,
    )
    if qualifying_changed:
        _refresh_qualifying(ctx)
        _evaluate_tier(ctx, review=False, returned_earn=first_returned_earn)
    # Points given back to awards whose date has passed expire now, as those awards' other points did.
    _expire_due(ctx)
    _save_account(ctx)
    outbox_record(
        tenant_id=account.tenant_id,
        event_type="loyalty.points.reversed",
        data={
            "customer_id": str(account.customer_id),
            "reference": reference,
            "full": full,
            "returned_amount": reversal.amount,
            "purchase_amount": base,
            "points_reversed": taken,
            "points_unrecovered": unrecovered,
            "points_returned": given_back,
            "stamps_reversed": stamps,
            "points_balance": account.available,
            "pending_balance": account.pending,
            "tier": account.tier,
            "transaction_ids": txn_ids,
            "reason": reason[:500],
            "source": ctx.source,
        },
        aggregate_id=str(account.customer_id),
    )
    _finish(ctx)
    return ReversalResult(
        reference=reference,
        points_reversed=taken,
        points_unrecovered=unrecovered,
        points_returned=given_back,
        stamps_reversed=stamps,
        points_balance=account.available,
        pending_balance=account.pending,
        tier=account.tier,
        previous_tier=ctx.starting_tier,
        tier_changed=account.tier != ctx.starting_tier,
        transaction_ids=txn_ids,
    ).as_json()


def _reverse_earn(
    ctx: _Ctx, earn: LoyaltyTransaction, take: int, take_q: int, *, reason: str
) -> tuple[LoyaltyTransaction, int]:
    """Take back `take` points of an earn: from its own award first, then other points; the program's
    negative-balance policy decides about points already spent. Points of the award that already expired are
    never charged again: they are recorded as unrecovered."""
    account = ctx.account
    award = PointsAward.objects.filter(transaction=earn).first()
    reversed_before = earn.reversals.aggregate(s=Sum("points"))["s"] or 0
    is_pending = award is not None and award.status == AwardStatus.PENDING
    counted = not is_pending
    txn = _new_txn(
        ctx,
        TransactionType.REVERSE_EARN,
        take,
        reverses=earn,
        reference=earn.reference,
        reason=reason[:500],
        qualifying_points=take_q,
        qualifying_delta=-take_q if counted else 0,
        effective_at=earn.effective_at,
        purchase_amount=None,
        currency=earn.currency,
    )
    account.lifetime_earned -= take
    missing = 0
    if is_pending:
        assert award is not None
        txn.pending_delta = -take
        account.pending -= take
        _save_txn(ctx, txn)
        if take:
            _allocate(ctx, txn, award, take)
    else:
        expired = _expired_from(award) if award is not None else 0
        chargeable = min(take, max(earn.points - expired - reversed_before, 0))
        # The available awards hold exactly the available balance (nothing when it is negative).
        taken = min(chargeable, max(account.available, 0))
        shortfall = chargeable - taken
        if shortfall and ctx.program.allows_negative:
            delta = -chargeable
            missing = take - chargeable
        else:
            delta = -taken
            missing = take - taken
        account.available += delta
        account.unrecovered += missing
        txn.available_delta = delta
        txn.unrecovered_points = missing
        _save_txn(ctx, txn)
        if taken:
            _redraw(ctx, txn, taken, first=award)
    if award is not None and take_q:
        award.refresh_from_db(fields=["remaining"])
        award.qualifying_points = max(award.qualifying_points - take_q, 0)
        award.save(update_fields=["qualifying_points"])
    return txn, missing


def _expired_from(award: PointsAward) -> int:
    """How many of the award's points expired."""
    expired = AwardAllocation.objects.filter(award=award, transaction__type=TransactionType.EXPIRE).aggregate(
        s=Sum("points")
    )["s"]
    return int(expired or 0)


def _reverse_redeem(ctx: _Ctx, redeem: LoyaltyTransaction, give: int, *, reason: str) -> LoyaltyTransaction:
    """Give `give` points of a redemption back to exactly the awards it drew from (latest-expiring first)."""
    account = ctx.account
    txn = _new_txn(
        ctx,
        TransactionType.REVERSE_REDEEM,
        give,
        available_delta=give,
        reverses=redeem,
        reference=redeem.reference,
        reason=reason[:500],
        discount_amount=discount_for(give, points_per_unit=ctx.program.redemption_points_per_unit),
        currency=redeem.currency,
    )
    account.redeemed -= give
    repay = _credit(ctx, give)
    _save_txn(ctx, txn)
    drawn = list(redeem.allocations.select_related("award").order_by("id"))
    given: dict[Any, int] = {}
    for reversal in redeem.reversals.exclude(pk=txn.pk):
        for alloc in reversal.allocations.all():
            if alloc.points < 0:
                given[alloc.award_id] = given.get(alloc.award_id, 0) - alloc.points
    left = give
    credited: list[PointsAward] = []
    for alloc in reversed(drawn):
        if left == 0:
            break
        room = alloc.points - given.get(alloc.award_id, 0)
        n = min(room, left)
        if n <= 0:
            continue
        given[alloc.award_id] = given.get(alloc.award_id, 0) + n
        award = PointsAward.objects.get(pk=alloc.award_id)
        _allocate(ctx, txn, award, -n)
        credited.append(award)
        left -= n
    # A negative balance (allowed by the program) is paid back first from what came back.
    for award in credited:
        if repay == 0:
            break
        n = min(award.remaining, repay)
        _allocate(ctx, txn, award, n)
        repay -= n
    return txn
