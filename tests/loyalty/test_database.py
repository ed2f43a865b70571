"""What the database refuses by itself, whatever code runs: a negative available balance (where the program does
not allow one), buckets that do not add up, an award spent below zero, an edited or deleted ledger row."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from loyalty.models import LoyaltyAccount

pytestmark = pytest.mark.django_db


def run_refused(tenant, in_tenant, raw_sql, sql, params, error=IntegrityError, match=None):
    with in_tenant(tenant), pytest.raises(error, match=match), transaction.atomic():
        raw_sql(sql, params)


def test_the_database_refuses_a_negative_available_balance(customer_a, tenant_a, earn, in_tenant, raw_sql):
    earn(customer_a, "100.00")
    run_refused(
        tenant_a,
        in_tenant,
        raw_sql,
        "UPDATE loyalty_loyaltyaccount SET available = available - 101, redeemed = redeemed + 101"
        " WHERE customer_id = %s",
        [customer_a.pk],
        match="loyalty_account_available_non_negative",
    )


def test_with_the_allow_policy_a_negative_balance_is_accepted(
    customer_a, tenant_a, program_for, earn, in_tenant, raw_sql
):
    program_for(tenant_a, negative_balance_policy="allow")
    earn(customer_a, "100.00")
    with in_tenant(tenant_a):
        raw_sql(
            "UPDATE loyalty_loyaltyaccount SET available = -1, redeemed = redeemed + 101"
            " WHERE customer_id = %s RETURNING id",
            [customer_a.pk],
        )
        assert LoyaltyAccount.objects.get(customer_id=customer_a.pk).available == -1
        # Put it back so that the ledger check after the test still holds.
        raw_sql(
            "UPDATE loyalty_loyaltyaccount SET available = 100, redeemed = 0 WHERE customer_id = %s",
            [customer_a.pk],
        )


def test_buckets_that_do_not_add_up_are_refused(customer_a, tenant_a, earn, in_tenant, raw_sql):
    earn(customer_a, "100.00")
    run_refused(
        tenant_a,
        in_tenant,
        raw_sql,
        "UPDATE loyalty_loyaltyaccount SET available = available + 50 WHERE customer_id = %s",
        [customer_a.pk],
        match="loyalty_account_buckets_add_up",
    )


def test_an_award_cannot_be_spent_below_zero_or_above_its_points(
    customer_a, tenant_a, earn, in_tenant, raw_sql
):
    earn(customer_a, "100.00")
    for value in (-1, 101):
        run_refused(
            tenant_a,
            in_tenant,
            raw_sql,
            "UPDATE loyalty_pointsaward SET remaining = %s",
            [value],
            match="loyalty_award_remaining_in_range",
        )


@pytest.mark.parametrize(
    "statement",
    ["UPDATE loyalty_loyaltytransaction SET points = 1", "DELETE FROM loyalty_loyaltytransaction"],
)
def test_the_ledger_is_append_only(customer_a, tenant_a, earn, in_tenant, raw_sql, statement):
    earn(customer_a, "100.00")
    run_refused(tenant_a, in_tenant, raw_sql, statement, [], error=DatabaseError, match="append-only")


def test_an_idempotency_key_is_unique_per_tenant_in_the_database(
    customer_a, tenant_a, earn, in_tenant, raw_sql
):
    earn(customer_a, "100.00", key="dup")
    run_refused(
        tenant_a,
        in_tenant,
        raw_sql,
        "INSERT INTO core_idempotencyrecord (id, tenant_id, scope, operation, key, fingerprint,"
        " result, created_at) VALUES (gen_random_uuid(), %s, 'loyalty', 'earn', 'dup', 'x', '{}', now())",
        [tenant_a.slug],
        match="idempotency_key_unique",
    )


def test_loyalty_rows_are_invisible_to_another_tenant(customer_a, tenant_b, earn, in_tenant, raw_sql):
    earn(customer_a, "100.00")
    with in_tenant(tenant_b):
        for table in ("loyalty_loyaltyaccount", "loyalty_loyaltytransaction", "loyalty_pointsaward"):
            assert raw_sql(f"SELECT count(*) FROM {table}") == [(0,)]
