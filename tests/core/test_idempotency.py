"""One idempotency mechanism for every door: the key is claimed first, the work runs once, a repeat replays the
first result (REST: the first status code and `Idempotent-Replayed: true`; events: acked as a duplicate), and the
same key with another payload is `idempotency_key_reused`."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from core.errors import Conflict, IdempotencyKeyReused
from core.idempotency import idempotent
from core.models import IdempotencyRecord
from core.tenancy import tenant_context

pytestmark = pytest.mark.django_db
D = Decimal


def test_the_work_runs_once_and_a_repeat_replays_its_first_result(tenant_a):
    calls = []

    def work(record):
        calls.append(record.pk)
        return {"n": len(calls)}

    with tenant_context(tenant_a):
        first = idempotent(
            tenant_id="tenant-a", scope="t", key="k", operation="op", payload={"a": 1}, work=work
        )
        again = idempotent(
            tenant_id="tenant-a", scope="t", key="k", operation="op", payload={"a": 1}, work=work
        )
        other_scope = idempotent(
            tenant_id="tenant-a", scope="u", key="k", operation="op", payload={"a": 1}, work=work
        )
    assert (first, again, other_scope) == (({"n": 1}, False), ({"n": 1}, True), ({"n": 2}, False))
    assert len(calls) == 2


def test_another_payload_or_operation_under_a_key_is_refused(tenant_a):
    with tenant_context(tenant_a):
        idempotent(
            tenant_id="tenant-a", scope="t", key="k", operation="op", payload={"a": 1}, work=lambda r: {}
        )
        for operation, payload in (("op", {"a": 2}), ("other", {"a": 1})):
            with pytest.raises(IdempotencyKeyReused) as info:
                idempotent(
                    tenant_id="tenant-a", scope="t", key="k", operation=operation, payload=payload,
                    work=lambda r: {},
                )  # fmt: skip
            assert (info.value.code, info.value.details["operation"]) == ("idempotency_key_reused", "op")


def test_a_refused_request_does_not_spend_its_key(tenant_a):
    def refuse(record):
        raise Conflict("no")

    with tenant_context(tenant_a):
        with pytest.raises(Conflict):
            idempotent(tenant_id="tenant-a", scope="t", key="k", operation="op", payload={}, work=refuse)
        assert not IdempotencyRecord.objects.filter(key="k").exists()
        result = idempotent(
            tenant_id="tenant-a", scope="t", key="k", operation="op", payload={}, work=lambda r: {"ok": 1}
        )
    assert result == ({"ok": 1}, False)


# --- REST: the first status code, marked as a replay ---------------------------------------------------------------
def _post(client, url, data, key):
    return client.post(url, data, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_rest_replays_answer_with_the_first_status_and_the_replay_header(
    api_client_for, tenant_a, customer_a
):
    from tests.credit.factories import credit_line_approved
    from tests.factories import BusinessCustomerFactory

    client = api_client_for(tenant_a)
    earn_url = f"/api/v1/customers/{customer_a.id}/loyalty/earn"
    earned = _post(client, earn_url, {"purchase_amount": "100", "reference": "T-1"}, "e-1")
    replayed = _post(client, earn_url, {"purchase_amount": "100", "reference": "T-1"}, "e-1")
    assert (earned.status_code, replayed.status_code) == (201, 201), earned.content
    assert "Idempotent-Replayed" not in earned and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == {**earned.json(), "replayed": True}

    business = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(business)
    base = f"/api/v1/customers/{business.id}/credit"
    used = _post(client, f"{base}/uses/", {"amount": "100.00", "order_id": "O-1"}, "u-1")
    payment = {"payment_id": "P-1", "amount": "40.00"}
    paid = _post(client, f"{base}/payments/", payment, "p-1")
    for url, data, key, first in (
        (f"{base}/uses/", {"amount": "100.00", "order_id": "O-1"}, "u-1", used),
        (f"{base}/payments/", payment, "p-1", paid),
    ):
        again = _post(client, url, data, key)
        assert first.status_code == 201 and again.status_code == first.status_code, first.content
        assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        assert again.json() == {**first.json(), "replayed": True}

    reused = _post(client, f"{base}/uses/", {"amount": "101.00", "order_id": "O-1"}, "u-1")
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")


def test_a_replayed_cancel_answers_with_its_first_result_not_the_current_state(api_client_for, tenant_a):
    from tests.credit.factories import credit_line_approved
    from tests.factories import BusinessCustomerFactory

    client = api_client_for(tenant_a)
    business = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(business)
    base = f"/api/v1/customers/{business.id}/credit"
    usage = _post(client, f"{base}/uses/", {"amount": "100.00", "order_id": "O-2"}, "u-2").json()
    cancel_url = f"{base}/charges/{usage['usage_id']}/cancel"
    cancelled = _post(client, cancel_url, {"reason": "order cancelled"}, "c-2")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled"), cancelled.content
    # The order comes back: the same charge is open again. A retry of the cancel still answers what it did.
    reopened = _post(client, f"{base}/uses/", {"amount": "100.00", "order_id": "O-2"}, "u-2b")
    assert reopened.status_code == 201, reopened.content
    again = _post(client, cancel_url, {"reason": "order cancelled"}, "c-2")
    assert (again.status_code, again["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == cancelled.json()
    with tenant_context(tenant_a):
        assert client.get(f"{base}/").json()["used"] == "100.00"


# --- Events: a redelivery is a duplicate; another payload under the event id is dead-lettered -----------------------
def test_an_event_applies_once_and_another_payload_under_its_id_is_refused(tenant_a, customer_a):
    from core.consumers import ROUTES, PoisonMessage, event_apply
    from loyalty.models import LoyaltyAccount

    route = next(r for r in ROUTES if r.name == "order")
    event_id = str(uuid.uuid4())

    def body(total: str) -> str:
        return json.dumps(
            {
                "event_id": event_id,
                "event_type": "order.completed",
                "occurred_at": "2026-03-01T10:00:00Z",
                "tenant_id": tenant_a.slug,
                "version": 1,
                "data": {
                    "order_id": "ORD-E1",
                    "customer_id": str(customer_a.id),
                    "total_amount": total,
                    "currency": "CLP",
                    "completed_at": "2026-03-01T10:00:00Z",
                    "items": [],
                },
            }
        )

    assert event_apply(route, body("1000")) == "applied"
    assert event_apply(route, body("1000")) == "duplicate"
    with pytest.raises(PoisonMessage) as info:
        event_apply(route, body("2000"))
    assert info.value.reason == "idempotency_key_reused"
    with tenant_context(tenant_a):
        assert LoyaltyAccount.objects.get(customer_id=customer_a.pk).available == 1000
        record = IdempotencyRecord.objects.get(scope="events", key=event_id)
    assert (record.operation, record.result) == ("order.completed", {"outcome": "applied"})
