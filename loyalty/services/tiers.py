"""Tiers: the qualifying window, the tier a customer has earned, and the result every change answers with."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from core.outbox import outbox_record
from core.tenancy import tenant_cached
from customers.cache import customer_cache_invalidate
from loyalty.calculations import (
    add_months,
    qualified_tier,
)
from loyalty.models import (
    DowngradePolicy,
    LoyaltyTier,
    LoyaltyTransaction,
    TierChange,
    TierRule,
    tier_rank,
)
from loyalty.selectors import (
    qualifying_counted,
    qualifying_points_in_window,
)
from loyalty.services.ledger import _Ctx
from loyalty.services.results import LoyaltyResult


# --- Tiers ----------------------------------------------------------------------------------------------------
def _window_start(ctx: _Ctx) -> datetime:
    return add_months(ctx.now, -ctx.program.qualifying_window_months)


def _refresh_qualifying(ctx: _Ctx, *, unsaved_delta: int = 0) -> None:
    """Bring the qualifying points in the rolling window up to now (plus a transaction dated now, not saved yet).

    An earn adds its points to the count while the count still holds (`qualifying_counted`): the window then
    still starts before every row counted, so nothing has left it. Otherwise (and for every other change, which
    may date its rows in the past) the window is summed again, and its oldest row noted."""
    account = ctx.account
    if unsaved_delta and qualifying_counted(account, ctx.program, now=ctx.now):
        account.qualifying_points += unsaved_delta
        account.qualifying_as_of = ctx.now
        return
    start = _window_start(ctx)
    counted, oldest = qualifying_points_in_window(account, start=start, end=ctx.now)
    account.qualifying_points = max(counted, 0) + unsaved_delta
    account.qualifying_as_of = ctx.now
    account.qualifying_counted_from = start
    if counted < 0:
        account.qualifying_oldest_at = None  # the count was clamped at zero: adding to it would be wrong
    else:
        # with nothing counted, nothing can leave the window before a row dated now (the unsaved one) would
        account.qualifying_oldest_at = oldest if oldest is not None else ctx.now


def _evaluate_tier(
    ctx: _Ctx,
    *,
    review: bool,
    returned_earn: LoyaltyTransaction | None = None,
    override_rule: str | None = None,
    reason: str = "",
) -> TierChange | None:
    """Apply the program's tier rules to the account (caller refreshed the qualifying points and saves).

    Upgrades happen as soon as qualifying points reach a threshold. Downgrades happen only at a review (per the
    downgrade policy) or when a return takes back the points that earned the tier. The earned tier is kept apart
    from a manual override, so an override never becomes a floor: when it ends, the earned tier shows again.
    """
    account = ctx.account
    tiers = ctx.tiers
    qualifying = account.qualifying_points
    qualified = qualified_tier(tiers, qualifying)
    earned = ctx.tier(account.earned_tier)
    new_earned = earned
    rule = override_rule or ""
    policy = ctx.program.downgrade_policy
    review_due = account.tier_review_at is not None and account.tier_review_at <= ctx.now
    next_review = add_months(ctx.now, ctx.program.review_period_months)

    if tier_rank(qualified.code) > tier_rank(earned.code):
        new_earned = qualified
        rule = rule or TierRule.THRESHOLD_REACHED
        account.tier_review_at = next_review
    elif returned_earn is not None and tier_rank(qualified.code) < tier_rank(earned.code):
        first_upgrade = (
            TierChange.objects.filter(
                account=account, rule=TierRule.THRESHOLD_REACHED, created_at__gte=returned_earn.created_at
            )
            .order_by("created_at", "id")
            .first()
        )
        if first_upgrade is not None:
            floor = first_upgrade.old_earned_tier
            new_earned = ctx.tier(floor if tier_rank(floor) > tier_rank(qualified.code) else qualified.code)
            rule = TierRule.PURCHASE_RETURNED
    elif review and review_due:
        if tier_rank(qualified.code) >= tier_rank(earned.code) or policy == DowngradePolicy.NEVER:
            account.tier_review_at = next_review
        elif policy == DowngradePolicy.ONE_TIER:
            new_earned = tiers[max(tier_rank(earned.code) - 1, tier_rank(qualified.code))]
            rule = TierRule.REVIEW_ONE_TIER_DOWN
            account.tier_review_at = next_review
        else:
            new_earned = qualified
            rule = TierRule.REVIEW_RECALCULATED
            account.tier_review_at = next_review
    if tier_rank(new_earned.code) == 0:
        account.tier_review_at = None

    if (
        not override_rule
        and account.tier_override
        and account.tier_override_expires_at is not None
        and account.tier_override_expires_at <= ctx.now
    ):
        account.tier_override = ""
        account.tier_override_expires_at = None
        if not rule or new_earned.code == earned.code:
            rule = TierRule.OVERRIDE_EXPIRED
    old_tier, old_earned = account.tier, account.earned_tier
    account.earned_tier = new_earned.code
    account.tier = account.tier_override or new_earned.code
    if account.tier == old_tier and account.earned_tier == old_earned and not override_rule:
        return None
    shown = ctx.tier(account.tier)
    window_start = _window_start(ctx)
    text = reason or (
        f"{qualifying} qualifying points from {window_start:%Y-%m-%d} to {ctx.now:%Y-%m-%d}; "
        f"{shown.name} needs {shown.threshold}; downgrade policy {policy}"
    )
    change = TierChange.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        customer_id=account.customer_id,
        old_tier=old_tier,
        new_tier=account.tier,
        old_earned_tier=old_earned,
        new_earned_tier=account.earned_tier,
        rule=rule or TierRule.THRESHOLD_REACHED,
        qualifying_points=qualifying,
        window_start=window_start,
        window_end=ctx.now,
        threshold=shown.threshold,
        reason=text[:500],
        actor=ctx.actor[:200],
        created_at=ctx.now,
    )
    if account.tier != old_tier:
        account.tier_changed_at = ctx.now
        ctx.tier_changes.append(change)
    return change


def tier_benefits(tier: LoyaltyTier) -> dict[str, Any]:
    """What a tier gives, as tier events carry it (the tier's earn multiplier and its benefits text)."""
    return {
        "tier": tier.code,
        "name": tier.name,
        "threshold": tier.threshold,
        "earn_multiplier": tier.earn_multiplier,
        "description": tier.benefits,
    }


def _finish(ctx: _Ctx) -> None:
    """Record the tier events and drop the customer cache once the operation's changes are made."""
    for change in ctx.tier_changes:
        upgraded = tier_rank(change.new_tier) > tier_rank(change.old_tier)
        data = {
            "customer_id": str(ctx.account.customer_id),
            "previous_tier": change.old_tier,
            "tier": change.new_tier,
            "rule": change.rule,
            "qualifying_points": change.qualifying_points,
            "window_start": change.window_start,
            "window_end": change.window_end,
            "reason": change.reason,
        }
        if not upgraded:
            # loyalty.tier.upgraded keeps the payload its consumers know; a downgrade says what was lost.
            data["benefits"] = tier_benefits(ctx.tier(change.new_tier))
            data["previous_benefits"] = tier_benefits(ctx.tier(change.old_tier))
        outbox_record(
            tenant_id=ctx.account.tenant_id,
            event_type="loyalty.tier.upgraded" if upgraded else "loyalty.tier.downgraded",
            data=data,
            aggregate_id=str(ctx.account.customer_id),
        )
    ctx.tier_changes.clear()
    customer_cache_invalidate(tenant_id=ctx.account.tenant_id, customer_id=ctx.account.customer_id)


def _result(
    ctx: _Ctx, txn: LoyaltyTransaction | None, *, points: int, discount: Decimal, **extra: Any
) -> dict:
    return LoyaltyResult(
        transaction_id=txn.pk if txn is not None else None,
        points=points,
        points_balance=ctx.account.available,
        discount_amount=discount,
        currency=ctx.currency or tenant_cached(ctx.customer.tenant_id).currency,
        tier=ctx.account.tier,
        previous_tier=ctx.starting_tier,
        tier_changed=ctx.account.tier != ctx.starting_tier,
        pending_balance=ctx.account.pending,
        **extra,
    ).as_json()
