"""Points services: earn, redeem (and its quote), reverse, adjust, expiry and pending release.

Every test here ends with the ledger-consistency check of conftest.py (cached buckets == ledger sums)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import IdempotencyKeyReused, InvalidAmount, InvalidCurrency
from core.models import IdempotencyRecord, OutboxEvent
from core.tenancy import tenant_context
from loyalty.errors import (
    BelowMinimumRedemption,
    InsufficientPoints,
    InvalidEarnRequest,
    InvalidPoints,
    NothingToReverse,
    PurchaseAmountUnknown,
    ReasonRequired,
    RedemptionExceedsPurchaseShare,
    ReversalExceedsPurchase,
)
from loyalty.models import (
    AwardAllocation,
    LoyaltyAccount,
    LoyaltyTransaction,
    PointsAward,
    TransactionType,
)
from loyalty.services import points_adjust, points_earn, points_expire, points_redeem, points_release_pending

pytestmark = pytest.mark.django_db


def txns(customer, type_=None):
    with tenant_context(customer.tenant_id):
        qs = LoyaltyTransaction.objects.filter(customer_id=customer.pk)
        if type_:
            qs = qs.filter(type=type_)
        return list(qs.order_by("created_at", "seq"))


def events(tenant, event_type):
    with tenant_context(tenant):
        return list(OutboxEvent.objects.filter(event_type=event_type).order_by("created_at"))


# --- Earn -----------------------------------------------------------------------------------------------------
def test_earn_from_a_purchase_rounds_down_to_whole_points(customer_a, earn, summary):
    result = earn(customer_a, "99.99", reference="POS-1")
    assert result.points == 99
    assert result.points_balance == 99
    assert result.tier == "bronze" and result.previous_tier == "bronze" and not result.tier_changed
    assert result.discount_amount == Decimal("0.00") and result.currency == "CLP"
    [txn] = txns(customer_a)
    assert (txn.type, txn.points, txn.purchase_amount, txn.reference) == (
        "earn",
        99,
        Decimal("99.99"),
        "POS-1",
    )
    assert summary(customer_a).points_balance == 99


def test_half_up_rounding_is_a_program_choice(customer_a, tenant_a, program_for, earn):
    program_for(tenant_a, earn_rounding="half_up")
    assert earn(customer_a, "99.50").points == 100
    assert earn(customer_a, "99.49").points == 99


def test_the_tier_multiplier_raises_points_but_qualifying_points_count_the_spend(
    customer_a, earn, account_of
):
    earn(customer_a, "1000.00")  # silver: multiplier 1.25
    result = earn(customer_a, "100.00")
    assert result.points == 125
    [_, second] = txns(customer_a)
    assert second.multiplier == Decimal("1.250")
    assert second.qualifying_points == 100
    assert account_of(customer_a).qualifying_points == 1100


def test_bonus_points_do_not_qualify_for_tiers_unless_asked(customer_a, earn, account_of):
    earn(customer_a, points=3000)
    assert account_of(customer_a).tier == "bronze"
    assert earn(customer_a, points=1000, qualifying=True).tier == "silver"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, InvalidEarnRequest),
        ({"purchase_amount": Decimal("10.00"), "points": 5}, InvalidEarnRequest),
        ({"purchase_amount": Decimal("-5")}, InvalidAmount),
        ({"purchase_amount": 12.5}, InvalidAmount),
        ({"purchase_amount": "1.001"}, InvalidAmount),
        ({"points": 0}, InvalidPoints),
        ({"points": -3}, InvalidPoints),
        ({"points": 2.0}, InvalidPoints),
        ({"purchase_amount": Decimal("10.00"), "currency": "USD"}, InvalidCurrency),
    ],
)
def test_earn_refuses_bad_input(customer_a, in_tenant, kwargs, error):
    with pytest.raises(error), in_tenant(customer_a.tenant_id):
        points_earn(customer=customer_a, idempotency_key="k", **kwargs)
    assert txns(customer_a) == []


def test_earn_records_the_event(customer_a, tenant_a, earn):
    result = earn(customer_a, "250.00", reference="ORD-9")
    [event] = events(tenant_a, "loyalty.points.earned")
    data = event.payload["data"]
    assert data["customer_id"] == str(customer_a.pk)
    assert data["transaction_id"] == str(result.transaction_id)
    assert (data["points"], data["points_balance"], data["reference"]) == (250, 250, "ORD-9")
    assert data["purchase_amount"] == "250.00"


def test_a_replayed_earn_returns_the_first_result_and_earns_once(customer_a, earn):
    first = earn(customer_a, "500.00", key="pos-77")
    again = earn(customer_a, "500.00", key="pos-77")
    assert again.transaction_id == first.transaction_id
    assert again.points_balance == first.points_balance == 500
    assert again.replayed and not first.replayed
    assert len(txns(customer_a)) == 1


@pytest.mark.parametrize(
    "other",
    [{"amount": "500.01"}, {"points": 500, "amount": None}],
)
def test_the_same_key_with_another_payload_is_refused(customer_a, earn, other):
    earn(customer_a, "500.00", key="pos-78")
    amount = other.pop("amount")
    with pytest.raises(IdempotencyKeyReused) as info:
        earn(customer_a, amount, key="pos-78", **other)
    assert info.value.code == "idempotency_key_reused"
    assert len(txns(customer_a)) == 1


def test_a_sale_reported_by_the_terminal_and_by_its_event_earns_once(customer_a, earn):
    """The POS call carries no items; the sale's event does. Both use `pos:<transaction id>` as the key."""
    first = earn(customer_a, "500.00", key="pos:T-1", reference="T-1")
    again = earn(
        customer_a,
        "500.00",
        key="pos:T-1",
        reference="pos T-1",
        items=[{"sku": "LATTE", "category": "coffee", "quantity": "1", "unit_price": "500.00"}],
    )
    assert again.replayed and again.transaction_id == first.transaction_id
    assert len(txns(customer_a)) == 1


