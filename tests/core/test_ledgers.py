"""Every ledger of every app is append-only in the database: a trigger refuses UPDATE and DELETE of its rows,
whoever runs them. The ledgers are found, not listed: every model marked `AppendOnlyLedger`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from core.ledgers import AppendOnlyLedger, append_only_trigger
from core.tenancy import tenant_context
from tests.credit.factories import credit_line_approved
from tests.factories import BusinessCustomerFactory, CustomerFactory

pytestmark = pytest.mark.django_db

LEDGERS = sorted(
    (m for m in apps.get_models() if issubclass(m, AppendOnlyLedger)), key=lambda m: m._meta.label
)


def test_the_ledgers_of_both_apps_are_found():
    labels = {m._meta.label for m in LEDGERS}
    assert {"loyalty.LoyaltyTransaction", "credit.CreditLedgerEntry"} <= labels
    assert {m._meta.app_label for m in LEDGERS} == {"loyalty", "credit"}


def test_every_append_only_trigger_belongs_to_a_marked_ledger_and_every_ledger_has_one(raw_sql):
    triggers = {
        name
        for (name,) in raw_sql(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE %s", ["%\\_append\\_only"]
        )
    }
    assert triggers == {append_only_trigger(m._meta.db_table) for m in LEDGERS}


@pytest.fixture
def every_ledger_has_rows(tenant_a):
    """Real rows in every ledger, written by the services: earn, redeem, a return, stamps; a credit line approved,
    used and paid."""
    from credit.services import credit_use, payment_record
    from loyalty.services import points_earn, points_redeem, points_reverse, stamp_rule_save, stamps_add

    customer = CustomerFactory(tenant=tenant_a)
    business = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(business)
    with tenant_context(tenant_a):
        points_earn(
            customer=customer, idempotency_key="e-1", purchase_amount=Decimal("20000"), reference="P1"
        )
        points_redeem(customer=customer, idempotency_key="r-1", points=100)
        points_reverse(customer=customer, idempotency_key="v-1", reference="P1")
        rule = stamp_rule_save(
            tenant_id=tenant_a.slug, name="Card", skus=["X"], stamps_per_card=5, reward_description="free"
        )
        stamps_add(customer=customer, rule_id=rule.pk, stamps=1, idempotency_key="s-1")
        credit_use(customer=business, amount=Decimal("100"), order_id="O-1")
        payment_record(customer=business, payment_id="PAY-1", amount=Decimal("40"))


@pytest.mark.parametrize("model", LEDGERS, ids=lambda m: m._meta.label)
def test_update_and_delete_of_a_ledger_row_are_refused(model, tenant_a, every_ledger_has_rows):
    table = connection.ops.quote_name(model._meta.db_table)
    with tenant_context(tenant_a):
        assert model.objects.exists(), f"no {model._meta.label} row to try"
        for statement in (f"UPDATE {table} SET tenant_id = tenant_id", f"DELETE FROM {table}"):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
        assert model.objects.exists()
