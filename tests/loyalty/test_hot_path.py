"""The hot path of earn and redeem: how many statements a plain call sends (so that a regression shows), and that
what makes it cheap (the process's copy of the program, the account's next-due dates) never serves stale data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import LoyaltyAccount, PointsAward, TransactionType

# Including the 6 statements of the caller's tenant_context (savepoint, tenant settings set and restored).
EARN_MAX_QUERIES = 20
REDEEM_MAX_QUERIES = 21

pytestmark = pytest.mark.django_db


def test_a_plain_earn_and_redeem_send_few_statements(customer_a, earn, redeem):
    earn(customer_a, "2000.00")  # the program, the account and the process's copy of the program exist now
    with CaptureQueriesContext(connection) as earned:
        result = earn(customer_a, "100.00")
    with CaptureQueriesContext(connection) as redeemed:
        redeem(customer_a, 100)
    assert result.points == 125  # silver since the first earn: 100 x 1.25
    sql = [q["sql"] for q in earned.captured_queries]
    assert len(sql) <= EARN_MAX_QUERIES, "\n".join(sql)
    assert not [s for s in sql if "loyalty_pointsaward" in s and s.startswith("SELECT")], "nothing was due"
    assert len(redeemed.captured_queries) <= REDEEM_MAX_QUERIES, "\n".join(
        q["sql"] for q in redeemed.captured_queries
    )


def test_a_program_change_is_seen_by_the_next_earn_in_the_same_process(
    tenant_a, customer_a, earn, program_for
):
    assert earn(customer_a, "100.00").points == 100
    program_for(tenant_a, earn_rate="2")
    assert earn(customer_a, "100.00").points == 200
    program_for(tenant_a, tiers=[{"code": "bronze", "earn_multiplier": "1.5"}])
    assert earn(customer_a, "100.00").points == 300


def test_a_pending_award_is_released_and_expires_when_due(
    tenant_a, customer_a, earn, program_for, frozen_clock, account_of
):
    program_for(tenant_a, pending_days=14, expiry_months=1)
    earn(customer_a, "100.00")
    account = account_of(customer_a)
    assert account.next_release_at == datetime(2025, 1, 29, 12, 0, tzinfo=UTC)
    assert account.next_expiry_at is None  # nothing spendable yet

    frozen_clock(days=15)  # January 30th
    released = earn(customer_a, "10.00")
    assert (released.points_balance, released.pending_balance) == (100, 10)
    account = account_of(customer_a)
    assert account.next_release_at == datetime(2025, 2, 13, 12, 0, tzinfo=UTC)  # the second earn's
    assert account.next_expiry_at == datetime(2025, 2, 15, 12, 0, tzinfo=UTC)  # the first award's

    frozen_clock(days=17)  # February 16th: the second award is released, the first expires
    after = earn(customer_a, points=1, qualifying=False)
    assert (after.points_balance, after.pending_balance) == (10, 1)
    account = account_of(customer_a)
    assert account.expired == 100
    assert account.next_expiry_at == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)  # the second award's
    assert account.next_release_at == datetime(2025, 3, 2, 12, 0, tzinfo=UTC)  # the third earn's


def test_an_account_from_before_the_next_due_dates_catches_up_on_its_first_operation(
    tenant_a, customer_a, earn, program_for, frozen_clock, in_tenant, account_of
):
    """Accounts that existed before the dates were kept start with dates in the past: the first operation searches
    and sets them; an account whose dates were wrongly empty would never release (the ledger check catches it)."""
    program_for(tenant_a, pending_days=3)
    earn(customer_a, "100.00")
    with in_tenant(tenant_a):
        LoyaltyAccount.objects.filter(customer_id=customer_a.pk).update(
            next_release_at=datetime(1970, 1, 1, tzinfo=UTC), next_expiry_at=datetime(1970, 1, 1, tzinfo=UTC)
        )
    earn(customer_a, points=5, qualifying=False)
    account = account_of(customer_a)
    assert account.next_release_at == datetime(2025, 1, 18, 12, 0, tzinfo=UTC)
    assert account.next_expiry_at is None
    frozen_clock(days=4)
    assert earn(customer_a, points=5, qualifying=False).points_balance == 105  # both released, 5 pending
    with in_tenant(tenant_a):
        assert not PointsAward.objects.filter(status="pending", release_at__lte=frozen_clock(days=0)).exists()
        assert account_of(customer_a).transactions.filter(type=TransactionType.RELEASE).count() == 2


def test_a_redeemed_refund_gives_points_back_to_an_expired_award_which_then_expires(
    customer_a, earn, redeem, reverse, frozen_clock, account_of
):
    earn(customer_a, "500.00")
    redeem(customer_a, 300, reference="R1")
    frozen_clock(days=400)  # the award expired; its 200 points left expire with the next operation
    earn(customer_a, points=1, qualifying=False)
    assert account_of(customer_a).expired == 200
    result = reverse(customer_a, "R1")  # the 300 come back to the expired award and expire at once
    assert result.points_balance == 1
    assert account_of(customer_a).expired == 500
    assert earn(customer_a, points=1, qualifying=False, key="later").points_balance == 2


def test_a_tenant_currency_change_is_seen_by_the_next_earn_in_the_same_process(tenant_a, customer_a, earn):
    """The earn reads the tenant's currency from the process's copy of the tenant row: saving the tenant drops it."""
    from core.errors import InvalidCurrency

    assert earn(customer_a, "100.00", currency="CLP").points == 100  # the process holds the tenant row now
    tenant_a.currency = "USD"
    tenant_a.save(update_fields=["currency"])
    with pytest.raises(InvalidCurrency):
        earn(customer_a, "100.00", currency="CLP")
    assert earn(customer_a, "100.00", currency="USD").points == 100


def _window_sum(customer: Any, *, start: datetime, end: datetime) -> int:
    from loyalty.models import LoyaltyTransaction

    rows = LoyaltyTransaction.objects.filter(
        customer_id=customer.pk, effective_at__gt=start, effective_at__lte=end
    ).values_list("qualifying_delta", flat=True)
    return max(sum(rows), 0)


def test_an_earn_adds_to_the_qualifying_count_without_summing_the_window(customer_a, earn, account_of):
    earn(customer_a, "100.00")  # the first earn sums the (empty) window and notes where it started
    with CaptureQueriesContext(connection) as earned:
        earn(customer_a, "300.00")
    assert not [q for q in earned.captured_queries if "sum(qualifying_delta)" in q["sql"]]
    assert account_of(customer_a).qualifying_points == 400


def test_the_qualifying_count_drops_what_left_the_window_and_the_card_agrees(
    tenant_a, customer_a, earn, frozen_clock, account_of, in_tenant, summary
):
    from customer360.selectors import customer_card
    from loyalty.calculations import add_months

    earn(customer_a, "800.00")  # January 15th 2025
    frozen_clock(days=200)
    earn(customer_a, "100.00")  # August: still counted with the first
    assert account_of(customer_a).qualifying_points == 900
    now = frozen_clock(days=200)  # February 2026: the first earn left the twelve-month window
    with in_tenant(tenant_a):
        card = customer_card(customer_a.pk)
        expected = _window_sum(customer_a, start=add_months(now, -12), end=now)
    assert expected == 100
    assert card.points_to_next_tier == summary(customer_a).points_to_next_tier == 1000 - 100
    with CaptureQueriesContext(connection) as earned:
        earn(customer_a, "50.00")
    assert [q for q in earned.captured_queries if "sum(qualifying_delta)" in q["sql"]], (
        "the count was out of date"
    )
    assert account_of(customer_a).qualifying_points == 150


def test_a_longer_window_in_a_changed_program_counts_again(
    tenant_a, customer_a, earn, frozen_clock, program_for, account_of
):
    earn(customer_a, "800.00")
    frozen_clock(days=400)  # the first earn left the twelve-month window
    earn(customer_a, "100.00")
    assert account_of(customer_a).qualifying_points == 100
    program_for(tenant_a, qualifying_window_months=24)  # now it is in the window again
    earn(customer_a, "10.00")
    assert account_of(customer_a).qualifying_points == 910


def test_the_card_shows_what_the_apps_selectors_show(
    tenant_a, customer_a, earn, redeem, in_tenant, summary, program_for
):
    from credit.selectors import credit_summary
    from customer360.selectors import customer_card
    from segmentation.selectors import segment_for_customer
    from tests.credit.factories import credit_line_approved
    from tests.factories import BusinessCustomerFactory

    with in_tenant(tenant_a):
        assert customer_card(customer_a.pk).points_to_next_tier == summary(customer_a).points_to_next_tier
    earn(customer_a, "1200.00")
    redeem(customer_a, 200)
    program_for(tenant_a, tiers=[{"code": "gold", "threshold": 2000}])
    business = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(business)
    for customer in (customer_a, business):
        with in_tenant(tenant_a):
            card = customer_card(customer.pk)
            loyalty = summary(customer)
            credit = credit_summary(customer)
            segment = segment_for_customer(customer)
        assert (card.points_balance, card.pending_points, card.tier, card.points_to_next_tier) == (
            loyalty.points_balance,
            loyalty.pending,
            loyalty.tier,
            loyalty.points_to_next_tier,
        )
        assert card.segment == segment.segment
        line = card.credit_line
        if credit is None:
            assert line is None
        else:
            assert line is not None
            assert (
                line.status,
                line.approved_limit,
                line.available,
                line.currency,
                line.payment_terms_days,
            ) == (
                credit.status,
                credit.credit_limit,
                credit.available,
                credit.currency,
                credit.payment_terms_days,
            )
    assert card.customer.pk == business.pk