def test_the_same_key_for_another_customer_or_operation_is_refused(customer_a, tenant_a, earn, redeem):
    from tests.factories import CustomerFactory

    other = CustomerFactory(tenant=tenant_a)
    earn(customer_a, "500.00", key="shared")
    with pytest.raises(IdempotencyKeyReused):
        earn(other, "500.00", key="shared")
    with pytest.raises(IdempotencyKeyReused):
        redeem(customer_a, 100, key="shared")


def test_keys_are_unique_per_tenant_not_globally(customer_a, customer_b, earn):
    earn(customer_a, "10.00", key="k-1")
    assert earn(customer_b, "10.00", key="k-1").points == 10


# --- Redeem and quote -----------------------------------------------------------------------------------------
def test_redeem_gives_a_discount_at_100_points_per_unit(customer_a, tenant_a, earn, redeem):
    earn(customer_a, "1000.00")
    result = redeem(customer_a, 150, reference="POS-2")
    assert (result.points, result.points_balance, result.discount_amount) == (150, 850, Decimal("1.50"))
    [event] = events(tenant_a, "loyalty.points.redeemed")
    assert event.payload["data"]["discount_amount"] == "1.50"
    assert event.payload["data"]["points"] == 150


def test_redeem_draws_from_the_soonest_expiring_awards_first(
    customer_a, earn, redeem, frozen_clock, in_tenant
):
    earn(customer_a, "300.00", reference="old")
    frozen_clock(days=40)
    earn(customer_a, "1000.00", reference="new")
    result = redeem(customer_a, 500)
    with in_tenant(customer_a.tenant_id):
        allocations = list(
            AwardAllocation.objects.filter(transaction_id=result.transaction_id).order_by("id")
        )
        assert [(a.award.transaction.reference, a.points) for a in allocations] == [
            ("old", 300),
            ("new", 200),
        ]
        remaining = dict(PointsAward.objects.values_list("transaction__reference", "remaining"))
    assert remaining == {"old": 0, "new": 800}


def test_insufficient_points_are_refused_and_the_key_stays_usable(customer_a, earn, redeem, account_of):
    earn(customer_a, "100.00")
    with pytest.raises(InsufficientPoints) as info:
        redeem(customer_a, 150, key="r-1")
    assert info.value.details == {"available": 100, "requested": 150}
    assert account_of(customer_a).available == 100
    assert txns(customer_a, "redeem") == []
    earn(customer_a, "100.00")
    assert redeem(customer_a, 150, key="r-1").points_balance == 50


