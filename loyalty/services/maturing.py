"""Maturing an account before any change: pending awards released, due awards expired, under the lock."""

from __future__ import annotations

from django.db.models import Min, Sum

from core import clock
from core.models import IdempotencyRecord
from core.outbox import outbox_record
from customers.cache import customer_cache_invalidate
from customers.models import Customer
from loyalty.calculations import add_months
from loyalty.models import (
    TIER_ORDER,
    AwardStatus,
    HoldStatus,
    LoyaltyAccount,
    LoyaltyProgram,
    PointsAward,
    PointsHold,
    TransactionType,
)
from loyalty.services.ledger import (
    _allocate,
    _credit,
    _Ctx,
    _lock_account,
    _new_txn,
    _note_expiry,
    _save_account,
    _save_txn,
)
from loyalty.services.program import _program_current, program_ensure, program_snapshot_cached
from loyalty.services.tiers import _evaluate_tier, _refresh_qualifying


def _lock(
    customer: Customer,
    *,
    actor: str,
    source: str,
    operation: IdempotencyRecord | None = None,
    mature: bool = True,
) -> _Ctx:
    """Lock the customer's account (creating it the first time) and bring it up to date with the clock."""
    cached = program_snapshot_cached(customer.tenant_id)
    account, version = _lock_account(customer)
    if account is None:
        program = cached.program if cached is not None else program_ensure(customer.tenant_id)
        now = clock.now()
        LoyaltyAccount.objects.bulk_create(
            [
                LoyaltyAccount(
                    tenant_id=customer.tenant_id,
                    customer=customer,
                    allow_negative=program.allows_negative,
                    tier=TIER_ORDER[0],
                    earned_tier=TIER_ORDER[0],
                    # no rows yet: the count (zero) holds from the start (a longer window later counts again)
                    qualifying_as_of=now,
                    qualifying_counted_from=add_months(now, -program.qualifying_window_months),
                    qualifying_oldest_at=now,
                )
            ],
            ignore_conflicts=True,
        )
        account = LoyaltyAccount.objects.select_for_update().get(customer_id=customer.pk)
    if cached is not None and version == cached.version and _policy_agrees(cached.program, account):
        snapshot = cached  # the version came with the lock: no statement
    else:
        # Check the program in a statement of its own (a fresh snapshot): a change of its negative-balance
        # policy either committed before (and is seen now) or waits for this lock (and then syncs this
        # account); never a stale policy or stale tiers.
        snapshot = _program_current(customer.tenant_id, cached)
    ctx = _Ctx(
        customer=customer,
        program=snapshot.program,
        tiers=snapshot.tiers,
        account=account,
        now=clock.now(),
        actor=actor,
        source=source,
        operation=operation,
        starting_tier=account.tier,
    )
    if mature:
        _mature(ctx)
    return ctx


def _policy_agrees(program: LoyaltyProgram, account: LoyaltyAccount) -> bool:
    """Whether the account's negative-balance flag is what the program's policy leaves on an account whose
    balance is not negative (on when the program allows negative balances, off when not).

    The version read with the lock comes from the statement's snapshot; when the lock had to wait for a policy
    change (which rewrites every account's flag under its lock), the account row is the changed one but the
    version may be the one before. A change of the policy always disagrees with the flag it left, so the copy
    is used only when they agree, and a negative balance under a program that allows it (where the flag
    cannot tell) always reads the program again."""
    if program.allows_negative:
        return account.allow_negative and account.available >= 0
    return not account.allow_negative


# --- Maturing: release pending, expire ------------------------------------------------------------------------
def _mature(ctx: _Ctx) -> tuple[int, int]:
    """Bring the account up to the clock: release, expire, and apply the tier the released points reach (or the
    end of an override). Returns (points released, points expired); the caller's `_finish` records the events."""
    _expire_holds_due(ctx)
    released = _release_due(ctx)
    expired = _expire_due(ctx)
    account = ctx.account
    override_ended = (
        account.tier_override_expires_at is not None and account.tier_override_expires_at <= ctx.now
    )
    if released or override_ended:
        _refresh_qualifying(ctx)
        _evaluate_tier(ctx, review=False)
        _save_account(ctx)
    return released, expired


