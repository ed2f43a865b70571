"""Every read of loyalty data the doors, the jobs and other apps need. Nothing here writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from core import clock
from core.tenancy import require_tenant_slug, tenant_cached
from customers.models import Customer
from loyalty.calculations import add_months, discount_for
from loyalty.errors import StampRuleNotFound
from loyalty.models import (
    DEFAULT_TIERS,
    AwardStatus,
    HoldStatus,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTransaction,
    PointsAward,
    PointsHold,
    StampCard,
    StampReward,
    StampRewardStatus,
    StampRule,
    TierChange,
    TransactionType,
    tier_rank,
)

EXPIRING_SOON_DAYS = 30


# --- Program --------------------------------------------------------------------------------------------------
def program_get(tenant_id: str) -> LoyaltyProgram:
    """The tenant's program; the default program (not saved) when the tenant never configured one."""
    program = LoyaltyProgram.objects.filter(tenant_id=tenant_id).first()
    return program if program is not None else LoyaltyProgram(tenant_id=tenant_id)


def default_tiers(program: LoyaltyProgram) -> list[LoyaltyTier]:
    """The contract's default tiers for `program`, lowest first, not saved."""
    return [
        LoyaltyTier(
            tenant_id=program.tenant_id,
            program=program,
            code=code,
            name=name,
            threshold=threshold,
            earn_multiplier=multiplier,
        )
        for code, name, threshold, multiplier in DEFAULT_TIERS
    ]


def program_tiers(program: LoyaltyProgram) -> list[LoyaltyTier]:
    """The program's tiers, lowest first (the defaults, not saved, for a program not saved yet)."""
    if program._state.adding:
        return default_tiers(program)
    return sorted(LoyaltyTier.objects.filter(program=program), key=lambda t: tier_rank(t.code))


