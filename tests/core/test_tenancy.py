"""Tenants are kept apart by the app and, underneath, by PostgreSQL Row-Level Security under the app's own role."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

from core.models import TenantOwned
from core.tenancy import all_tenants_context, tenant_context
from customers.models import Customer

pytestmark = pytest.mark.django_db


def test_app_role_is_neither_superuser_nor_bypassrls(raw_sql):
    [(user, superuser, bypass)] = raw_sql(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert superuser is False, f"{user} is a superuser: RLS would be bypassed"
    assert bypass is False, f"{user} has BYPASSRLS"


def test_every_tenant_table_has_forced_rls_and_the_policy(raw_sql):
    tables = [m._meta.db_table for m in apps.get_models() if issubclass(m, TenantOwned) and not m._meta.proxy]
    assert "customers_customer" in tables
    for table in tables:
        [(enabled, forced)] = raw_sql(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", [table]
        )
        assert (enabled, forced) == (True, True), f"{table}: RLS enabled={enabled} forced={forced}"
        policies = dict(raw_sql("SELECT policyname, qual FROM pg_policies WHERE tablename = %s", [table]))
        assert "SELECT core_tenant_scope()" in policies["tenant_isolation"], (table, policies)
        assert "SELECT core_tenant_scope()" in policies["all_tenants"], (table, policies)
        assert "'*'" in policies["all_tenants"], (table, policies)


def test_raw_sql_without_a_tenant_sees_no_rows(customer_a, customer_b, raw_sql):
    assert raw_sql("SELECT count(*) FROM customers_customer") == [(0,)]
    with all_tenants_context():
        assert raw_sql("SELECT count(*) FROM customers_customer") == [(2,)]


def test_raw_sql_in_tenant_a_sees_only_a_and_cannot_touch_b(customer_a, customer_b, tenant_a, raw_sql):
    with tenant_context(tenant_a):
        rows = raw_sql("SELECT id FROM customers_customer")
        assert [r[0] for r in rows] == [customer_a.id]
        assert (
            raw_sql("UPDATE customers_customer SET notes = 'x' WHERE id = %s RETURNING id", [customer_b.id])
            == []
        )
        assert raw_sql("DELETE FROM customers_customer WHERE id = %s RETURNING id", [customer_b.id]) == []
    with all_tenants_context():
        assert Customer.objects.get(pk=customer_b.pk).notes == ""


def test_inserting_a_row_for_another_tenant_is_refused_by_the_database(tenant_a, tenant_b, raw_sql):
    from django.db import DatabaseError, transaction

    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
    ):
        raw_sql(
            "INSERT INTO customers_customer (id, tenant_id, type, first_name, last_name, legal_name, trade_name,"
            " document_type, salesperson, route, status, notes, created_at, updated_at)"
            " VALUES (gen_random_uuid(), %s, 'individual', 'x', '', '', '', '', '', '', 'active', '', now(), now())",
            [tenant_b.slug],
        )


def test_tenant_setting_is_transaction_scoped_and_restored_after_nesting(tenant_a, tenant_b, raw_sql):
    def scope() -> str | None:
        return raw_sql("SELECT core_tenant_scope()")[0][0]

    with tenant_context(tenant_a):
        assert scope() == "tenant-a"
        with tenant_context(tenant_b):
            assert scope() == "tenant-b"
        assert scope() == "tenant-a"
        with all_tenants_context():
            assert scope() == "*"
        assert scope() == "tenant-a"
    assert scope() is None


@pytest.mark.django_db(transaction=True)
def test_tenant_setting_does_not_carry_over_to_the_next_transaction_on_the_connection(raw_sql):
    from tests.factories import TenantFactory

    tenant = TenantFactory(slug="carry-over")
    with tenant_context(tenant):
        pass
    # Autocommit again: the next statement is a new transaction on the same connection.
    assert connection.in_atomic_block is False
    assert raw_sql("SELECT coalesce(current_setting('app.tenant_id', true), ''), core_tenant_scope()") == [
        ("", None)
    ]


def test_app_level_queryset_is_scoped_to_the_current_tenant(customer_a, customer_b, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        assert list(Customer.objects.values_list("id", flat=True)) == [customer_a.id]
    with tenant_context(tenant_b):
        assert list(Customer.objects.values_list("id", flat=True)) == [customer_b.id]


def test_api_another_tenants_customer_is_not_found(api_a, customer_b):
    for method, kwargs in (("get", {}), ("patch", {"data": {"notes": "x"}}), ("delete", {})):
        response = getattr(api_a, method)(f"/api/v1/customers/{customer_b.id}/", format="json", **kwargs)
        assert response.status_code == 404, (method, response.content)
        assert response.json()["code"] == "customer_not_found"
    with all_tenants_context():
        fresh = Customer.objects.get(pk=customer_b.pk)
    assert fresh.notes == "" and fresh.status == "active"
