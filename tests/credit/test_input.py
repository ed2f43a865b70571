"""Bad input at every REST endpoint of credit: always a 4xx with a stable code, never a 500, never a half-write."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from core.models import IdempotencyRecord, OutboxEvent
from core.tenancy import tenant_context
from credit import services
from credit.models import (
    CreditCharge,
    CreditHold,
    CreditLedgerEntry,
    CreditLine,
    CreditLineChange,
    CreditPayment,
    VolumeDiscountBracket,
)

pytestmark = pytest.mark.django_db

D = Decimal
NO_KEY = object()


def cursor(raw: bytes) -> str:
    return quote(base64.b64encode(raw).decode(), safe="")


@pytest.fixture
def world(tenant_a: Any, business_a: Any, approved_line: Any, clock_at: Any) -> dict[str, str]:
    """A line with a charge, a hold and a payment, so that every endpoint has something to refuse to touch."""
    with tenant_context(tenant_a):
        charge = services.credit_use(customer=business_a, amount=D("100"), order_id="ORD-1")
        hold = services.credit_hold_place(customer=business_a, amount=D("50"), order_id="ORD-2")
        services.payment_record(customer=business_a, payment_id="PAY-1", amount=D("10"))
    return {
        "c": f"/api/v1/customers/{business_a.id}/credit",
        "line": f"/api/v1/credit/lines/{approved_line.pk}",
        "charge": str(charge.usage_id),
        "hold": str(hold.hold_id),
        "customer_id": str(business_a.id),
    }


def snapshot(tenant: Any) -> tuple[Any, ...]:
    """Everything a write could touch."""
    with tenant_context(tenant):
        return (
            sorted(
                CreditLine.objects.values_list(
                    "pk", "status", "approved_limit", "exposure", "payment_terms_days"
                )
            ),
            sorted(CreditCharge.objects.values_list("order_id", "status", "outstanding")),
            sorted(CreditHold.objects.values_list("order_id", "status", "amount")),
            sorted(CreditPayment.objects.values_list("payment_id", "unapplied_amount")),
            CreditLedgerEntry.objects.count(),
            CreditLineChange.objects.count(),
            IdempotencyRecord.objects.filter(scope="credit").count(),
            VolumeDiscountBracket.objects.count(),
            OutboxEvent.objects.count(),
        )


USE = {"amount": "1.00", "order_id": "NEW-1"}
HOLD = {"amount": "1.00", "order_id": "NEW-2"}
PAY = {"payment_id": "PAY-NEW", "amount": "1.00"}
BAD_CURSORS = [
    "garbage",
    cursor(b"p=not-a-date"),
    cursor(b"r=1&p=\x00"),
]
LISTS = ["{line_list}", "{c}/charges/", "{c}/holds/", "{c}/payments/"]

# (method, path, body or raw string, idempotency key, status, code)
CASES: list[tuple[str, str, Any, Any, int, str]] = [
    # --- uses: amounts of every bad kind
    *[
        ("post", "{c}/uses/", {**USE, "amount": amount}, "k", 400, "invalid_amount")
        for amount in [
            "-1",
            "0",
            "-0.00",
            "abc",
            "1e400",
            "1000000000000",
            "1.001",
            "NaN",
            "Infinity",
            "",
            12.5,
            True,
            "9" * 40,
        ]
    ],
    ("post", "{c}/uses/", {**USE, "amount": []}, "k", 400, "invalid_amount"),
    ("post", "{c}/uses/", {**USE, "amount": None}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {"order_id": "x"}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {"amount": "1"}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "order_id": {"a": 1}}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "order_id": "x" * 101}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "order_id": "a\x00b"}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "order_id": "   "}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "currency": "USD"}, "k", 400, "invalid_currency"),
    ("post", "{c}/uses/", {**USE, "currency": "USDX"}, "k", 400, "validation_error"),
    ("post", "{c}/uses/", {**USE, "currency": 5}, "k", 400, "invalid_currency"),
    # An unknown field (a typo of `currency`) must not silently charge in the tenant's currency.
    ("post", "{c}/uses/", {**USE, "curency": "USD"}, "k", 400, "unknown_field"),
    ("post", "{c}/uses/", {**USE, "customer": "x"}, "k", 400, "unknown_field"),
    ("post", "{c}/uses/", USE, NO_KEY, 400, "missing_idempotency_key"),
    ("post", "{c}/uses/", USE, "   ", 400, "missing_idempotency_key"),
    ("post", "{c}/uses/", USE, "k" * 201, 400, "invalid_idempotency_key"),
    ("post", "{c}/uses/", "[1, 2]", "k", 400, "validation_error"),
    ("post", "{c}/uses/", '"x"', "k", 400, "validation_error"),
    ("post", "{c}/uses/", "null", "k", 400, "validation_error"),
    ("post", "{c}/uses/", "{", "k", 400, "malformed_request"),
    ("post", "/api/v1/customers/not-a-uuid/credit/uses/", USE, "k", 404, "customer_not_found"),
    (
        "post",
        "/api/v1/customers/00000000-0000-0000-0000-000000000000/credit/uses/",
        USE,
        "k",
        404,
        "customer_not_found",
    ),
    # A replayed order id with another amount, a key reused with another payload.
    ("post", "{c}/uses/", {"amount": "101", "order_id": "ORD-1"}, "k", 422, "idempotency_key_reused"),
    ("post", "{c}/uses/", {"amount": "2000", "order_id": "NEW-9"}, "k", 409, "credit_limit_exceeded"),
    # --- holds
    ("post", "{c}/holds/", {**HOLD, "amount": "-5"}, "k", 400, "invalid_amount"),
    ("post", "{c}/holds/", {**HOLD, "amount": 5.5}, "k", 400, "invalid_amount"),
    ("post", "{c}/holds/", {**HOLD, "expires_at": "tomorrow"}, "k", 400, "validation_error"),
    ("post", "{c}/holds/", {**HOLD, "expires_at": "2000-01-01T00:00:00Z"}, "k", 400, "invalid_hold_expiry"),
    ("post", "{c}/holds/", {**HOLD, "expires_at": "2099-01-01T00:00:00Z"}, "k", 400, "invalid_hold_expiry"),
    ("post", "{c}/holds/", {**HOLD, "expires_at": "9999-12-31T23:59:59-05:00"}, "k", 400, "validation_error"),
    ("post", "{c}/holds/", {**HOLD, "currency": "MXN"}, "k", 400, "invalid_currency"),
    ("post", "{c}/holds/", {**HOLD, "ttl": 5}, "k", 400, "unknown_field"),
    ("post", "{c}/holds/", HOLD, NO_KEY, 400, "missing_idempotency_key"),
    ("post", "{c}/holds/", {"amount": "51", "order_id": "ORD-2"}, "k", 409, "credit_hold_exists"),
    ("post", "{c}/holds/not-a-uuid/release", None, "k", 404, "credit_hold_not_found"),
    (
        "post",
        "{c}/holds/00000000-0000-0000-0000-000000000000/release",
        None,
        "k",
        404,
        "credit_hold_not_found",
    ),
    ("post", "{c}/holds/{hold}/release", None, NO_KEY, 400, "missing_idempotency_key"),
    # --- payments
    ("post", "{c}/payments/", {**PAY, "amount": "-1"}, "k", 400, "invalid_amount"),
    ("post", "{c}/payments/", {**PAY, "amount": "1e5000"}, "k", 400, "invalid_amount"),
    ("post", "{c}/payments/", {**PAY, "amount": 3.0}, "k", 400, "invalid_amount"),
    ("post", "{c}/payments/", {"amount": "1"}, "k", 400, "validation_error"),
    ("post", "{c}/payments/", {**PAY, "payment_id": "p" * 101}, "k", 400, "validation_error"),
    ("post", "{c}/payments/", {**PAY, "order_id": "o" * 101}, "k", 400, "validation_error"),
    ("post", "{c}/payments/", {**PAY, "received_at": "yesterday"}, "k", 400, "validation_error"),
    ("post", "{c}/payments/", {**PAY, "currency": "EUR"}, "k", 400, "invalid_currency"),
    ("post", "{c}/payments/", {**PAY, "amount_paid": "1"}, "k", 400, "unknown_field"),
    ("post", "{c}/payments/", PAY, NO_KEY, 400, "missing_idempotency_key"),
    ("post", "{c}/payments/", {"payment_id": "PAY-1", "amount": "11"}, "k", 422, "idempotency_key_reused"),
    # --- charges
    ("post", "{c}/charges/{charge}/cancel", {}, "k", 400, "validation_error"),
    ("post", "{c}/charges/{charge}/cancel", {"reason": "x" * 2001}, "k", 400, "validation_error"),
    ("post", "{c}/charges/{charge}/cancel", {"reason": "x", "force": True}, "k", 400, "unknown_field"),
    ("post", "{c}/charges/{charge}/cancel", {"reason": "x"}, NO_KEY, 400, "missing_idempotency_key"),
    ("post", "{c}/charges/not-a-uuid/cancel", {"reason": "x"}, "k", 404, "credit_charge_not_found"),
    (
        "post",
        "{c}/charges/00000000-0000-0000-0000-000000000000/cancel",
        {"reason": "x"},
        "k",
        404,
        "credit_charge_not_found",
    ),
    # --- check
    *[
        ("get", "{c}/check?amount=" + amount, None, NO_KEY, 400, "invalid_amount")
        for amount in ["", "abc", "-1", "0", "1.001", "1e400", "NaN", "%00", "1,5"]
    ],
    ("get", "{c}/check", None, NO_KEY, 400, "invalid_amount"),
    # --- lines
    (
        "post",
        "{line_list}",
        {"customer_id": "zzz", "requested_limit": "1", "payment_terms_days": 30},
        NO_KEY,
        400,
        "validation_error",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "-1", "payment_terms_days": 30},
        NO_KEY,
        400,
        "invalid_amount",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": 100.0, "payment_terms_days": 30},
        NO_KEY,
        400,
        "invalid_amount",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "1", "payment_terms_days": "abc"},
        NO_KEY,
        400,
        "validation_error",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "1", "payment_terms_days": 1.5},
        NO_KEY,
        400,
        "validation_error",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "1", "payment_terms_days": -1},
        NO_KEY,
        400,
        "validation_error",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "1", "payment_terms_days": 30, "limit": "9"},
        NO_KEY,
        400,
        "unknown_field",
    ),
    (
        "post",
        "{line_list}",
        {"customer_id": "{customer_id}", "requested_limit": "1", "payment_terms_days": 30},
        NO_KEY,
        409,
        "credit_line_exists",
    ),
    ("get", "/api/v1/credit/lines/not-a-uuid/", None, NO_KEY, 404, "credit_line_not_found"),
    ("post", "/api/v1/credit/lines/not-a-uuid/approve", {}, NO_KEY, 404, "credit_line_not_found"),
    ("post", "{line}/approve", {}, NO_KEY, 409, "credit_line_invalid_transition"),
    ("post", "{line}/approve", {"credit_limit": "abc"}, NO_KEY, 400, "invalid_amount"),
    ("post", "{line}/approve", {"limit": "5"}, NO_KEY, 400, "unknown_field"),
    ("post", "{line}/reject", {}, NO_KEY, 400, "validation_error"),
    ("post", "{line}/suspend", {"reason": ""}, NO_KEY, 400, "validation_error"),
    ("post", "{line}/suspend", {"reason": ["a"]}, NO_KEY, 400, "validation_error"),
    ("post", "{line}/close", {"reason": "x"}, NO_KEY, 409, "credit_line_has_exposure"),
    ("post", "{line}/reinstate", {"why": "x"}, NO_KEY, 400, "unknown_field"),
    ("post", "{line}/limit", {"credit_limit": "-5", "reason": "x"}, NO_KEY, 400, "invalid_amount"),
    ("post", "{line}/limit", {"credit_limit": 5.5, "reason": "x"}, NO_KEY, 400, "invalid_amount"),
    ("post", "{line}/limit", {"credit_limit": "1e400", "reason": "x"}, NO_KEY, 400, "invalid_amount"),
    (
        "post",
        "{line}/limit",
        {"credit_limit": "5", "reason": "x", "payment_terms_days": 366},
        NO_KEY,
        400,
        "validation_error",
    ),
    ("post", "{line}/limit", {"credit_limit": "5"}, NO_KEY, 400, "validation_error"),
    # --- commercial terms
    ("put", "{c}/terms/", {"volume_discounts": "x"}, NO_KEY, 400, "validation_error"),
    ("put", "{c}/terms/", {}, NO_KEY, 400, "validation_error"),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "1", "discount_percent": "150"}]},
        NO_KEY,
        400,
        "invalid_discount_bracket",
    ),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "-1", "discount_percent": "5"}]},
        NO_KEY,
        400,
        "invalid_amount",
    ),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "1", "discount_percent": 5.5}]},
        NO_KEY,
        400,
        "invalid_amount",
    ),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "1", "discount_percent": "5", "max": "9"}]},
        NO_KEY,
        400,
        "unknown_field",
    ),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "1", "discount_percent": "5"}], "x": 1},
        NO_KEY,
        400,
        "unknown_field",
    ),
    (
        "put",
        "{c}/terms/",
        {"volume_discounts": [{"min_amount": "1", "discount_percent": "5"}] * 2},
        NO_KEY,
        400,
        "invalid_discount_bracket",
    ),
    # --- lists: filters and cursors
    ("get", "{line_list}?status=zzz", None, NO_KEY, 400, "validation_error"),
    ("get", "{line_list}?customer_id=zzz", None, NO_KEY, 404, "customer_not_found"),
    ("get", "{c}/charges/?status=%00", None, NO_KEY, 400, "validation_error"),
    ("get", "{c}/holds/?status=zzz", None, NO_KEY, 400, "validation_error"),
    *[
        ("get", f"{path}?cursor={bad}", None, NO_KEY, 400, "invalid_cursor")
        for path in LISTS
        for bad in BAD_CURSORS
    ],
]


def _fill(template: Any, world: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(line_list="/api/v1/credit/lines/", **world)
    if isinstance(template, dict):
        return {key: _fill(value, world) for key, value in template.items()}
    return template


@pytest.mark.parametrize(
    ("method", "path", "body", "key", "status", "code"),
    CASES,
    ids=[f"{i}-{case[0]}-{case[5]}" for i, case in enumerate(CASES)],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    api_client_for, tenant_a, world, method, path, body, key, status, code
):
    client = api_client_for(tenant_a)
    headers = {} if key is NO_KEY else {"HTTP_IDEMPOTENCY_KEY": key}
    url = _fill(path, world)
    before = snapshot(tenant_a)
    if method == "get":
        response = client.get(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, body, content_type="application/json", **headers)
    else:
        response = getattr(client, method)(url, _fill(body, world) or {}, format="json", **headers)
    assert response.status_code == status, response.content
    payload = response.json()
    assert set(payload) == {"code", "message", "details"}, payload
    assert payload["code"] == code, payload
    assert payload["message"]
    after = snapshot(tenant_a)
    if code == "credit_limit_exceeded":
        # The refusal itself is recorded (credit.limit.exceeded in the outbox); nothing else changes.
        before, after = (*before[:-1], before[-1] + 1), after
    assert after == before
