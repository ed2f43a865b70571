"""Tiers: thresholds on qualifying points in a rolling window, downgrade policies at review, manual overrides.

Default tiers: bronze 0, silver 1,000, gold 5,000, platinum 20,000 qualifying points over 12 months; reviews
12 months after a tier is reached. Several tests name a known failure mode of loyalty systems."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import clock
from core.models import OutboxEvent
from loyalty.models import TierChange
from loyalty.services import points_adjust, points_expire, tier_override_clear, tier_override_set, tier_review

pytestmark = pytest.mark.django_db


def review(customer, in_tenant):
    with in_tenant(customer.tenant_id):
        return tier_review(customer=customer)


def tier_changes(customer, in_tenant):
    with in_tenant(customer.tenant_id):
        return list(TierChange.objects.filter(customer_id=customer.pk).order_by("id"))


def test_reaching_a_threshold_upgrades_at_once_and_records_why(customer_a, tenant_a, earn, in_tenant):
    assert earn(customer_a, "999.00").tier == "bronze"
    result = earn(customer_a, "1.00")
    assert (result.tier, result.previous_tier, result.tier_changed) == ("silver", "bronze", True)
    [change] = tier_changes(customer_a, in_tenant)
    assert (change.old_tier, change.new_tier, change.rule) == ("bronze", "silver", "threshold_reached")
    assert (change.qualifying_points, change.threshold) == (1000, 1000)
    assert change.window_end == clock.now()
    assert change.window_start == clock.now().replace(year=clock.now().year - 1)
    assert "1000 qualifying points" in change.reason
    with in_tenant(tenant_a):
        [event] = OutboxEvent.objects.filter(event_type="loyalty.tier.upgraded")
    assert event.payload["data"]["previous_tier"] == "bronze" and event.payload["data"]["tier"] == "silver"


def test_a_big_purchase_can_skip_tiers(customer_a, earn):
    assert earn(customer_a, "25000.00").tier == "platinum"


def test_points_to_next_tier_count_qualifying_points(customer_a, earn, summary):
    assert summary(customer_a).points_to_next_tier == 1000
    earn(customer_a, "300.00")
    assert (summary(customer_a).next_tier, summary(customer_a).points_to_next_tier) == ("silver", 700)
    earn(customer_a, "30000.00")
    assert (summary(customer_a).next_tier, summary(customer_a).points_to_next_tier) == ("", 0)


def test_redemptions_never_raise_the_tier(customer_a, earn, redeem, reverse, account_of):
    earn(customer_a, "900.00")
    redeem(customer_a, 800, reference="R1")
    reverse(customer_a, "R1")  # a refund gives the points back; it is not an earn
    account = account_of(customer_a)
    assert (account.available, account.qualifying_points, account.tier) == (900, 900, "bronze")


def test_the_tier_follows_qualifying_points_not_the_balance(
    customer_a, tenant_a, program_for, earn, redeem, in_tenant, account_of, frozen_clock
):
    from tests.factories import CustomerFactory

    program_for(tenant_a, review_period_months=1, downgrade_policy="recalculate")
    earn(customer_a, "5000.00")
    redeem(customer_a, 4900)  # a balance of 100 is not what the tier looks at
    rich = CustomerFactory(tenant=tenant_a)
    with in_tenant(tenant_a):
        points_adjust(customer=rich, idempotency_key="gift", points=50_000, reason="goodwill", actor="staff")
    frozen_clock(days=40)  # review due for both; the qualifying window still holds the purchase
    assert review(customer_a, in_tenant).tier == "gold"
    assert review(rich, in_tenant).tier == "bronze"
    assert account_of(customer_a).available == 100


def test_qualifying_points_leave_the_window_after_twelve_months(customer_a, earn, summary, frozen_clock):
    earn(customer_a, "800.00")
    frozen_clock(days=200)
    earn(customer_a, "300.00")
    assert summary(customer_a).qualifying_points == 1100
    frozen_clock(days=170)
    assert summary(customer_a).qualifying_points == 300


@pytest.mark.parametrize(
    ("policy", "after_first_review", "after_second_review"),
    [("never", "gold", "gold"), ("one_tier", "silver", "bronze"), ("recalculate", "bronze", "bronze")],
)
def test_downgrade_policies_at_review(
    customer_a,
    tenant_a,
    program_for,
    earn,
    in_tenant,
    frozen_clock,
    policy,
    after_first_review,
    after_second_review,
):
    program_for(tenant_a, downgrade_policy=policy)
    earn(customer_a, "5000.00")
    frozen_clock(days=300)
    assert review(customer_a, in_tenant).tier == "gold"  # not due yet: no downgrade before the review
    frozen_clock(days=70)  # 12 months after the upgrade: review due, the purchase left the window
    assert review(customer_a, in_tenant).tier == after_first_review
    frozen_clock(days=370)
    assert review(customer_a, in_tenant).tier == after_second_review


def test_a_downgrade_records_why_and_emits_an_event(customer_a, tenant_a, earn, in_tenant, frozen_clock):
    earn(customer_a, "5000.00")
    frozen_clock(days=370)
    review(customer_a, in_tenant)
    change = tier_changes(customer_a, in_tenant)[-1]
    assert (change.old_tier, change.new_tier, change.rule, change.qualifying_points) == (
        "gold",
        "silver",
        "review_one_tier_down",
        0,
    )
    assert "downgrade policy one_tier" in change.reason
    with in_tenant(tenant_a):
        [event] = OutboxEvent.objects.filter(event_type="loyalty.tier.downgraded")
    assert event.payload["data"]["rule"] == "review_one_tier_down"


def test_enough_new_qualifying_points_keep_the_tier_at_review(customer_a, earn, in_tenant, frozen_clock):
    earn(customer_a, "5000.00")
    frozen_clock(days=200)
    earn(customer_a, "5000.00")
    frozen_clock(days=170)
    assert review(customer_a, in_tenant).tier == "gold"


def test_expiry_does_not_drop_a_tier_the_policy_keeps(
    customer_a, tenant_a, program_for, earn, in_tenant, frozen_clock, account_of
):
    program_for(tenant_a, expiry_months=6, downgrade_policy="never")
    earn(customer_a, "5000.00")
    frozen_clock(days=200)
    with in_tenant(tenant_a):
        assert points_expire(customer=customer_a) == 5000
    assert review(customer_a, in_tenant).tier == "gold"
    frozen_clock(days=200)  # review due, nothing in the window: the policy says never
    assert review(customer_a, in_tenant).tier == "gold"
    account = account_of(customer_a)
    assert (account.available, account.expired, account.tier) == (0, 5000, "gold")


def test_expiry_alone_never_downgrades_before_a_review(
    customer_a, tenant_a, program_for, earn, in_tenant, frozen_clock
):
    program_for(tenant_a, expiry_months=3, downgrade_policy="recalculate")
    earn(customer_a, "5000.00")
    frozen_clock(days=100)
    with in_tenant(tenant_a):
        points_expire(customer=customer_a)
    assert review(customer_a, in_tenant).tier == "gold"


def test_returning_the_purchase_that_earned_the_tier_takes_the_tier_back(
    customer_a, earn, reverse, in_tenant
):
    earn(customer_a, "600.00", reference="P0")
    earn(customer_a, "500.00", reference="P1")
    assert reverse(customer_a, "P1").tier == "bronze"
    assert tier_changes(customer_a, in_tenant)[-1].rule == "purchase_returned"


def test_a_return_does_not_undo_a_tier_earned_before_the_purchase(customer_a, earn, reverse, frozen_clock):
    earn(customer_a, "1200.00", reference="P0")  # silver
    frozen_clock(days=1)
    earn(customer_a, "4000.00", reference="P1")  # gold (5,200)
    assert reverse(customer_a, "P1").tier == "silver"  # back to where it was, not below


def test_a_manual_override_with_an_expiry_is_not_a_permanent_floor(
    customer_a, tenant_a, earn, in_tenant, frozen_clock, account_of, summary
):
    earn(customer_a, "300.00")
    with in_tenant(tenant_a):
        tier_override_set(
            customer=customer_a,
            tier="platinum",
            expires_at=clock.now() + timedelta(days=30),
            reason="VIP launch week",
            actor="staff",
        )
    assert (summary(customer_a).tier, summary(customer_a).earned_tier) == ("platinum", "bronze")
    earn(customer_a, "800.00")  # the earned tier keeps moving underneath (with platinum's multiplier)
    assert account_of(customer_a).earned_tier == "silver"
    frozen_clock(days=31)
    assert review(customer_a, in_tenant).tier == "silver"
    changes = tier_changes(customer_a, in_tenant)
    assert [(c.rule, c.new_tier) for c in changes] == [
        ("override_set", "platinum"),
        ("threshold_reached", "platinum"),
        ("override_expired", "silver"),
    ]
    # The next downgrade starts from the earned tier, never from the override.
    frozen_clock(days=400)
    assert review(customer_a, in_tenant).tier == "bronze"
    with in_tenant(tenant_a):
        assert OutboxEvent.objects.filter(event_type="loyalty.tier.downgraded").count() == 2


def test_an_expired_override_ends_at_the_next_operation_even_before_the_job(
    customer_a, tenant_a, earn, in_tenant, frozen_clock
):
    with in_tenant(tenant_a):
        tier_override_set(
            customer=customer_a,
            tier="gold",
            expires_at=clock.now() + timedelta(days=7),
            reason="x",
            actor="s",
        )
    frozen_clock(days=8)
    result = earn(customer_a, "10.00")
    assert (result.tier, result.points) == ("bronze", 10)


def test_an_override_without_expiry_lasts_until_cleared(customer_a, tenant_a, earn, in_tenant, frozen_clock):
    earn(customer_a, "10.00")
    with in_tenant(tenant_a):
        tier_override_set(customer=customer_a, tier="gold", expires_at=None, reason="partner", actor="staff")
    frozen_clock(days=800)
    assert review(customer_a, in_tenant).tier == "gold"
    with in_tenant(tenant_a):
        assert (
            tier_override_clear(customer=customer_a, reason="partnership ended", actor="staff").tier
            == "bronze"
        )


def test_override_needs_a_known_tier_a_reason_and_a_future_expiry(customer_a, tenant_a, in_tenant):
    from core.errors import InvalidInput

    with in_tenant(tenant_a):
        for kwargs in (
            {"tier": "diamond", "reason": "x", "expires_at": None},
            {"tier": "gold", "reason": "", "expires_at": None},
            {"tier": "gold", "reason": "x", "expires_at": clock.now() - timedelta(days=1)},
        ):
            with pytest.raises(InvalidInput):
                tier_override_set(customer=customer_a, actor="s", **kwargs)


def test_tier_multipliers_come_from_the_program(customer_a, tenant_a, program_for, earn):
    program_for(tenant_a, tiers=[{"code": "silver", "threshold": 100, "earn_multiplier": Decimal("3")}])
    earn(customer_a, "100.00")
    assert earn(customer_a, "100.00").points == 300
