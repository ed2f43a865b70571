"""Bad input at the REST door: always a 4xx with a stable code, never a 500, and nothing half-written."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from core.models import IdempotencyRecord, OutboxEvent
from loyalty.models import (
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTransaction,
    StampEntry,
    TierChange,
)

pytestmark = pytest.mark.django_db

UUID0 = "00000000-0000-0000-0000-000000000000"


def cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# (method, path under the customer's /loyalty (or absolute when it starts with /api), body, idempotency key,
#  expected status, expected code)
# fmt: off
CASES: list[tuple[str, str, Any, str | None, int, str]] = [
    # --- earn: amounts ---
    ("post", "earn", {"purchase_amount": "-5"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "0"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "abc"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": 12.5}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "1.001"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "1e400"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "NaN"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "Infinity"}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": ["1"]}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": True}, "k", 400, "invalid_amount"),
    ("post", "earn", {"purchase_amount": "10.00", "currency": "USD"}, "k", 400, "invalid_currency"),
    # --- earn: points ---
    ("post", "earn", {"points": 0}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": -3}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": 1.5}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": "many"}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": "1e3"}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": "\u00b2"}, "k", 400, "invalid_points"),  # str.isdigit() says yes, int() says no
    ("post", "earn", {"points": 10**30}, "k", 400, "invalid_points"),
    ("post", "earn", {"points": [1]}, "k", 400, "invalid_points"),
    ("post", "earn", {}, "k", 400, "invalid_earn_request"),
    ("post", "earn", {"purchase_amount": "10.00", "points": 5}, "k", 400, "invalid_earn_request"),
    # --- earn: other fields, body, key ---
    ("post", "earn", {"points": 5, "reference": "x" * 101}, "k", 400, "validation_error"),
    ("post", "earn", {"points": 5, "reference": "a\x00b"}, "k", 400, "validation_error"),
    ("post", "earn", {"points": 5, "items": "abc"}, "k", 400, "validation_error"),
    ("post", "earn", {"points": 5, "items": [{"quantity": 1}]}, "k", 400, "validation_error"),
    ("post", "earn", {"purchase_amount": "10.00", "items": [{"sku": "LATTE", "quantity": "abc"}]}, "k", 400,
     "invalid_item"),
    ("post", "earn", {"purchase_amount": "10.00", "items": [{"sku": "LATTE", "quantity": "1e30"}]}, "k", 400,
     "invalid_item"),
    ("post", "earn", {"purchase_amount": "10.00", "items": [{"sku": "LATTE", "quantity": 5000}]}, "k", 400,
     "invalid_stamps"),
    ("post", "earn", {"points": 5, "items": [{"sku": "X"}] * 501}, "k", 400, "validation_error"),
    ("post", "earn", {"points": 5, "bogus": 1}, "k", 400, "unknown_field"),
    ("post", "earn", [1, 2], "k", 400, "validation_error"),
    ("post", "earn", "text", "k", 400, "validation_error"),
    ("post", "earn", {"points": 5}, None, 400, "missing_idempotency_key"),
    ("post", "earn", {"points": 5}, "x" * 201, 400, "invalid_idempotency_key"),
    ("post", "earn", {"points": 5}, "a\x00b", 400, "invalid_idempotency_key"),
    # --- redeem and quote ---
    ("post", "redeem", {"points": -5}, "k", 400, "invalid_points"),
    ("post", "redeem", {"points": "abc"}, "k", 400, "invalid_points"),
    ("post", "redeem", {"points": 1.5}, "k", 400, "invalid_points"),
    ("post", "redeem", {"points": 10**30}, "k", 400, "invalid_points"),
    ("post", "redeem", {}, "k", 400, "validation_error"),
    ("post", "redeem", {"points": 100, "dry_run": "maybe"}, "k", 400, "validation_error"),
    ("post", "redeem", {"points": 100, "purchase_amount": "-1"}, "k", 400, "invalid_amount"),
    # A misspelt dry_run must not turn a quote into a redemption.
    ("post", "redeem", {"points": 100, "dry_rn": True}, "k", 400, "unknown_field"),
    ("post", "redeem", {"points": 100}, None, 400, "missing_idempotency_key"),
    ("post", "redeem", {"points": 501}, "k", 409, "insufficient_points"),
    ("post", "redeem/quote", {"points": "x"}, None, 400, "invalid_points"),
    ("post", "redeem/quote", {"points": 100, "purchase_amount": "abc"}, None, 400, "invalid_amount"),
    # --- reverse ---
    ("post", "reverse", {}, "k", 400, "validation_error"),
    ("post", "reverse", {"reference": ""}, "k", 400, "validation_error"),
    ("post", "reverse", {"reference": "P1", "amount": "-1"}, "k", 400, "invalid_amount"),
    ("post", "reverse", {"reference": "P1", "amount": 1.5}, "k", 400, "invalid_amount"),
    ("post", "reverse", {"reference": "P1", "amount": "500.01"}, "k", 409, "reversal_exceeds_purchase"),
    ("post", "reverse", {"reference": "never"}, "k", 409, "nothing_to_reverse"),
    ("post", "reverse", {"reference": "P1", "reson": "typo"}, "k", 400, "unknown_field"),
    # --- adjust ---
    ("post", "adjust", {"points": "abc", "reason": "x"}, "k", 400, "invalid_points"),
    ("post", "adjust", {"points": 10**13, "reason": "x"}, "k", 400, "invalid_points"),
    ("post", "adjust", {"points": -501, "reason": "x"}, "k", 409, "insufficient_points"),
    ("post", "adjust", {"points": 5}, "k", 400, "validation_error"),
    ("post", "adjust", {"points": 5, "reason": " "}, "k", 400, "reason_required"),
    # --- tier override ---
    ("post", "tier-override", {"tier": "diamond", "reason": "r"}, None, 400, "validation_error"),
    ("post", "tier-override", {"tier": "gold", "reason": "r", "expires_at": "soon"}, None, 400,
     "validation_error"),
    ("post", "tier-override", {"tier": "gold", "reason": "r", "expires_at": "2000-01-01T00:00:00Z"}, None, 400,
     "invalid_expiry"),
    # --- stamps ---
    ("post", "stamps", {"rule_id": "x", "stamps": "a"}, "k", 400, "invalid_stamps"),
    ("post", "stamps", {"rule_id": UUID0, "stamps": 1}, "k", 404, "stamp_rule_not_found"),
    ("post", "stamps/rewards/nope/redeem", {}, None, 404, "stamp_reward_not_found"),
    ("post", f"stamps/rewards/{UUID0}/redeem", {}, None, 404, "stamp_reward_not_found"),
    # --- reads: ids, filters, cursors ---
    ("get", "/api/v1/customers/not-a-uuid/loyalty/", None, None, 404, "customer_not_found"),
    ("get", f"/api/v1/customers/{UUID0}/loyalty/transactions/", None, None, 404, "customer_not_found"),
    ("get", "transactions/?type=bogus", None, None, 400, "validation_error"),
    ("get", "transactions/?created_after=yesterday", None, None, 400, "validation_error"),
    ("get", "transactions/?cursor=garbage", None, None, 400, "invalid_cursor"),
    ("get", f"transactions/?cursor={cursor('p=abc')}", None, None, 400, "invalid_cursor"),
    ("get", f"transactions/?cursor={cursor('o=-1')}", None, None, 400, "invalid_cursor"),
    # --- program ---
    ("patch", "/api/v1/loyalty/program", {"earn_rate": "-1"}, None, 400, "invalid_program"),
    ("patch", "/api/v1/loyalty/program", {"earn_rate": "abc"}, None, 400, "validation_error"),
    ("patch", "/api/v1/loyalty/program", {"redemption_points_per_unit": 10**12}, None, 400, "invalid_program"),
    ("patch", "/api/v1/loyalty/program", {"min_redemption_points": 10**12}, None, 400, "invalid_program"),
    ("patch", "/api/v1/loyalty/program", {"tiers": [{"code": "platinum", "threshold": 10**30}]}, None, 400,
     "invalid_program"),
    ("patch", "/api/v1/loyalty/program", {"tiers": [{"code": "gold", "earn_multiplier": "NaN"}]}, None, 400,
     "validation_error"),
    ("patch", "/api/v1/loyalty/program", {"tiers": "x"}, None, 400, "validation_error"),
    ("patch", "/api/v1/loyalty/program", {"pending_dys": 14}, None, 400, "unknown_field"),
    ("patch", "/api/v1/loyalty/program", {"tiers": [{"code": "gold", "treshold": 1}]}, None, 400,
     "unknown_field"),
    ("post", "/api/v1/loyalty/stamp-rules", {"name": "x", "reward_description": "y", "skus": ["a"], "bogus": 1},
     None, 400, "unknown_field"),
]
# fmt: on


@pytest.fixture
def seeded(tenant_a, customer_a, earn, in_tenant):
    """500 points from purchase P1 and a coffee stamp rule, so that the refusals below have something to spare."""
    from loyalty.services import stamp_rule_save

    earn(customer_a, "500.00", reference="P1")
    with in_tenant(tenant_a):
        stamp_rule_save(
            tenant_id=tenant_a.slug,
            name="Coffee",
            skus=["LATTE"],
            stamps_per_card=10,
            reward_description="Free coffee",
        )
    return customer_a


def snapshot(tenant: Any, in_tenant: Any) -> tuple[Any, ...]:
    with in_tenant(tenant):
        return (
            IdempotencyRecord.objects.filter(scope="loyalty").count(),
            LoyaltyTransaction.objects.count(),
            StampEntry.objects.count(),
            TierChange.objects.count(),
            OutboxEvent.objects.count(),
            list(LoyaltyAccount.objects.values_list("available", "pending", "tier", "tier_override")),
            list(LoyaltyProgram.objects.values()),
            list(LoyaltyTier.objects.order_by("code").values_list("code", "threshold", "earn_multiplier")),
        )


@pytest.mark.parametrize(("method", "path", "body", "key", "status", "code"), CASES)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    api_a, tenant_a, seeded, in_tenant, method, path, body, key, status, code
):
    url = path if path.startswith("/api/") else f"/api/v1/customers/{seeded.id}/loyalty/{path}"
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    before = snapshot(tenant_a, in_tenant)
    api_a.raise_request_exception = False
    if method == "get":
        response = api_a.get(url)
    else:
        response = getattr(api_a, method)(url, body, format="json", **headers)
    assert (response.status_code, response.json()["code"]) == (status, code), response.content
    assert response.json()["message"]
    assert snapshot(tenant_a, in_tenant) == before


def test_a_body_that_is_not_json_is_a_clear_error(api_a, seeded):
    response = api_a.post(
        f"/api/v1/customers/{seeded.id}/loyalty/earn",
        data="{not json",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


@pytest.mark.parametrize(
    "amount", ["１００", "1_000", "1E2", "1e2", " 1", "1 ", "+1", "1.", ".5", "٣", "NaN", "Infinity"]
)
def test_amounts_are_plain_ascii_decimal_strings(api_a, seeded, customer_a, amount):
    response = api_a.post(
        f"/api/v1/customers/{customer_a.id}/loyalty/earn",
        {"purchase_amount": amount},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"strict-{amount}",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_amount"


def test_an_ordinary_amount_is_still_accepted(api_a, seeded, customer_a):
    for amount in ["100", "100.5", "100.50", "0.99"]:
        response = api_a.post(
            f"/api/v1/customers/{customer_a.id}/loyalty/earn",
            {"purchase_amount": amount},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"ok-{amount}",
        )
        assert response.status_code in (200, 201), response.content