def test_minimum_redemption_and_maximum_share_of_a_purchase(customer_a, tenant_a, program_for, earn, redeem):
    program_for(tenant_a, min_redemption_points=200, max_redemption_share="0.5")
    earn(customer_a, "5000.00")
    with pytest.raises(BelowMinimumRedemption):
        redeem(customer_a, 199)
    with pytest.raises(RedemptionExceedsPurchaseShare) as info:
        redeem(customer_a, 600, purchase_amount=Decimal("10.00"))
    assert info.value.details["maximum_points"] == 500
    assert redeem(customer_a, 500, purchase_amount=Decimal("10.00")).discount_amount == Decimal("5.00")


def test_a_quote_changes_nothing(customer_a, earn, redeem, account_of, in_tenant):
    earn(customer_a, "1000.00")
    before = txns(customer_a)
    quote = redeem(customer_a, 400, dry_run=True)
    assert quote.transaction_id is None
    assert (quote.points_balance, quote.discount_amount) == (600, Decimal("4.00"))
    assert txns(customer_a) == before
    assert account_of(customer_a).available == 1000
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 1001, dry_run=True)
    with in_tenant(customer_a.tenant_id):
        assert IdempotencyRecord.objects.filter(scope="loyalty", operation="redeem").count() == 0


def test_a_quote_for_a_customer_without_an_account_creates_none(customer_a, redeem, in_tenant):
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 100, dry_run=True)
    with in_tenant(customer_a.tenant_id):
        assert not LoyaltyAccount.objects.exists()


# --- Reverse: returns and refunds -----------------------------------------------------------------------------
def test_a_returned_purchase_does_not_keep_its_points(customer_a, earn, reverse, account_of):
    earn(customer_a, "1000.00", reference="P1")
    result = reverse(customer_a, "P1")
    assert (result.points_reversed, result.points_balance, result.points_unrecovered) == (1000, 0, 0)
    account = account_of(customer_a)
    assert (account.available, account.lifetime_earned, account.qualifying_points) == (0, 0, 0)


def test_partial_returns_take_points_back_in_proportion_and_add_up(customer_a, earn, reverse, account_of):
    earn(customer_a, "100.00", reference="P1")  # 100 points
    taken = [reverse(customer_a, "P1", amount).points_reversed for amount in ("33.33", "33.33", "33.34")]
    # The customer keeps floor(100 x what is left / 100.00): 66, then 33, then 0.
    assert taken == [34, 33, 33]
    assert sum(taken) == 100
    assert account_of(customer_a).available == 0
    with pytest.raises(NothingToReverse):
        reverse(customer_a, "P1", "0.01")


def test_returning_more_than_was_bought_is_refused(customer_a, earn, reverse):
    earn(customer_a, "100.00", reference="P1")
    reverse(customer_a, "P1", "60.00")
    with pytest.raises(ReversalExceedsPurchase):
        reverse(customer_a, "P1", "40.01")
    assert reverse(customer_a, "P1").points_reversed == 40  # the rest, in full


def test_a_full_reversal_is_done_once(customer_a, earn, reverse):
    earn(customer_a, "100.00", reference="P1")
    first = reverse(customer_a, "P1", key="ret-1")
    assert reverse(customer_a, "P1", key="ret-1").transaction_ids == first.transaction_ids
    with pytest.raises(NothingToReverse):
        reverse(customer_a, "P1", key="ret-2")


def test_a_reference_never_used_has_nothing_to_reverse(customer_a, earn, reverse):
    earn(customer_a, "100.00", reference="P1")
    with pytest.raises(NothingToReverse):
        reverse(customer_a, "nope")


def test_refunding_a_purchase_paid_with_points_gives_them_back_once(
    customer_a, earn, redeem, reverse, account_of
):
    earn(customer_a, "1000.00", reference="P0")
    redeem(customer_a, 500, reference="P2", purchase_amount=Decimal("5.00"))
    refund = reverse(customer_a, "P2", key="refund-1")
    assert (refund.points_returned, refund.points_balance) == (500, 1000)
    # A retry of the refund, or a second refund of the same purchase, gives nothing more.
    assert reverse(customer_a, "P2", key="refund-1").points_balance == 1000
    with pytest.raises(NothingToReverse):
        reverse(customer_a, "P2", key="refund-2")
    account = account_of(customer_a)
    assert (account.available, account.redeemed) == (1000, 0)
    assert len(txns(customer_a, "reverse_redeem")) == 1


