"""Tier reviews and overrides by staff."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from core.errors import InvalidInput
from customers.models import Customer
from loyalty.errors import (
    InvalidTier,
    ReasonRequired,
)
from loyalty.models import (
    TIER_ORDER,
    LoyaltyAccount,
    TierRule,
)
from loyalty.services.ledger import _save_account
from loyalty.services.maturing import _lock
from loyalty.services.tiers import _evaluate_tier, _finish, _refresh_qualifying


@transaction.atomic
def tier_review(*, customer: Customer, actor: str = "system") -> LoyaltyAccount:
    """The periodic review: recount the window, apply the downgrade policy if due, end expired overrides."""
    ctx = _lock(customer, actor=actor, source="system")
    _refresh_qualifying(ctx)
    _evaluate_tier(ctx, review=True)
    _save_account(ctx)
    _finish(ctx)
    return ctx.account


@transaction.atomic
def tier_override_set(
    *, customer: Customer, tier: str, expires_at: datetime | None, reason: str, actor: str
) -> LoyaltyAccount:
    """Show `tier` regardless of the rules until `expires_at` (or until cleared); the earned tier keeps moving."""
    if tier not in TIER_ORDER:
        raise InvalidTier(f"tier must be one of {', '.join(TIER_ORDER)}", field="tier")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A tier override needs a reason.", field="reason")
    ctx = _lock(customer, actor=actor, source="admin")
    if expires_at is not None and expires_at <= ctx.now:
        raise InvalidInput("expires_at must be in the future.", code="invalid_expiry", field="expires_at")
    ctx.account.tier_override = tier
    ctx.account.tier_override_expires_at = expires_at
    _refresh_qualifying(ctx)
    _evaluate_tier(ctx, review=False, override_rule=TierRule.OVERRIDE_SET, reason=f"Override: {reason}")
    _save_account(ctx)
    _finish(ctx)
    return ctx.account


@transaction.atomic
def tier_override_clear(*, customer: Customer, reason: str, actor: str) -> LoyaltyAccount:
    """End an override now; the tier the rules give shows again."""
    ctx = _lock(customer, actor=actor, source="admin")
    if not ctx.account.tier_override:
        _finish(ctx)  # maturing may have changed the tier
        return ctx.account
    ctx.account.tier_override = ""
    ctx.account.tier_override_expires_at = None
    _refresh_qualifying(ctx)
    _evaluate_tier(
        ctx,
        review=False,
        override_rule=TierRule.OVERRIDE_CLEARED,
        reason=f"Override removed: {(reason or '').strip()}",
    )
    _save_account(ctx)
    _finish(ctx)
    return ctx.account
