"""The change feed under concurrency (real threads, real PostgreSQL): a transaction that began earlier and commits
later is not passed over by a poller's cursor."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from core.tenancy import tenant_context
from customers.models import Customer, CustomerSyncChange
from customers.services import customer_update
from tests.customers.test_sync import poll, poll_until
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_slow_committing_transaction_is_not_skipped_by_a_poller(api_a: Any, tenant_a: Any) -> None:
    slow_customer = CustomerFactory(tenant=tenant_a)
    fast_customer = CustomerFactory(tenant=tenant_a)
    _, cursor = poll_until(api_a, None, lambda c: len(c) >= 2)  # the poller is current

    written = threading.Event()
    release = threading.Event()
    slow: dict[str, Any] = {}

    def slow_write() -> None:
        try:
            with tenant_context(tenant_a):
                customer = Customer.objects.get(pk=slow_customer.pk)
                customer_update(customer=customer, data={"notes": "slow"}, actor="test")
                slow["row_id"] = CustomerSyncChange.objects.filter(customer=customer).latest("id").id
                written.set()
                assert release.wait(timeout=60)
        except Exception as exc:  # reported to the main thread
            slow["error"] = exc
            written.set()
        finally:
            connection.close()

    thread = threading.Thread(target=slow_write)
    thread.start()
    try:
        assert written.wait(timeout=30) and "error" not in slow, slow
        # A second transaction begins after the slow one, writes and commits while the slow one is still open.
        fast = api_a.patch(f"/api/v1/customers/{fast_customer.id}/", {"notes": "fast"}, format="json")
        assert fast.status_code == 200
        with tenant_context(tenant_a):
            fast_row_id = CustomerSyncChange.objects.filter(customer_id=fast_customer.id).latest("id").id
        # The slow change took the earlier row id: a cursor on row ids would now move past it.
        assert slow["row_id"] < fast_row_id
        # The poller sees neither while the slow transaction is open: its cursor cannot pass the slow change.
        for _ in range(3):
            changes, cursor_now = poll(api_a, cursor)
            assert changes == [] and cursor_now == cursor
    finally:
        release.set()
        thread.join(timeout=60)
    assert "error" not in slow, slow

    changes, _ = poll_until(api_a, cursor, lambda c: len(c) >= 2)
    assert [(c["customer"]["id"], c["changed_fields"]) for c in changes] == [
        (str(slow_customer.id), ["notes"]),
        (str(fast_customer.id), ["notes"]),
    ]


def test_concurrent_first_upserts_of_one_external_id_create_one_customer(
    api_client_for: Any, tenant_a: Any
) -> None:
    from tests.concurrency import run_threads

    def put(i: int) -> tuple[int, str]:
        client = api_client_for(tenant_a)
        body = {"type": "individual", "first_name": "Race", "last_name": "Winner", "notes": "same"}
        response = client.put("/api/v1/customers/by-external-id/crm-race", body, format="json")
        return response.status_code, response.json().get("id", response.content)

    results = run_threads(8, put)
    assert all(not isinstance(r, Exception) for r in results), results
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 7 + [201], results
    assert len({customer_id for _, customer_id in results}) == 1
    with tenant_context(tenant_a):
        assert Customer.objects.filter(external_id="crm-race").count() == 1
        assert CustomerSyncChange.objects.filter(customer__external_id="crm-race").count() == 1
