"""Stamp cards (cafés: buy 10 coffees, get 1 free): stamps from purchase items or explicit stamps, rewards
redeemable once, returns take stamps back."""

from __future__ import annotations

import pytest

from core.errors import IdempotencyKeyReused
from loyalty.errors import (
    InvalidStamps,
    RewardAlreadyRedeemed,
    RewardRevoked,
    StampRuleNotFound,
)
from loyalty.models import StampCard, StampReward
from loyalty.services import stamp_reward_redeem, stamp_rule_save, stamps_add

pytestmark = pytest.mark.django_db

COFFEE = {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price": "3.50"}
SANDWICH = {"sku": "HAM-SANDWICH", "category": "food", "quantity": 1, "unit_price": "5.00"}


@pytest.fixture
def coffee_rule(tenant_a, in_tenant):
    with in_tenant(tenant_a):
        return stamp_rule_save(
            tenant_id=tenant_a.slug,
            name="Coffee card",
            categories=["coffee"],
            skus=["ESPRESSO-BEANS"],
            stamps_per_card=10,
            reward_description="One free coffee",
        )


def coffees(n):
    return [{**COFFEE, "quantity": n}]


def card_of(customer, in_tenant):
    with in_tenant(customer.tenant_id):
        return StampCard.objects.get(customer_id=customer.pk)


def rewards_of(customer, in_tenant):
    with in_tenant(customer.tenant_id):
        return list(StampReward.objects.filter(customer_id=customer.pk).order_by("issued_at", "id"))


def test_qualifying_items_earn_stamps(customer_a, coffee_rule, earn, in_tenant):
    earn(customer_a, "12.00", items=[*coffees(3), SANDWICH, {"sku": "ESPRESSO-BEANS", "quantity": 1}])
    card = card_of(customer_a, in_tenant)
    assert (card.stamps, card.lifetime_stamps, card.cards_completed) == (4, 4, 0)


def test_a_full_card_issues_one_reward_and_starts_a_new_card(customer_a, coffee_rule, earn, in_tenant):
    result = earn(customer_a, "42.00", items=coffees(12))
    assert result.stamp_rewards_issued == 1
    card = card_of(customer_a, in_tenant)
    assert (card.stamps, card.cards_completed) == (2, 1)
    [reward] = rewards_of(customer_a, in_tenant)
    assert reward.status == "issued"


def test_a_reward_is_redeemable_once(customer_a, coffee_rule, earn, in_tenant):
    earn(customer_a, "35.00", items=coffees(10))
    [reward] = rewards_of(customer_a, in_tenant)
    with in_tenant(customer_a.tenant_id):
        used = stamp_reward_redeem(customer=customer_a, reward_id=reward.pk, reference="POS-7")
        assert (used.status, used.redeemed_reference) == ("redeemed", "POS-7")
        with pytest.raises(RewardAlreadyRedeemed):
            stamp_reward_redeem(customer=customer_a, reward_id=reward.pk)


def test_a_return_takes_its_stamps_back(customer_a, coffee_rule, earn, reverse, in_tenant):
    earn(customer_a, "14.00", items=coffees(4), reference="P1")
    result = reverse(customer_a, "P1")
    assert result.stamps_reversed == 4
    assert card_of(customer_a, in_tenant).stamps == 0


def test_a_return_revokes_the_reward_its_stamps_completed(customer_a, coffee_rule, earn, reverse, in_tenant):
    earn(customer_a, "28.00", items=coffees(8), reference="P0")
    earn(customer_a, "14.00", items=coffees(4), reference="P1")  # completes the card: 1 reward, 2 stamps
    reverse(customer_a, "P1")
    card = card_of(customer_a, in_tenant)
    assert (card.stamps, card.cards_completed) == (8, 0)
    [reward] = rewards_of(customer_a, in_tenant)
    assert reward.status == "revoked"
    with pytest.raises(RewardRevoked), in_tenant(customer_a.tenant_id):
        stamp_reward_redeem(customer=customer_a, reward_id=reward.pk)


def test_a_return_after_the_reward_was_used_takes_what_is_there(
    customer_a, coffee_rule, earn, reverse, in_tenant
):
    from loyalty.models import StampEntry

    earn(customer_a, "28.00", items=coffees(8), reference="P0")
    earn(customer_a, "14.00", items=coffees(4), reference="P1")
    [reward] = rewards_of(customer_a, in_tenant)
    with in_tenant(customer_a.tenant_id):
        stamp_reward_redeem(customer=customer_a, reward_id=reward.pk)
    reverse(customer_a, "P1")
    assert card_of(customer_a, in_tenant).stamps == 0
    with in_tenant(customer_a.tenant_id):
        entry = StampEntry.objects.get(kind="return")
    assert (entry.delta, entry.unrecovered) == (-2, 2)


def test_a_partial_return_takes_stamps_back_in_proportion(customer_a, coffee_rule, earn, reverse, in_tenant):
    earn(customer_a, "14.00", items=coffees(4), reference="P1")
    assert reverse(customer_a, "P1", "7.00").stamps_reversed == 2
    assert card_of(customer_a, in_tenant).stamps == 2


def test_explicit_stamps_are_idempotent(customer_a, coffee_rule, in_tenant):
    with in_tenant(customer_a.tenant_id):
        first = stamps_add(customer=customer_a, rule_id=coffee_rule.pk, stamps=11, idempotency_key="s-1")
        again = stamps_add(customer=customer_a, rule_id=coffee_rule.pk, stamps=11, idempotency_key="s-1")
        with pytest.raises(IdempotencyKeyReused):
            stamps_add(customer=customer_a, rule_id=coffee_rule.pk, stamps=2, idempotency_key="s-1")
        with pytest.raises(InvalidStamps):
            stamps_add(customer=customer_a, rule_id=coffee_rule.pk, stamps=0, idempotency_key="s-2")
    assert (first.stamps, len(first.rewards_issued)) == (1, 1)
    assert again.replayed and again.rewards_issued == first.rewards_issued
    assert card_of(customer_a, in_tenant).stamps == 1


def test_another_tenants_rule_is_not_found(customer_a, tenant_b, in_tenant):
    with in_tenant(tenant_b):
        rule = stamp_rule_save(
            tenant_id=tenant_b.slug, name="B card", skus=["X"], stamps_per_card=5, reward_description="free"
        )
    with pytest.raises(StampRuleNotFound), in_tenant(customer_a.tenant_id):
        stamps_add(customer=customer_a, rule_id=rule.pk, stamps=1, idempotency_key="s-x")
