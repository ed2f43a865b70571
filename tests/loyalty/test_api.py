"""The REST door: /api/v1/customers/{id}/loyalty/... and /api/v1/loyalty/program."""

from __future__ import annotations

import pytest

from loyalty.models import LoyaltyAccount, LoyaltyTransaction

pytestmark = pytest.mark.django_db


def base(customer):
    return f"/api/v1/customers/{customer.id}/loyalty"


def post(client, url, data, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, data, format="json", **headers)


def test_summary_of_a_new_customer_is_zero_and_bronze_without_creating_an_account(
    api_a, customer_a, in_tenant
):
    response = api_a.get(f"{base(customer_a)}/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["points_balance"], body["tier"], body["next_tier"], body["points_to_next_tier"]) == (
        0,
        "bronze",
        "silver",
        1000,
    )
    assert body["buckets"] == {
        "available": 0,
        "pending": 0,
        "lifetime_earned": 0,
        "redeemed": 0,
        "expired": 0,
        "adjusted": 0,
        "unrecovered": 0,
        "qualifying": 0,
    }
    with in_tenant(customer_a.tenant_id):
        assert not LoyaltyAccount.objects.exists()


def test_earn_then_summary(api_a, customer_a):
    response = post(
        api_a, f"{base(customer_a)}/earn", {"purchase_amount": "1500.00", "reference": "POS-1"}, "k1"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["points"], body["points_balance"], body["tier"], body["tier_changed"]) == (
        1500,
        1500,
        "silver",
        True,
    )
    assert body["discount_amount"] == "0.00"
    summary = api_a.get(f"{base(customer_a)}/").json()
    assert (summary["tier"], summary["points_to_next_tier"], summary["points_value"]) == (
        "silver",
        3500,
        "15.00",
    )
    assert summary["points_expiring_soon"] == 0


def test_a_replayed_request_returns_the_first_result(api_a, customer_a):
    url = f"{base(customer_a)}/earn"
    first = post(api_a, url, {"purchase_amount": "100.00"}, "same")
    again = post(api_a, url, {"purchase_amount": "100.00"}, "same")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["transaction_id"] == first.json()["transaction_id"]
    reused = post(api_a, url, {"purchase_amount": "200.00"}, "same")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


def test_a_blocked_customer_cannot_earn_or_redeem(api_a, customer_a, in_tenant):
    from customers.services import customer_update

    assert post(api_a, f"{base(customer_a)}/earn", {"purchase_amount": "500"}, "before").status_code == 201
    with in_tenant(customer_a.tenant_id):
        customer_update(customer=customer_a, data={"status": "blocked"}, actor="t")
    for suffix, data, key in (
        ("earn", {"purchase_amount": "500"}, "after"),
        ("redeem", {"points": 100}, "r1"),
        ("redeem/quote", {"points": 100}, None),
    ):
        response = post(api_a, f"{base(customer_a)}/{suffix}", data, key)
        assert (response.status_code, response.json()["code"]) == (409, "customer_blocked"), suffix
    assert api_a.get(f"{base(customer_a)}/").json()["points_balance"] == 500


def test_writes_need_an_idempotency_key(api_a, customer_a):
    response = post(api_a, f"{base(customer_a)}/earn", {"purchase_amount": "100.00"})
    assert (response.status_code, response.json()["code"]) == (400, "missing_idempotency_key")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"purchase_amount": "-5"}, "invalid_amount"),
        ({"purchase_amount": "abc"}, "invalid_amount"),
        ({"purchase_amount": 12.5}, "invalid_amount"),
        ({"purchase_amount": "10.00", "currency": "USD"}, "invalid_currency"),
        ({"points": 0}, "invalid_points"),
        ({"points": "many"}, "invalid_points"),
        ({}, "invalid_earn_request"),
        ({"purchase_amount": "10.00", "points": 5}, "invalid_earn_request"),
    ],
)
def test_bad_earn_input_is_400_with_a_code(api_a, customer_a, data, code):
    response = post(api_a, f"{base(customer_a)}/earn", data, "k")
    assert (response.status_code, response.json()["code"]) == (400, code), response.content


