"""AddLoyaltyPoints and RedeemLoyaltyPoints over gRPC: answers, dry runs, business refusals, idempotent replays,
malformed input, and 50 concurrent redemptions that never overdraw."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

pytestmark = pytest.mark.django_db(transaction=True)


def earn(customer, key: str, **fields) -> pb.AddLoyaltyPointsRequest:
    return pb.AddLoyaltyPointsRequest(customer_id=str(customer.id), idempotency_key=key, **fields)


def redeem(customer, key: str, points: int, **fields) -> pb.RedeemLoyaltyPointsRequest:
    return pb.RedeemLoyaltyPointsRequest(
        customer_id=str(customer.id), idempotency_key=key, points=points, **fields
    )


def test_earn_for_a_purchase_and_climb_a_tier(grpc_a, customer_a):
    first = grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-1", purchase_amount="400.00", reference="T-1"))
    assert uuid.UUID(first.transaction_id)
    assert (first.points, first.points_balance, first.discount_amount, first.currency) == (
        400,
        400,
        "0.00",
        "CLP",
    )
    assert (first.tier, first.previous_tier, first.tier_changed) == ("bronze", "bronze", False)

    second = grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-2", purchase_amount="600"))
    assert (second.points_balance, second.tier, second.previous_tier, second.tier_changed) == (
        1000,
        "silver",
        "bronze",
        True,
    )


def test_earn_explicit_bonus_points_and_line_items(grpc_a, customer_a):
    bonus = grpc_a.AddLoyaltyPoints(earn(customer_a, "bonus-1", points=250, reference="birthday"))
    assert (bonus.points, bonus.points_balance) == (250, 250)
    items = [pb.LineItem(sku="COF-1", category="coffee", quantity="2", unit_price="1500")]
    with_items = grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-3", purchase_amount="3000", items=items))
    assert with_items.points == 3000


def test_a_blocked_customer_neither_earns_nor_redeems(grpc_a, tenant_a, customer_a):
    """A replay of an earn made before the block still answers the first result; anything new is refused."""
    from core.tenancy import tenant_context
    from customers.services import customer_update

    before = grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-b1", purchase_amount="1000"))
    with tenant_context(tenant_a):
        customer_update(customer=customer_a, data={"status": "blocked"}, actor="t")
    for name, request in (
        ("AddLoyaltyPoints", earn(customer_a, "pos-b2", purchase_amount="500")),
        ("AddLoyaltyPoints", earn(customer_a, "bonus-b", points=10)),
        ("RedeemLoyaltyPoints", redeem(customer_a, "r-b1", 100)),
        ("RedeemLoyaltyPoints", redeem(customer_a, "", 100, dry_run=True)),
    ):
        failure = grpc_a.fails(name, request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.FAILED_PRECONDITION, "customer_blocked")
    assert grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-b1", purchase_amount="1000")) == before
    assert grpc_a.GetCustomer(by_id(customer_a)).loyalty.points_balance == 1000


def test_get_customer_follows_the_points(grpc_a, customer_a):
    assert grpc_a.GetCustomer(by_id(customer_a)).loyalty.points_balance == 0  # now cached
    grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-4", purchase_amount="1200"))
    loyalty = grpc_a.GetCustomer(by_id(customer_a)).loyalty
    assert (loyalty.points_balance, loyalty.tier) == (1200, "silver")
    grpc_a.RedeemLoyaltyPoints(redeem(customer_a, "r-4", 200))
    assert grpc_a.GetCustomer(by_id(customer_a)).loyalty.points_balance == 1000


def test_redeem_and_its_dry_run(grpc_a, customer_a):
    grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-5", purchase_amount="800"))
    quote = grpc_a.RedeemLoyaltyPoints(redeem(customer_a, "", 500, dry_run=True))
    assert (quote.transaction_id, quote.points, quote.points_balance, quote.discount_amount) == (
        "",
        500,
        300,
        "5.00",
    )
    assert grpc_a.GetCustomer(by_id(customer_a)).loyalty.points_balance == 800  # nothing written

    done = grpc_a.RedeemLoyaltyPoints(redeem(customer_a, "r-5", 500, reference="T-5"))
    assert uuid.UUID(done.transaction_id)
    assert (done.points, done.points_balance, done.discount_amount, done.currency) == (
        500,
        300,
        "5.00",
        "CLP",
    )


def test_replays_return_the_first_result_and_a_reused_key_is_already_exists(grpc_a, customer_a):
    first = grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-6", purchase_amount="700"))
    assert grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-6", purchase_amount="700")) == first
    spent = grpc_a.RedeemLoyaltyPoints(redeem(customer_a, "r-6", 300))
    assert grpc_a.RedeemLoyaltyPoints(redeem(customer_a, "r-6", 300)) == spent
    assert grpc_a.GetCustomer(by_id(customer_a)).loyalty.points_balance == 400

    for method, request in [
        ("AddLoyaltyPoints", earn(customer_a, "pos-6", purchase_amount="701")),
        ("RedeemLoyaltyPoints", redeem(customer_a, "r-6", 301)),
    ]:
        failure = grpc_a.fails(method, request)
        assert (failure.code, failure.error_code) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "idempotency_key_reused",
        )


def test_business_refusals_are_failed_precondition(grpc_a, customer_a):
    grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-7", purchase_amount="300"))
    for request, code in [
        (redeem(customer_a, "r-7", 400), "insufficient_points"),
        (redeem(customer_a, "", 400, dry_run=True), "insufficient_points"),
        (redeem(customer_a, "r-8", 50), "below_minimum_redemption"),
    ]:
        failure = grpc_a.fails("RedeemLoyaltyPoints", request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.FAILED_PRECONDITION, code)


def test_another_tenants_customer_is_not_found(grpc_b, customer_a):
    for method, request in [
        ("AddLoyaltyPoints", earn(customer_a, "x-1", purchase_amount="10")),
        ("RedeemLoyaltyPoints", redeem(customer_a, "x-2", 100)),
        ("RedeemLoyaltyPoints", redeem(customer_a, "", 100, dry_run=True)),
    ]:
        failure = grpc_b.fails(method, request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")


def test_malformed_requests_are_invalid_argument(grpc_a, customer_a):
    good = {"customer_id": str(customer_a.id), "idempotency_key": "k-1", "purchase_amount": "10.00"}
    cases = [
        ({"purchase_amount": "", "points": 5}, ""),  # control: valid with points alone
        ({"points": 5}, "invalid_earn_request"),  # both
        ({"purchase_amount": ""}, "invalid_earn_request"),  # neither
        ({"purchase_amount": "-5"}, "invalid_amount"),
        ({"purchase_amount": "0"}, "invalid_amount"),
        ({"purchase_amount": "abc"}, "invalid_amount"),
        ({"purchase_amount": "10.001"}, "invalid_amount"),
        ({"purchase_amount": "1" * 500}, "invalid_amount"),
        ({"purchase_amount": "", "points": -5}, "invalid_points"),
        ({"purchase_amount": "", "points": 0}, "invalid_points"),
        ({"purchase_amount": "", "points": 10**15}, "invalid_points"),
        ({"customer_id": ""}, "missing_customer_id"),
        ({"customer_id": "abc"}, "invalid_customer_id"),
        ({"idempotency_key": ""}, "missing_idempotency_key"),
        ({"idempotency_key": "k" * 201}, "invalid_idempotency_key"),
        ({"idempotency_key": "k\x00"}, "invalid_idempotency_key"),
        ({"reference": "r" * 101}, "invalid_reference"),
        ({"currency": "USD"}, "invalid_currency"),
        ({"currency": "x" * 1000}, "invalid_currency"),
        ({"items": [pb.LineItem(sku="A", quantity="-1", unit_price="1")]}, "invalid_amount"),
        ({"items": [pb.LineItem(sku="", quantity="1", unit_price="1")]}, "missing_sku"),
    ]
    for n, (changes, code) in enumerate(cases):
        request = pb.AddLoyaltyPointsRequest(**{**good, "idempotency_key": f"k-{n}", **changes})
        if not code:
            assert grpc_a.AddLoyaltyPoints(request).points == 5
            continue
        failure = grpc_a.fails("AddLoyaltyPoints", request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, code), changes

    good_redeem = {"customer_id": str(customer_a.id), "idempotency_key": "r-1", "points": 100}
    for changes, code in [
        ({"points": 0}, "invalid_points"),
        ({"points": -100}, "invalid_points"),
        ({"idempotency_key": ""}, "missing_idempotency_key"),
        ({"idempotency_key": " " * 5}, "missing_idempotency_key"),
        ({"customer_id": "1-2-3"}, "invalid_customer_id"),
        ({"reference": "\x07bell"}, "invalid_reference"),
        ({"purchase_amount": "lots"}, "invalid_amount"),
    ]:
        failure = grpc_a.fails(
            "RedeemLoyaltyPoints", pb.RedeemLoyaltyPointsRequest(**{**good_redeem, **changes})
        )
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, code), changes


def test_50_concurrent_redemptions_never_overdraw(grpc_a, customer_a, tenant_a):
    from core.tenancy import tenant_context
    from loyalty.selectors import loyalty_summary

    grpc_a.AddLoyaltyPoints(earn(customer_a, "pos-9", purchase_amount="1000"))

    def one(n: int) -> str:
        try:
            return str(grpc_a.RedeemLoyaltyPoints(redeem(customer_a, f"c-{n}", 100)).points_balance)
        except grpc.RpcError as exc:
            return dict(exc.trailing_metadata())["error-code"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    balances = sorted(int(r) for r in results if r.isdigit())
    assert balances == list(range(0, 1000, 100))  # 10 redemptions, each saw its own balance
    assert results.count("insufficient_points") == 40
    with tenant_context(tenant_a):
        assert loyalty_summary(customer_a).points_balance == 0