def _release_due(ctx: _Ctx) -> int:
    """Pending awards whose return window has passed become spendable (and start counting toward the tier)."""
    account = ctx.account
    if account.next_release_at is None or account.next_release_at > ctx.now:
        return 0  # the common case: no query
    due = list(
        PointsAward.objects.filter(
            account=ctx.account, status=AwardStatus.PENDING, release_at__lte=ctx.now
        ).order_by("release_at", "transaction__seq")
    )
    total = 0
    for award in due:
        points = award.remaining
        award.status = AwardStatus.AVAILABLE
        award.save(update_fields=["status"])
        _note_expiry(ctx, award)
        txn = _new_txn(
            ctx,
            TransactionType.RELEASE,
            points,
            pending_delta=-points,
            available_delta=points,
            qualifying_delta=award.qualifying_points,
            qualifying_points=award.qualifying_points,
            effective_at=award.created_at,
            reference=award.transaction.reference,
            expires_at=award.expires_at,
            reverses=None,
        )
        ctx.account.pending -= points
        repay = _credit(ctx, points)
        _save_txn(ctx, txn)
        if repay:
            _allocate(ctx, txn, award, repay)
        total += points
    found = PointsAward.objects.filter(account=account, status=AwardStatus.PENDING).aggregate(
        next=Min("release_at")
    )["next"]
    if due or found != account.next_release_at:
        account.next_release_at = found
        _save_account(ctx)
    return total


def _expire_due(ctx: _Ctx) -> int:
    """Awards past their date lose what is left of them, in one expire transaction."""
    account = ctx.account
    if account.next_expiry_at is None or account.next_expiry_at > ctx.now:
        return 0  # the common case: no query
    spendable = PointsAward.objects.filter(account=account, status=AwardStatus.AVAILABLE, remaining__gt=0)
    due = list(spendable.filter(expires_at__lte=ctx.now).order_by("expires_at", "transaction__seq"))
    if not due:
        found = spendable.aggregate(next=Min("expires_at"))["next"]
        if found != account.next_expiry_at:
            account.next_expiry_at = found
            _save_account(ctx)
        return 0
    total = sum(a.remaining for a in due)
    ctx.account.available -= total
    ctx.account.expired += total
    txn = _save_txn(ctx, _new_txn(ctx, TransactionType.EXPIRE, total, available_delta=-total))
    for award in due:
        _allocate(ctx, txn, award, award.remaining)
    account.next_expiry_at = spendable.aggregate(next=Min("expires_at"))["next"]
    _save_account(ctx)
    # In the transaction that expired them, whichever job or operation matured the account: at most one per
    # expire transaction, so the nightly job costs one more insert per account that had points to expire.
    outbox_record(
        tenant_id=account.tenant_id,
        event_type="loyalty.points.expired",
        data={
            "customer_id": str(account.customer_id),
            "transaction_id": str(txn.pk),
            "points": total,
            "points_balance": account.available,
            "pending_balance": account.pending,
            "awards_expired": len(due),
            "oldest_expires_at": due[0].expires_at,
            "newest_expires_at": due[-1].expires_at,
            "expired_at": ctx.now,
            "source": ctx.source,
        },
        aggregate_id=str(account.customer_id),
    )
    customer_cache_invalidate(tenant_id=ctx.account.tenant_id, customer_id=ctx.account.customer_id)
    return total


def _expire_holds_due(ctx: _Ctx) -> int:
    """Holds past their time give their points back (lazily, by whichever operation locks the account first, so
    availability never waits for the periodic job). Returns how many holds expired."""
    account = ctx.account
    if (
        not account.held_points
        or account.next_hold_expiry_at is None
        or account.next_hold_expiry_at > ctx.now
    ):
        return 0  # the common case: no query
    held = PointsHold.objects.filter(account=account, status=HoldStatus.HELD)
    expired = held.filter(expires_at__lte=ctx.now).update(status=HoldStatus.EXPIRED, ended_at=ctx.now)
    # summed again from the rows still held: the cached total heals instead of drifting
    left = held.aggregate(points=Sum("points"), next=Min("expires_at"))
    account.held_points = int(left["points"] or 0)
    account.next_hold_expiry_at = left["next"]
    account.save(update_fields=["held_points", "next_hold_expiry_at", "updated_at"])
    return expired