def test_redeem_quote_and_insufficient_points(api_a, customer_a, in_tenant):
    post(api_a, f"{base(customer_a)}/earn", {"purchase_amount": "500.00"}, "e1")
    quote = post(api_a, f"{base(customer_a)}/redeem/quote", {"points": 300})
    assert quote.status_code == 200
    assert (quote.json()["transaction_id"], quote.json()["discount_amount"]) == (None, "3.00")
    dry = post(api_a, f"{base(customer_a)}/redeem", {"points": 300, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["points_balance"] == 200
    too_much = post(api_a, f"{base(customer_a)}/redeem", {"points": 501}, "r1")
    assert too_much.status_code == 409
    assert too_much.json() == {
        "code": "insufficient_points",
        "message": "The customer does not have enough available points.",
        "details": {"available": 500, "requested": 501},
    }
    done = post(api_a, f"{base(customer_a)}/redeem", {"points": 300, "reference": "POS-2"}, "r2")
    assert done.status_code == 201 and done.json()["points_balance"] == 200
    with in_tenant(customer_a.tenant_id):
        assert LoyaltyTransaction.objects.filter(type="redeem").count() == 1


def test_reverse_full_and_partial(api_a, customer_a):
    post(api_a, f"{base(customer_a)}/earn", {"purchase_amount": "800.00", "reference": "P1"}, "e1")
    partial = post(api_a, f"{base(customer_a)}/reverse", {"reference": "P1", "amount": "200.00"}, "v1")
    assert partial.status_code == 201, partial.content
    assert (partial.json()["points_reversed"], partial.json()["points_balance"]) == (200, 600)
    full = post(api_a, f"{base(customer_a)}/reverse", {"reference": "P1", "reason": "returned"}, "v2")
    assert (full.json()["points_reversed"], full.json()["points_balance"]) == (600, 0)
    again = post(api_a, f"{base(customer_a)}/reverse", {"reference": "P1"}, "v3")
    assert (again.status_code, again.json()["code"]) == (409, "nothing_to_reverse")


def test_adjust_needs_the_admin_scope_and_a_reason(api_client_for, tenant_a, customer_a):
    writer = api_client_for(tenant_a, ["loyalty:read", "loyalty:write"])
    admin = api_client_for(tenant_a, ["loyalty:read", "loyalty:admin"])
    url = f"{base(customer_a)}/adjust"
    denied = post(writer, url, {"points": 100, "reason": "goodwill"}, "a1")
    assert (denied.status_code, denied.json()["code"]) == (403, "missing_scope")
    no_reason = post(admin, url, {"points": 100, "reason": ""}, "a2")
    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "reason_required")
    done = post(admin, url, {"points": 100, "reason": "goodwill"}, "a3")
    assert done.status_code == 201 and done.json()["points_balance"] == 100


def test_scopes_read_and_write(api_client_for, tenant_a, customer_a):
    reader = api_client_for(tenant_a, ["loyalty:read"])
    assert reader.get(f"{base(customer_a)}/").status_code == 200
    response = post(reader, f"{base(customer_a)}/earn", {"points": 5}, "k")
    assert (response.status_code, response.json()["code"]) == (403, "missing_scope")
    nobody = api_client_for(tenant_a, ["customers:read"])
    assert nobody.get(f"{base(customer_a)}/").status_code == 403


@pytest.mark.parametrize(
    ("method", "suffix", "data"),
    [
        ("get", "/", None),
        ("get", "/transactions/", None),
        ("post", "/earn", {"purchase_amount": "10.00"}),
        ("post", "/redeem", {"points": 100}),
        ("post", "/reverse", {"reference": "P1"}),
        ("post", "/adjust", {"points": 10, "reason": "x"}),
        ("get", "/stamps", None),
    ],
)
def test_another_tenants_customer_is_not_found(api_a, customer_b, method, suffix, data):
    url = f"{base(customer_b)}{suffix}"
    response = post(api_a, url, data, "k") if method == "post" else api_a.get(url)
    assert (response.status_code, response.json()["code"]) == (404, "customer_not_found")


def test_transactions_filter_and_paginate_with_a_cursor(api_a, customer_a):
    for i in range(3):
        post(api_a, f"{base(customer_a)}/earn", {"purchase_amount": "100.00", "reference": f"P{i}"}, f"e{i}")
    post(api_a, f"{base(customer_a)}/redeem", {"points": 100, "reference": "R"}, "r")
    page = api_a.get(f"{base(customer_a)}/transactions/", {"page_size": 2}).json()
    assert [t["type"] for t in page["results"]] == ["redeem", "earn"]
    rest = api_a.get(page["next"]).json()
    assert [t["reference"] for t in rest["results"]] == ["P1", "P0"] and rest["next"] is None
    earns = api_a.get(f"{base(customer_a)}/transactions/", {"type": "earn", "reference": "P2"}).json()[
        "results"
    ]
    assert [(t["type"], t["points"], t["award_remaining"]) for t in earns] == [("earn", 100, 100)]
    assert earns[0]["expires_at"] == "2026-01-15T12:00:00Z"
    bad = api_a.get(f"{base(customer_a)}/transactions/", {"type": "bogus"})
    assert bad.status_code == 400


def test_program_read_and_update(api_client_for, tenant_a):
    reader = api_client_for(tenant_a, ["loyalty:read"])
    admin = api_client_for(tenant_a, ["loyalty:read", "loyalty:admin"])
    program = reader.get("/api/v1/loyalty/program").json()
    assert (program["earn_rate"], program["redemption_points_per_unit"], program["earn_rounding"]) == (
        "1.0000",
        100,
        "floor",
    )
    assert [t["code"] for t in program["tiers"]] == ["bronze", "silver", "gold", "platinum"]
    denied = reader.patch("/api/v1/loyalty/program", {"pending_days": 14}, format="json")
    assert (denied.status_code, denied.json()["code"]) == (403, "missing_scope")
    changed = admin.patch(
        "/api/v1/loyalty/program",
        {"pending_days": 14, "tiers": [{"code": "gold", "threshold": 8000, "earn_multiplier": "1.750"}]},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["pending_days"] == 14
    assert changed.json()["tiers"][2] == {
        "code": "gold",
        "name": "Gold",
        "threshold": 8000,
        "earn_multiplier": "1.750",
        "benefits": "",
    }
    bad = admin.patch(
        "/api/v1/loyalty/program", {"tiers": [{"code": "silver", "threshold": 9000}]}, format="json"
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_program")


def test_tier_override_and_history(api_a, customer_a):
    response = post(
        api_a,
        f"{base(customer_a)}/tier-override",
        {"tier": "gold", "expires_at": "2025-03-01T00:00:00Z", "reason": "VIP"},
    )
    assert response.status_code == 200, response.content
    assert (response.json()["tier"], response.json()["earned_tier"]) == ("gold", "bronze")
    history = api_a.get(f"{base(customer_a)}/tier-history").json()
    assert [(h["old_tier"], h["new_tier"], h["rule"]) for h in history] == [
        ("bronze", "gold", "override_set")
    ]
    cleared = api_a.delete(f"{base(customer_a)}/tier-override")
    assert cleared.json()["tier"] == "bronze"


def test_stamps_through_the_api(api_a, customer_a):
    rule = api_a.post(
        "/api/v1/loyalty/stamp-rules",
        {
            "name": "Coffee",
            "categories": ["coffee"],
            "stamps_per_card": 3,
            "reward_description": "Free coffee",
        },
        format="json",
    )
    assert rule.status_code == 201, rule.content
    rule_id = rule.json()["id"]
    added = post(api_a, f"{base(customer_a)}/stamps", {"rule_id": rule_id, "stamps": 4}, "s1")
    assert added.status_code == 201 and added.json()["stamps"] == 1
    [reward_id] = added.json()["rewards_issued"]
    cards = api_a.get(f"{base(customer_a)}/stamps").json()
    assert cards[0]["stamps"] == 1 and cards[0]["rewards_available"][0]["id"] == reward_id
    url = f"{base(customer_a)}/stamps/rewards/{reward_id}/redeem"
    assert api_a.post(url, {"reference": "POS-9"}, format="json").json()["status"] == "redeemed"
    twice = api_a.post(url, {}, format="json")
    assert (twice.status_code, twice.json()["code"]) == (409, "reward_already_redeemed")
    unknown = post(api_a, f"{base(customer_a)}/stamps", {"rule_id": "nope", "stamps": 1}, "s2")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "stamp_rule_not_found")


def test_the_schema_documents_the_loyalty_endpoints(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/customers/{customer_id}/loyalty/redeem/quote/" in paths
    assert "/api/v1/loyalty/program/" in paths
    ledger = paths["/api/v1/customers/{customer_id}/loyalty/transactions/"]["get"]
    assert {"type", "reference", "source", "created_after", "cursor"} <= {
        p["name"] for p in ledger["parameters"]
    }