def test_a_refund_gives_points_back_to_exactly_the_awards_they_came_from(
    customer_a, earn, redeem, reverse, frozen_clock, in_tenant
):
    earn(customer_a, "300.00", reference="A")
    frozen_clock(days=30)
    earn(customer_a, "1000.00", reference="B")
    redeem(customer_a, 500, reference="R", purchase_amount=Decimal("10.00"))
    reverse(customer_a, "R", "5.00")  # half: 250 back, to the latest-expiring award first (200 came from B)
    with in_tenant(customer_a.tenant_id):
        assert dict(PointsAward.objects.values_list("transaction__reference", "remaining")) == {
            "A": 50,
            "B": 1000,
        }
    reverse(customer_a, "R")
    with in_tenant(customer_a.tenant_id):
        assert dict(PointsAward.objects.values_list("transaction__reference", "remaining")) == {
            "A": 300,
            "B": 1000,
        }


def test_a_purchase_partly_paid_with_points_reverses_both_sides(
    customer_a, earn, redeem, reverse, account_of
):
    earn(customer_a, points=2000, reference="P0")  # bonus points: the customer stays bronze (multiplier 1)
    redeem(customer_a, 1000, reference="P3", purchase_amount=Decimal("30.00"))
    earn(customer_a, "20.00", reference="P3")  # the part paid in cash earns
    result = reverse(customer_a, "P3", "10.00", purchase_amount=Decimal("30.00"))
    assert (result.points_reversed, result.points_returned) == (7, 334)
    result = reverse(customer_a, "P3")
    assert (result.points_reversed, result.points_returned) == (13, 666)
    assert account_of(customer_a).available == 2000


def test_a_partial_return_needs_a_known_purchase_amount(customer_a, earn, reverse):
    earn(customer_a, points=100, reference="BONUS")
    with pytest.raises(PurchaseAmountUnknown):
        reverse(customer_a, "BONUS", "5.00")
    assert reverse(customer_a, "BONUS").points_reversed == 100


def test_clamp_policy_takes_what_is_there_and_records_the_rest(customer_a, earn, redeem, reverse, account_of):
    earn(customer_a, "1000.00", reference="P1")
    redeem(customer_a, 800, reference="X")
    result = reverse(customer_a, "P1")
    assert (result.points_reversed, result.points_unrecovered, result.points_balance) == (1000, 800, 0)
    account = account_of(customer_a)
    assert (account.available, account.unrecovered, account.allow_negative) == (0, 800, False)
    [txn] = txns(customer_a, "reverse_earn")
    assert (txn.available_delta, txn.unrecovered_points) == (-200, 800)


def test_allow_policy_goes_negative_and_later_points_pay_it_back(
    customer_a, tenant_a, program_for, earn, redeem, reverse, account_of, in_tenant
):
    program_for(tenant_a, negative_balance_policy="allow")
    earn(customer_a, "1000.00", reference="P1")
    redeem(customer_a, 1000, reference="X")
    assert reverse(customer_a, "P1").points_balance == -1000
    assert earn(customer_a, "300.00").points_balance == -700
    assert earn(customer_a, "1000.00").points_balance == 300
    with in_tenant(customer_a.tenant_id):
        assert sorted(PointsAward.objects.values_list("remaining", flat=True)) == [0, 0, 300]
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 301)


def test_switching_back_to_clamp_keeps_old_negative_accounts_valid(
    customer_a, tenant_a, program_for, earn, redeem, reverse, account_of
):
    program_for(tenant_a, negative_balance_policy="allow")
    earn(customer_a, "1000.00", reference="P1")
    redeem(customer_a, 1000)
    reverse(customer_a, "P1")
    program_for(tenant_a, negative_balance_policy="clamp")
    assert account_of(customer_a).allow_negative is True  # still -1000
    earn(customer_a, "2000.00")
    account = account_of(customer_a)
    assert (account.available, account.allow_negative) == (1000, False)


# --- Adjust ---------------------------------------------------------------------------------------------------
def test_adjustments_need_a_reason_and_cannot_overdraw(customer_a, earn, in_tenant, account_of):
    earn(customer_a, "100.00")
    with in_tenant(customer_a.tenant_id):
        with pytest.raises(ReasonRequired):
            points_adjust(customer=customer_a, idempotency_key="a1", points=50, reason=" ", actor="staff")
        with pytest.raises(InsufficientPoints):
            points_adjust(
                customer=customer_a, idempotency_key="a2", points=-101, reason="typo", actor="staff"
            )
        up = points_adjust(
            customer=customer_a, idempotency_key="a3", points=400, reason="apology", actor="staff"
        )
        down = points_adjust(
            customer=customer_a, idempotency_key="a4", points=-250, reason="typo", actor="staff"
        )
    assert (up.points_balance, down.points_balance) == (500, 250)
    account = account_of(customer_a)
    assert (account.adjusted, account.tier, account.qualifying_points) == (150, "bronze", 100)
    [first, second] = txns(customer_a, "adjust")
    assert (first.reason, first.actor, second.available_delta) == ("apology", "staff", -250)


