"""The invariant every loyalty scenario must leave behind: cached balances equal the ledger's sums."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Min, Sum

from core.tenancy import all_tenants_context
from loyalty.calculations import add_months
from loyalty.models import (
    AwardAllocation,
    AwardStatus,
    HoldStatus,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTransaction,
    PointsAward,
    PointsHold,
    StampCard,
    StampEntry,
    StampEntryKind,
    StampReward,
    StampRewardStatus,
    TransactionType,
)


def _sum(qs: Any, field: str = "points") -> int:
    return int(qs.aggregate(s=Sum(field))["s"] or 0)


def ledger_problems(account: LoyaltyAccount) -> list[str]:
    """Every way the account's cached buckets or awards disagree with its ledger (empty when consistent)."""
    txns = LoyaltyTransaction.objects.filter(account=account)
    of = lambda t: txns.filter(type=t)  # noqa: E731
    expected = {
        "available": _sum(txns, "available_delta"),
        "pending": _sum(txns, "pending_delta"),
        "lifetime_earned": _sum(of(TransactionType.EARN)) - _sum(of(TransactionType.REVERSE_EARN)),
        "redeemed": _sum(of(TransactionType.REDEEM)) - _sum(of(TransactionType.REVERSE_REDEEM)),
        "expired": _sum(of(TransactionType.EXPIRE)),
        "adjusted": _sum(of(TransactionType.ADJUST), "available_delta"),
        "unrecovered": _sum(txns, "unrecovered_points"),
    }
    problems = [
        f"{name}: cached {getattr(account, name)} != ledger {value}"
        for name, value in expected.items()
        if getattr(account, name) != value
    ]
    # Each transaction's balance_after is the running sum of the ledger up to it.
    running = pending = 0
    for txn in txns.order_by("seq"):
        running += txn.available_delta
        pending += txn.pending_delta
        if (txn.balance_after, txn.pending_after) != (running, pending):
            problems.append(
                f"{txn.type} {txn.pk}: after ({txn.balance_after}, {txn.pending_after}) != running"
            )
            break

    awards = PointsAward.objects.filter(account=account)
    available_lots = _sum(awards.filter(status=AwardStatus.AVAILABLE), "remaining")
    pending_lots = _sum(awards.filter(status=AwardStatus.PENDING), "remaining")
    if available_lots != max(account.available, 0):
        problems.append(f"available awards hold {available_lots}, account has {account.available}")
    if pending_lots != account.pending:
        problems.append(f"pending awards hold {pending_lots}, account has {account.pending}")
    drawn: dict[Any, int] = defaultdict(int)
    for award_id, points in AwardAllocation.objects.filter(award__account=account).values_list(
        "award_id", "points"
    ):
        drawn[award_id] += points
    for award in awards:
        if award.remaining != award.points - drawn[award.pk]:
            problems.append(
                f"award {award.pk}: remaining {award.remaining} != {award.points} - {drawn[award.pk]}"
            )
    for txn in txns.filter(type__in=[TransactionType.REDEEM, TransactionType.EXPIRE]):
        allocated = _sum(txn.allocations.all())
        if allocated != txn.points:
            problems.append(f"{txn.type} {txn.pk}: {txn.points} points but allocations {allocated}")

    if account.qualifying_as_of is not None:
        program = LoyaltyProgram.objects.get(tenant_id=account.tenant_id)
        start = add_months(account.qualifying_as_of, -program.qualifying_window_months)
        window = _sum(
            txns.filter(effective_at__gt=start, effective_at__lte=account.qualifying_as_of),
            "qualifying_delta",
        )
        if window != account.qualifying_points:
            problems.append(f"qualifying cached {account.qualifying_points} != ledger window {window}")
    # The next-due dates are lower bounds of the real ones (the services skip the searches when they lie ahead).
    next_release = awards.filter(status=AwardStatus.PENDING).aggregate(m=Min("release_at"))["m"]
    if next_release is not None and (
        account.next_release_at is None or account.next_release_at > next_release
    ):
        problems.append(
            f"next_release_at {account.next_release_at} is after a pending award's {next_release}"
        )
    next_expiry = awards.filter(status=AwardStatus.AVAILABLE, remaining__gt=0).aggregate(m=Min("expires_at"))[
        "m"
    ]
    if next_expiry is not None and (account.next_expiry_at is None or account.next_expiry_at > next_expiry):
        problems.append(f"next_expiry_at {account.next_expiry_at} is after an award's expiry {next_expiry}")
    # The held total is the sum of the holds still held; its next expiry a lower bound of theirs.
    holds = PointsHold.objects.filter(account=account, status=HoldStatus.HELD)
    if account.held_points != _sum(holds):
        problems.append(f"held_points {account.held_points} != holds held {_sum(holds)}")
    next_hold = holds.aggregate(m=Min("expires_at"))["m"]
    if next_hold is not None and (
        account.next_hold_expiry_at is None or account.next_hold_expiry_at > next_hold
    ):
        problems.append(f"next_hold_expiry_at {account.next_hold_expiry_at} is after a hold's {next_hold}")
    committed = PointsHold.objects.filter(account=account, status=HoldStatus.COMMITTED)
    for hold in committed.select_related("redemption"):
        if hold.redemption is None or hold.redemption.points != hold.points:
            problems.append(f"hold {hold.pk}: committed without a redemption of its {hold.points} points")
    if account.tier != (account.tier_override or account.earned_tier):
        problems.append(f"tier {account.tier} is neither the override nor the earned tier")
    return problems


def stamp_problems(card: StampCard) -> list[str]:
    entries = StampEntry.objects.filter(card=card)
    problems = []
    if card.stamps != _sum(entries, "delta"):
        problems.append(f"card {card.pk}: {card.stamps} stamps != ledger {_sum(entries, 'delta')}")
    if not 0 <= card.stamps < card.rule.stamps_per_card:
        problems.append(f"card {card.pk}: {card.stamps} stamps is not on one card")
    live = StampReward.objects.filter(card=card).exclude(status=StampRewardStatus.REVOKED).count()
    if card.cards_completed != live:
        problems.append(f"card {card.pk}: {card.cards_completed} completed != {live} rewards not revoked")
    completed = entries.filter(kind=StampEntryKind.CARD_COMPLETED).count()
    revoked = entries.filter(kind=StampEntryKind.REWARD_REVOKED).count()
    if completed - revoked != live:
        problems.append(f"card {card.pk}: {completed} completions - {revoked} revocations != {live} rewards")
    return problems


def assert_all_ledgers_consistent() -> None:
    with all_tenants_context():
        problems = []
        for account in LoyaltyAccount.objects.all():
            problems += [f"{account.customer_id}: {p}" for p in ledger_problems(account)]
        for card in StampCard.objects.select_related("rule"):
            problems += stamp_problems(card)
    assert not problems, "\n".join(problems)
