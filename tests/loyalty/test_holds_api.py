"""The REST door of redemption holds: POST .../loyalty/holds, .../holds/{id}/commit, .../holds/{id}/release."""

from __future__ import annotations

import uuid

import pytest

from loyalty.models import LoyaltyTransaction

pytestmark = pytest.mark.django_db


def base(customer):
    return f"/api/v1/customers/{customer.id}/loyalty"


def post(client, url, data=None, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, data, format="json", **headers)


@pytest.fixture
def funded(api_a, customer_a):
    assert post(api_a, f"{base(customer_a)}/earn", {"points": 1000}, "seed").status_code == 201
    return customer_a


def test_hold_commit_and_replays_over_rest(api_a, funded, in_tenant):
    url = f"{base(funded)}/holds"
    placed = post(api_a, url, {"points": 600, "reference": "T-1", "purchase_amount": "20000"}, "sale-1")
    assert placed.status_code == 201, placed.content
    body = placed.json()
    assert {k: body[k] for k in ("status", "points", "discount_amount", "currency", "purchase_amount")} == {
        "status": "held",
        "points": 600,
        "discount_amount": "6.00",
        "currency": "CLP",
        "purchase_amount": "20000.00",
    }
    assert (body["points_balance"], body["held_points"], body["available_points"]) == (1000, 600, 400)
    assert (body["transaction_id"], body["redemption"], body["replayed"]) == (None, None, False)
    again = post(api_a, url, {"points": 600, "reference": "T-1", "purchase_amount": "20000"}, "sale-1")
    assert (again.status_code, again["Idempotent-Replayed"], again.json()["hold_id"]) == (
        201,
        "true",
        body["hold_id"],
    )

    refused = post(api_a, f"{base(funded)}/redeem", {"points": 500}, "r-1")
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_points")
    assert refused.json()["details"] == {"available": 400, "requested": 500}
    quote = post(api_a, f"{base(funded)}/redeem/quote", {"points": 500})
    assert (quote.status_code, quote.json()["code"]) == (409, "insufficient_points")

    committed = post(api_a, f"{url}/{body['hold_id']}/commit")
    assert committed.status_code == 200, committed.content
    done = committed.json()
    assert (done["status"], done["points_balance"], done["held_points"], done["available_points"]) == (
        "committed",
        400,
        0,
        400,
    )
    assert done["redemption"]["transaction_id"] == done["transaction_id"]
    assert (done["redemption"]["points"], done["redemption"]["discount_amount"]) == (600, "6.00")
    repeat = post(api_a, f"{url}/{body['hold_id']}/commit/")
    assert (repeat.status_code, repeat["Idempotent-Replayed"]) == (200, "true")
    assert repeat.json()["transaction_id"] == done["transaction_id"]
    with in_tenant(funded.tenant_id):
        assert LoyaltyTransaction.objects.filter(type="redeem").count() == 1
    assert api_a.get(f"{base(funded)}/").json()["points_balance"] == 400


def test_release_and_the_refusals_over_rest(api_a, api_b, funded):
    url = f"{base(funded)}/holds"
    placed = post(api_a, url, {"points": 900, "ttl_seconds": 60}, "sale-2").json()
    released = post(api_a, f"{url}/{placed['hold_id']}/release")
    assert (released.status_code, released.json()["status"], released.json()["available_points"]) == (
        200,
        "released",
        1000,
    )
    again = post(api_a, f"{url}/{placed['hold_id']}/release")
    assert (again.status_code, again["Idempotent-Replayed"]) == (200, "true")
    cases = [
        (post(api_a, url, {"points": 100}), 400, "missing_idempotency_key"),
        (post(api_a, url, {"points": 100, "ttl_seconds": 0}, "k"), 400, "invalid_hold_expiry"),
        (post(api_a, url, {"points": 100, "ttl_seconds": "soon"}, "k"), 400, "invalid_hold_expiry"),
        (post(api_a, url, {"points": 100, "until": "later"}, "k"), 400, "unknown_field"),
        (post(api_a, url, {"points": 5000}, "k"), 409, "insufficient_points"),
        (post(api_a, f"{url}/{placed['hold_id']}/commit"), 409, "points_hold_not_active"),
        (post(api_a, f"{url}/{uuid.uuid4()}/commit"), 404, "points_hold_not_found"),
        (post(api_a, f"{url}/not-a-uuid/release"), 404, "points_hold_not_found"),
        (post(api_b, f"{url}/{placed['hold_id']}/release"), 404, "customer_not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.content


def test_holds_need_the_write_scope(api_client_for, tenant_a, funded):
    reader = api_client_for(tenant_a, ["loyalty:read"])
    response = post(reader, f"{base(funded)}/holds", {"points": 100}, "k")
    assert (response.status_code, response.json()["code"]) == (403, "missing_scope")