# --- Expiry and pending release (clock-driven) ----------------------------------------------------------------
def test_points_expire_twelve_months_after_their_award(customer_a, earn, frozen_clock, in_tenant, account_of):
    earn(customer_a, "1000.00")
    frozen_clock(days=364)
    with in_tenant(customer_a.tenant_id):
        assert points_expire(customer=customer_a) == 0
    frozen_clock(days=2)
    with in_tenant(customer_a.tenant_id):
        assert points_expire(customer=customer_a) == 1000
        assert points_expire(customer=customer_a) == 0  # once
    account = account_of(customer_a)
    assert (account.available, account.expired) == (0, 1000)


def test_only_what_is_left_of_an_award_expires(customer_a, earn, redeem, frozen_clock, in_tenant, account_of):
    earn(customer_a, "900.00", reference="old")
    frozen_clock(days=200)
    earn(customer_a, "500.00", reference="new")
    redeem(customer_a, 300)  # from the old award, which expires first
    frozen_clock(days=170)  # the old award is past its date, the new one is not
    with in_tenant(customer_a.tenant_id):
        assert points_expire(customer=customer_a) == 600
    assert account_of(customer_a).available == 500


def test_a_redemption_cannot_spend_points_past_their_date_even_before_the_job_runs(
    customer_a, earn, redeem, frozen_clock
):
    earn(customer_a, "1000.00")
    frozen_clock(days=400)
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 100, dry_run=True)
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 100)


def test_points_never_expire_when_the_program_says_so(
    customer_a, tenant_a, program_for, earn, frozen_clock, in_tenant
):
    program_for(tenant_a, expiry_months=None)
    earn(customer_a, "1000.00")
    frozen_clock(days=3650)
    with in_tenant(customer_a.tenant_id):
        assert points_expire(customer=customer_a) == 0


def test_the_summary_shows_points_expiring_in_the_next_30_days(customer_a, earn, frozen_clock, summary):
    earn(customer_a, "1000.00")
    frozen_clock(days=200)
    earn(customer_a, "400.00")
    assert summary(customer_a).points_expiring_soon == 0
    frozen_clock(days=140)  # the first award expires within 30 days
    assert summary(customer_a).points_expiring_soon == 1000


def test_pending_points_are_not_spendable_until_the_return_window_passes(
    customer_a, tenant_a, program_for, earn, redeem, frozen_clock, in_tenant, account_of
):
    program_for(tenant_a, pending_days=14)
    result = earn(customer_a, "1000.00")
    assert (result.points_balance, result.pending_balance, result.tier) == (0, 1000, "bronze")
    with pytest.raises(InsufficientPoints):
        redeem(customer_a, 100)
    frozen_clock(days=13)
    with in_tenant(customer_a.tenant_id):
        assert points_release_pending(customer=customer_a) == 0
    frozen_clock(days=1)
    with in_tenant(customer_a.tenant_id):
        assert points_release_pending(customer=customer_a) == 1000
    account = account_of(customer_a)
    assert (account.available, account.pending, account.tier) == (1000, 0, "silver")
    [release] = txns(customer_a, "release")
    assert release.qualifying_delta == 1000


def test_a_purchase_returned_within_the_window_never_counts(
    customer_a, tenant_a, program_for, earn, reverse, frozen_clock, in_tenant, account_of
):
    program_for(tenant_a, pending_days=14)
    earn(customer_a, "1000.00", reference="P1")
    reverse(customer_a, "P1", "400.00")
    frozen_clock(days=15)
    with in_tenant(customer_a.tenant_id):
        assert points_release_pending(customer=customer_a) == 600
    account = account_of(customer_a)
    assert (account.available, account.qualifying_points, account.tier, account.unrecovered) == (
        600,
        600,
        "bronze",
        0,
    )


def test_redeem_releases_due_pending_points_first(
    customer_a, tenant_a, program_for, earn, redeem, frozen_clock
):
    program_for(tenant_a, pending_days=7)
    earn(customer_a, "1000.00")
    frozen_clock(days=8)
    assert redeem(customer_a, 500).points_balance == 500
    assert len(txns(customer_a, TransactionType.RELEASE)) == 1


