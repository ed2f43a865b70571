"""The OpenAPI schema states the constraints the service applies (what schemathesis and clients generate from)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from core.api import AMOUNT_OR_ZERO_PATTERN, AMOUNT_PATTERN
from core.errors import InvalidAmount
from core.money import parse_amount

AMOUNTS = [
    "0",
    "0.0",
    "0.00",
    "0.01",
    "0.1",
    "0.10",
    "1",
    "1.5",
    "125.50",
    "999999999999.99",
    "1000000000000",
    "1.234",
    "-1",
    "+1",
    "1.",
    ".5",
    "1e2",
    "１００",
    " 1",
    "00.5",
    "12345678901.5",
]


def accepted(text: str, *, allow_zero: bool) -> bool:
    try:
        parse_amount(text, allow_zero=allow_zero)
    except InvalidAmount:
        return False
    return True


@pytest.mark.parametrize("text", AMOUNTS)
def test_every_amount_the_schema_allows_is_one_the_service_accepts(text: str) -> None:
    for pattern, allow_zero in ((AMOUNT_PATTERN, False), (AMOUNT_OR_ZERO_PATTERN, True)):
        if re.fullmatch(pattern, text):
            assert accepted(text, allow_zero=allow_zero), (pattern, text)


@pytest.mark.parametrize("text", ["0.01", "1", "125.50", "999999999999.99", "0.5"])
def test_the_amount_pattern_allows_the_ordinary_amounts(text: str) -> None:
    assert re.fullmatch(AMOUNT_PATTERN, text)
    assert re.fullmatch(AMOUNT_OR_ZERO_PATTERN, text)
    assert Decimal(text) > 0


@pytest.mark.django_db
def test_the_schema_states_the_amount_pattern_and_the_points_bounds(client) -> None:
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert schema["UsageInputRequest"]["properties"]["amount"]["pattern"] == AMOUNT_PATTERN
    assert schema["EarnInputRequest"]["properties"]["points"]["minimum"] == 1
    assert schema["AdjustInputRequest"]["properties"]["points"]["minimum"] < 0


@pytest.fixture(scope="module")
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_id_of_ours_in_a_path_is_a_uuid_and_a_crm_id_has_its_pattern(schema):
    ids = [
        parameter
        for operations in schema["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    ]
    ours = [p for p in ids if p["name"] != "external_id"]
    assert ours and all(p["schema"] == {"type": "string", "format": "uuid"} for p in ours), ours
    crm = [p for p in ids if p["name"] == "external_id"]
    assert crm and all(p["schema"].get("pattern") for p in crm), crm


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/customers/not-a-uuid/", "/api/v1/credit/lines/42/"])
def test_an_id_that_is_not_a_uuid_is_not_found(api_a, path):
    assert api_a.get(path).status_code == 404


def test_every_strict_body_is_closed_and_an_item_is_open(schema):
    components = schema["components"]["schemas"]
    for name in ("EarnInputRequest", "CustomerInputRequest", "UsageInputRequest", "StampRuleRequest"):
        assert components[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in components["ItemInputRequest"]  # a POS may add its own item fields


@pytest.mark.django_db
def test_a_field_the_body_does_not_know_is_refused(api_a, customer_a):
    response = api_a.post(
        f"/api/v1/customers/{customer_a.id}/loyalty/earn/",
        {"points": 5, "bonus": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert (response.status_code, response.json()["details"]["fields"]["bonus"][0]["code"]) == (
        400,
        "unknown_field",
    )


def test_the_rules_across_fields_are_stated_for_creation_and_not_for_a_patch(schema):
    components = schema["components"]["schemas"]
    assert components["EarnInputRequest"]["oneOf"] == [
        {"required": ["purchase_amount"]},
        {"required": ["points"]},
    ]
    assert len(components["CustomerInputRequest"]["oneOf"]) == 2
    assert "oneOf" not in components["PatchedCustomerInputRequest"]
    assert len(components["StampRuleRequest"]["anyOf"]) == 2


def test_the_writes_that_need_an_idempotency_key_say_so(schema):
    def key(path: str) -> dict | None:
        headers = [p for p in schema["paths"][path]["post"].get("parameters", []) if p["in"] == "header"]
        return next((p for p in headers if p["name"] == "Idempotency-Key"), None)

    for action in ("earn", "redeem", "reverse", "adjust", "stamps"):
        found = key(f"/api/v1/customers/{{customer_id}}/loyalty/{action}/")
        assert found and found["required"] is True, action
    assert key("/api/v1/customers/{customer_id}/loyalty/redeem/quote/") is None
