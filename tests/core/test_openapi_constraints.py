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