# --- Accounts -------------------------------------------------------------------------------------------------
def qualifying_points_in_window(
    account: LoyaltyAccount, *, start: datetime, end: datetime
) -> tuple[int, datetime | None]:
    """Qualifying points dated in (start, end] (earns, releases and returns; never redemptions; negative when
    returns outweigh them) and the date of the oldest row counted (None: none).

    Plain SQL (the ORM would cost several times the statement), over the partial index
    `loyalty_txn_qualifying_idx`; row-level security keeps it to the current tenant."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(qualifying_delta), min(effective_at) FROM loyalty_loyaltytransaction WHERE account_id = %s "
            "AND effective_at > %s AND effective_at <= %s AND NOT (qualifying_delta = 0)",
            [account.pk, start, end],
        )
        row = cursor.fetchone()
    if not row:
        return 0, None
    return int(row[0] or 0), row[1]


def qualifying_counted(account: LoyaltyAccount, program: LoyaltyProgram, *, now: datetime) -> bool:
    """Whether the account's `qualifying_points` is still the window's sum at `now`, with no statement: the window
    starts no earlier than at the last sum (so every row in it since was added to the count: a longer window in
    a changed program, or a clock set back, fails this) and still before the oldest row counted (so none left)."""
    counted_from, oldest, as_of = (
        account.qualifying_counted_from,
        account.qualifying_oldest_at,
        account.qualifying_as_of,
    )
    if counted_from is None or oldest is None or as_of is None or as_of > now:
        return False
    start = add_months(now, -program.qualifying_window_months)
    return counted_from <= start < oldest


def spendable_points(account: LoyaltyAccount, *, now: datetime) -> int:
    """The available balance as a service would see it now: due pending points in, due expiry out."""
    awards = PointsAward.objects.filter(account=account, remaining__gt=0)
    releasing = expiring = 0
    # The account's next-due dates are lower bounds: when they lie ahead, nothing is due.
    if account.next_release_at is not None and account.next_release_at <= now:
        releasing = (
            awards.filter(status=AwardStatus.PENDING, release_at__lte=now).aggregate(s=Sum("remaining"))["s"]
            or 0
        )
    if account.next_expiry_at is not None and account.next_expiry_at <= now:
        expiring = (
            awards.filter(status=AwardStatus.AVAILABLE, expires_at__lte=now).aggregate(s=Sum("remaining"))[
                "s"
            ]
            or 0
        )
    return account.available + int(releasing) - int(expiring)


def held_points(account: LoyaltyAccount, *, now: datetime) -> int:
    """The points held for sales as a service would see them now (holds past their time no longer count); one
    row read unless a hold is due to expire."""
    if not account.held_points or account.next_hold_expiry_at is None or account.next_hold_expiry_at > now:
        return account.held_points
    live = PointsHold.objects.filter(account=account, status=HoldStatus.HELD, expires_at__gt=now)
    return int(live.aggregate(s=Sum("points"))["s"] or 0)


def hold_get(customer: Customer, hold_id: UUID) -> PointsHold | None:
    return PointsHold.objects.filter(pk=hold_id, customer_id=customer.pk).first()


def holds_for(customer: Customer, *, status: str | None = None) -> QuerySet[PointsHold]:
    holds = PointsHold.objects.filter(customer_id=customer.pk)
    return holds.filter(status=status) if status else holds


def customers_with_holds_expired(*, now: datetime) -> list[UUID]:
    return list(
        PointsHold.objects.filter(status=HoldStatus.HELD, expires_at__lte=now)
        .values_list("customer_id", flat=True)
        .order_by("customer_id")
        .distinct()
    )


@dataclass(frozen=True)
class LoyaltySummary:
    customer_id: UUID
    points_balance: int
    pending: int
    tier: str
    points_to_next_tier: int
    next_tier: str
    tier_name: str
    earned_tier: str
    tier_override: str
    tier_override_expires_at: datetime | None
    tier_review_at: datetime | None
    qualifying_points: int
    qualifying_window_months: int
    lifetime_earned: int
    redeemed: int
    expired: int
    adjusted: int
    unrecovered: int
    points_expiring_soon: int
    expiring_within_days: int
    next_expiry_at: datetime | None
    points_value: Decimal
    currency: str
    has_account: bool


def tier_standing(account: Any, program: Any, tiers: Sequence[Any], *, now: datetime) -> tuple[int, Any, Any]:
    """(qualifying points now, the account's tier, the next tier or None): the stored count while it holds
    (`qualifying_counted`), else the window summed again."""
    if qualifying_counted(account, program, now=now):
        qualifying = account.qualifying_points
    else:
        counted, _ = qualifying_points_in_window(
            account, start=add_months(now, -program.qualifying_window_months), end=now
        )
        qualifying = max(counted, 0)
    by_code = {t.code: t for t in tiers}
    current = by_code.get(account.tier, tiers[0])
    higher = [t for t in tiers if tier_rank(t.code) > tier_rank(current.code)]
    return qualifying, current, higher[0] if higher else None


def loyalty_summary(customer: Customer) -> LoyaltySummary:
    """Balances by bucket, tier and the way to the next one; zeros and the lowest tier for a new customer."""
    program = program_get(customer.tenant_id)
    tiers = program_tiers(program)
    tenant = tenant_cached(customer.tenant_id)
    account = LoyaltyAccount.objects.filter(customer_id=customer.pk).first()
    now = clock.now()
    if account is None:
        return LoyaltySummary(
            customer_id=customer.pk,
            points_balance=0,
            pending=0,
            tier=tiers[0].code,
            points_to_next_tier=tiers[1].threshold if len(tiers) > 1 else 0,
            next_tier=tiers[1].code if len(tiers) > 1 else "",
            tier_name=tiers[0].name,
            earned_tier=tiers[0].code,
            tier_override="",
            tier_override_expires_at=None,
            tier_review_at=None,
            qualifying_points=0,
            qualifying_window_months=program.qualifying_window_months,
            lifetime_earned=0,
            redeemed=0,
            expired=0,
            adjusted=0,
            unrecovered=0,
            points_expiring_soon=0,
            expiring_within_days=EXPIRING_SOON_DAYS,
            next_expiry_at=None,
            points_value=Decimal("0.00"),
            currency=tenant.currency,
            has_account=False,
        )
    qualifying, current, next_tier = tier_standing(account, program, tiers, now=now)
    expiring = PointsAward.objects.filter(
        account=account,
        status=AwardStatus.AVAILABLE,
        remaining__gt=0,
        expires_at__lte=now + timedelta(days=EXPIRING_SOON_DAYS),
    ).aggregate(points=Sum("remaining"))
    next_expiry = (
        PointsAward.objects.filter(account=account, status=AwardStatus.AVAILABLE, remaining__gt=0)
        .exclude(expires_at=None)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )
    return LoyaltySummary(
        customer_id=customer.pk,
        points_balance=account.available,
        pending=account.pending,
        tier=current.code,
        points_to_next_tier=max(next_tier.threshold - qualifying, 0) if next_tier else 0,
        next_tier=next_tier.code if next_tier else "",
        tier_name=current.name,
        earned_tier=account.earned_tier,
        tier_override=account.tier_override,
        tier_override_expires_at=account.tier_override_expires_at,
        tier_review_at=account.tier_review_at,
        qualifying_points=qualifying,
        qualifying_window_months=program.qualifying_window_months,
        lifetime_earned=account.lifetime_earned,
        redeemed=account.redeemed,
        expired=account.expired,
        adjusted=account.adjusted,
        unrecovered=account.unrecovered,
        points_expiring_soon=int(expiring["points"] or 0),
        expiring_within_days=EXPIRING_SOON_DAYS,
        next_expiry_at=next_expiry,
        points_value=discount_for(
            max(account.available, 0), points_per_unit=program.redemption_points_per_unit
        ),
        currency=tenant.currency,
        has_account=True,
    )


def transactions_for(customer: Customer) -> QuerySet[LoyaltyTransaction]:
    """The customer's ledger, newest first, with each earn's award (expiry and what is left of it)."""
    return (
        LoyaltyTransaction.objects.filter(customer_id=customer.pk)
        .select_related("award", "reverses")
        .order_by("-created_at", "-seq")
    )


def tier_history_for(customer: Customer) -> QuerySet[TierChange]:
    return TierChange.objects.filter(customer_id=customer.pk).order_by("-created_at", "-id")


# --- Stamp cards ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StampCardView:
    rule_id: UUID
    rule_name: str
    stamps: int
    stamps_per_card: int
    reward_description: str
    cards_completed: int
    rewards_available: list[StampReward]


def stamp_cards_for(customer: Customer) -> list[StampCardView]:
    """One card per active rule (empty when the customer has none yet), with the rewards still to use."""
    cards = {c.rule_id: c for c in StampCard.objects.filter(customer_id=customer.pk)}
    rewards: dict[Any, list[StampReward]] = {}
    for reward in StampReward.objects.filter(customer_id=customer.pk, status=StampRewardStatus.ISSUED):
        rewards.setdefault(reward.rule_id, []).append(reward)
    views = []
    for rule in StampRule.objects.filter(tenant_id=customer.tenant_id).order_by("name"):
        card = cards.get(rule.pk)
        if not rule.active and card is None:
            continue
        views.append(
            StampCardView(
                rule_id=rule.pk,
                rule_name=rule.name,
                stamps=card.stamps if card else 0,
                stamps_per_card=rule.stamps_per_card,
                reward_description=rule.reward_description,
                cards_completed=card.cards_completed if card else 0,
                rewards_available=rewards.get(rule.pk, []),
            )
        )
    return views


def stamp_rule_get(rule_id: Any) -> StampRule:
    """The current tenant's stamp rule; `stamp_rule_not_found` for an unknown or malformed id."""
    try:
        return StampRule.objects.get(pk=UUID(str(rule_id)))
    except (StampRule.DoesNotExist, ValueError, TypeError) as exc:
        raise StampRuleNotFound(rule_id=str(rule_id)) from exc


def stamp_rules() -> QuerySet[StampRule]:
    return StampRule.objects.filter(tenant_id=require_tenant_slug()).order_by("name")


# --- Jobs -----------------------------------------------------------------------------------------------------
def customers_with_pending_due(*, now: datetime) -> list[UUID]:
    return list(
        PointsAward.objects.filter(status=AwardStatus.PENDING, release_at__lte=now)
        .values_list("account__customer_id", flat=True)
        .distinct()
    )


def customers_with_expiry_due(*, now: datetime) -> list[UUID]:
    return list(
        PointsAward.objects.filter(status=AwardStatus.AVAILABLE, remaining__gt=0, expires_at__lte=now)
        .values_list("account__customer_id", flat=True)
        .distinct()
    )


def customers_due_for_review(*, now: datetime) -> list[UUID]:
    return list(
        LoyaltyAccount.objects.filter(Q(tier_review_at__lte=now) | Q(tier_override_expires_at__lte=now))
        .values_list("customer_id", flat=True)
        .order_by("pk")
    )


# --- KPIs (segmentation dashboard) -----------------------------------------------------------------------------
def points_kpis(*, start: datetime, end: datetime) -> dict[str, Any]:
    """Points issued, redeemed and expired in [start, end), and what is outstanding now (points and money)."""
    slug = require_tenant_slug()
    program = program_get(slug)
    sums = LoyaltyTransaction.objects.filter(
        tenant_id=slug, created_at__gte=start, created_at__lt=end
    ).aggregate(
        issued=Sum("points", filter=Q(type=TransactionType.EARN)),
        redeemed=Sum("points", filter=Q(type=TransactionType.REDEEM)),
        expired=Sum("points", filter=Q(type=TransactionType.EXPIRE)),
        reversed_earned=Sum("points", filter=Q(type=TransactionType.REVERSE_EARN)),
        reversed_redeemed=Sum("points", filter=Q(type=TransactionType.REVERSE_REDEEM)),
        adjusted=Sum("available_delta", filter=Q(type=TransactionType.ADJUST)),
    )
    balances = LoyaltyAccount.objects.filter(tenant_id=slug).aggregate(
        available=Sum("available"), pending=Sum("pending"), accounts=Count("pk")
    )
    outstanding = int(balances["available"] or 0) + int(balances["pending"] or 0)
    return {
        **{key: int(value or 0) for key, value in sums.items()},
        "outstanding_points": outstanding,
        "liability": discount_for(max(outstanding, 0), points_per_unit=program.redemption_points_per_unit),
        "currency": tenant_cached(slug).currency,
        "accounts": int(balances["accounts"] or 0),
    }


def points_by_month(*, months: int) -> list[dict[str, Any]]:
    """Points issued and redeemed per calendar month (the tenant's time zone), oldest first, zeros included."""
    slug = require_tenant_slug()
    tenant = tenant_cached(slug)
    try:
        tz = ZoneInfo(tenant.time_zone or "UTC")
    except Exception:
        tz = ZoneInfo("UTC")
    months = max(int(months), 1)
    local_now = clock.now().astimezone(tz)
    first = add_months(local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -(months - 1))
    rows = (
        LoyaltyTransaction.objects.filter(
            tenant_id=slug, created_at__gte=first, type__in=[TransactionType.EARN, TransactionType.REDEEM]
        )
        .annotate(month=TruncMonth("created_at", tzinfo=tz))
        .values("month")
        .annotate(
            issued=Sum("points", filter=Q(type=TransactionType.EARN)),
            redeemed=Sum("points", filter=Q(type=TransactionType.REDEEM)),
        )
    )
    found = {row["month"].astimezone(tz).strftime("%Y-%m"): row for row in rows}
    result = []
    for i in range(months):
        label = add_months(first, i).strftime("%Y-%m")
        row = found.get(label, {})
        result.append(
            {"month": label, "issued": int(row.get("issued") or 0), "redeemed": int(row.get("redeemed") or 0)}
        )
    return result


def tiers_by_customer(customer_ids: list[Any]) -> dict[Any, str]:
    """The tier code of each customer that has an account (the customers list shows it per row)."""
    return dict(
        LoyaltyAccount.objects.filter(customer_id__in=customer_ids).values_list("customer_id", "tier")
    )


def account_id_for(customer: Customer) -> Any:
    """The pk of the customer's loyalty account (its admin page), or None."""
    return LoyaltyAccount.objects.filter(customer_id=customer.pk).values_list("pk", flat=True).first()