# --- Cache ----------------------------------------------------------------------------------------------------
def test_changes_drop_the_customer_cache_after_commit(customer_a, earn, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from customers.cache import customer_cache_key

    key = customer_cache_key(customer_a.tenant_id, customer_a.pk)
    cache.set(key, {"stale": True})
    with django_capture_on_commit_callbacks(execute=True):
        earn(customer_a, "10.00")
    assert cache.get(key) is None


def test_services_cannot_write_another_tenants_rows(customer_a, tenant_b, in_tenant):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="row-level security"), in_tenant(tenant_b):
        points_redeem(customer=customer_a, idempotency_key="x", points=100)


# --- Jobs and maturing ----------------------------------------------------------------------------------------
def test_the_expiry_job_that_releases_due_pending_points_also_applies_the_tier(
    customer_a, tenant_a, program_for, earn, frozen_clock, in_tenant, account_of
):
    # The nightly expiry runs before the hourly release picks the award up: the tier must not be skipped.
    program_for(tenant_a, pending_days=14)
    earn(customer_a, "1000.00")
    frozen_clock(days=15)
    with in_tenant(tenant_a):
        assert points_expire(customer=customer_a) == 0
    account = account_of(customer_a)
    assert (account.available, account.qualifying_points, account.tier) == (1000, 1000, "silver")
    assert len(events(tenant_a, "loyalty.tier.upgraded")) == 1


def test_clearing_no_override_still_records_what_maturing_changed(
    customer_a, tenant_a, program_for, earn, frozen_clock, in_tenant, account_of
):
    from loyalty.services import tier_override_clear

    program_for(tenant_a, pending_days=7)
    earn(customer_a, "1000.00")
    frozen_clock(days=8)
    with in_tenant(tenant_a):
        tier_override_clear(customer=customer_a, reason="none set", actor="staff")
    assert account_of(customer_a).tier == "silver"
    assert len(events(tenant_a, "loyalty.tier.upgraded")) == 1


@pytest.mark.parametrize("policy", ["clamp", "allow"])
def test_a_return_never_takes_back_points_that_already_expired(
    customer_a, tenant_a, program_for, earn, reverse, frozen_clock, in_tenant, account_of, policy
):
    program_for(tenant_a, expiry_months=1, negative_balance_policy=policy)
    earn(customer_a, "800.00", reference="P1")
    frozen_clock(days=40)
    with in_tenant(tenant_a):
        assert points_expire(customer=customer_a) == 800
    earn(customer_a, "300.00", reference="P2")
    result = reverse(customer_a, "P1")
    # The customer lost P1's points to expiry once; the return must not take P2's points (or a debt) for them.
    assert (result.points_reversed, result.points_balance) == (800, 300)
    account = account_of(customer_a)
    assert (account.available, account.expired, account.lifetime_earned) == (300, 800, 300)


def test_a_return_of_a_partly_expired_and_partly_spent_purchase_charges_only_what_was_spent(
    customer_a, tenant_a, program_for, earn, redeem, reverse, frozen_clock, in_tenant, account_of
):
    program_for(tenant_a, expiry_months=1, negative_balance_policy="allow")
    earn(customer_a, "900.00", reference="P1")
    redeem(customer_a, 400, reference="R")
    frozen_clock(days=40)  # the 500 left of P1 expire
    earn(customer_a, "100.00", reference="P2")
    assert reverse(customer_a, "P1").points_balance == 100 - 400


def test_a_purchase_cannot_earn_more_points_than_one_operation_may_add(
    customer_a, tenant_a, program_for, in_tenant
):
    program_for(tenant_a, earn_rate="999999.9999")
    with pytest.raises(InvalidAmount), in_tenant(tenant_a):
        points_earn(customer=customer_a, idempotency_key="big", purchase_amount=Decimal("999999999999.99"))
    assert txns(customer_a) == []


def test_a_discount_larger_than_any_amount_is_refused(customer_a, tenant_a, program_for, in_tenant):
    program_for(tenant_a, redemption_points_per_unit=1)
    with in_tenant(tenant_a):
        points_adjust(customer=customer_a, idempotency_key="a", points=10**12, reason="test", actor="s")
        with pytest.raises(InvalidPoints):
            points_redeem(customer=customer_a, idempotency_key="r", points=10**12)
