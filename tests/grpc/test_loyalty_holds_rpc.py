"""Redemption holds over the real gRPC server: HoldLoyaltyPoints reserves points that RedeemLoyaltyPoints (and its
dry run) can no longer spend, CommitLoyaltyPointsHold redeems exactly them once (also when called at once from
many clients), ReleaseLoyaltyPointsHold frees them; refusals carry their codes."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import grpc
import pytest

from core import clock
from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def funded(grpc_a, customer_a):
    grpc_a.AddLoyaltyPoints(
        pb.AddLoyaltyPointsRequest(customer_id=str(customer_a.id), idempotency_key="seed", points=1_000)
    )
    return customer_a


def hold(customer, key: str, points: int, **fields) -> pb.HoldLoyaltyPointsRequest:
    return pb.HoldLoyaltyPointsRequest(
        customer_id=str(customer.id), idempotency_key=key, points=points, **fields
    )


def commit(customer, hold_id: str) -> pb.CommitLoyaltyPointsHoldRequest:
    return pb.CommitLoyaltyPointsHoldRequest(customer_id=str(customer.id), hold_id=hold_id)


def release(customer, hold_id: str) -> pb.ReleaseLoyaltyPointsHoldRequest:
    return pb.ReleaseLoyaltyPointsHoldRequest(customer_id=str(customer.id), hold_id=hold_id)


def redeem(customer, key: str, points: int, **fields) -> pb.RedeemLoyaltyPointsRequest:
    return pb.RedeemLoyaltyPointsRequest(
        customer_id=str(customer.id), idempotency_key=key, points=points, **fields
    )


def test_hold_then_commit_redeems_exactly_the_held_points(grpc_a, funded):
    held = grpc_a.HoldLoyaltyPoints(hold(funded, "sale-1", 600, reference="T-1", purchase_amount="20000"))
    assert uuid.UUID(held.hold_id)
    assert (held.status, held.points, held.discount_amount, held.currency, held.reference) == (
        "held",
        600,
        "6.00",
        "CLP",
        "T-1",
    )
    assert (held.points_balance, held.held_points, held.available_points, held.purchase_amount) == (
        1000,
        600,
        400,
        "20000.00",
    )
    expires = datetime.fromisoformat(held.expires_at)
    assert timedelta(seconds=290) < expires - clock.now() <= timedelta(seconds=300)
    assert (
        grpc_a.HoldLoyaltyPoints(hold(funded, "sale-1", 600, reference="T-1", purchase_amount="20000"))
        == held
    )

    for request in (
        redeem(funded, "r-1", 500),
        redeem(funded, "", 500, dry_run=True),
        hold(funded, "sale-x", 500),
    ):
        method = (
            "HoldLoyaltyPoints" if isinstance(request, pb.HoldLoyaltyPointsRequest) else "RedeemLoyaltyPoints"
        )
        failure = grpc_a.fails(method, request)
        assert (failure.code, failure.error_code) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient_points",
        )
    assert (
        grpc_a.GetCustomer(by_id(funded)).loyalty.points_balance == 1000
    )  # held points are still the balance

    done = grpc_a.CommitLoyaltyPointsHold(commit(funded, held.hold_id))
    assert uuid.UUID(done.transaction_id)
    assert (done.hold_id, done.points, done.points_balance, done.discount_amount, done.currency) == (
        held.hold_id,
        600,
        400,
        "6.00",
        "CLP",
    )
    assert grpc_a.CommitLoyaltyPointsHold(commit(funded, held.hold_id)) == done  # the same redemption again
    assert grpc_a.GetCustomer(by_id(funded)).loyalty.points_balance == 400
    failure = grpc_a.fails("ReleaseLoyaltyPointsHold", release(funded, held.hold_id))
    assert (failure.code, failure.error_code) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "points_hold_not_active",
    )


def test_release_frees_the_points(grpc_a, funded):
    held = grpc_a.HoldLoyaltyPoints(hold(funded, "sale-2", 900, ttl_seconds=60))
    assert datetime.fromisoformat(held.expires_at) - clock.now() <= timedelta(seconds=60)
    freed = grpc_a.ReleaseLoyaltyPointsHold(release(funded, held.hold_id))
    assert (freed.status, freed.held_points, freed.available_points) == ("released", 0, 1000)
    assert grpc_a.ReleaseLoyaltyPointsHold(release(funded, held.hold_id)) == freed  # again: no change
    failure = grpc_a.fails("CommitLoyaltyPointsHold", commit(funded, held.hold_id))
    assert (failure.code, failure.error_code) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "points_hold_not_active",
    )
    assert grpc_a.RedeemLoyaltyPoints(redeem(funded, "r-2", 1000)).points_balance == 0


def test_refusals_and_malformed_holds(grpc_a, grpc_b, funded):
    cases = [
        (
            "HoldLoyaltyPoints",
            hold(funded, "", 100),
            grpc.StatusCode.INVALID_ARGUMENT,
            "missing_idempotency_key",
        ),
        ("HoldLoyaltyPoints", hold(funded, "k", 0), grpc.StatusCode.INVALID_ARGUMENT, "invalid_points"),
        (
            "HoldLoyaltyPoints",
            hold(funded, "k", 100, ttl_seconds=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_hold_expiry",
        ),
        (
            "HoldLoyaltyPoints",
            hold(funded, "k", 100, ttl_seconds=10**9),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_hold_expiry",
        ),
        (
            "HoldLoyaltyPoints",
            hold(funded, "k", 100, purchase_amount="1.001"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_amount",
        ),
        (
            "HoldLoyaltyPoints",
            hold(funded, "k", 50),
            grpc.StatusCode.FAILED_PRECONDITION,
            "below_minimum_redemption",
        ),
        (
            "HoldLoyaltyPoints",
            hold(funded, "k", 5000),
            grpc.StatusCode.FAILED_PRECONDITION,
            "insufficient_points",
        ),
        (
            "CommitLoyaltyPointsHold",
            commit(funded, "nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_hold_id",
        ),
        ("CommitLoyaltyPointsHold", commit(funded, ""), grpc.StatusCode.INVALID_ARGUMENT, "missing_hold_id"),
        (
            "CommitLoyaltyPointsHold",
            commit(funded, str(uuid.uuid4())),
            grpc.StatusCode.NOT_FOUND,
            "points_hold_not_found",
        ),
        (
            "ReleaseLoyaltyPointsHold",
            release(funded, str(uuid.uuid4())),
            grpc.StatusCode.NOT_FOUND,
            "points_hold_not_found",
        ),
    ]
    for method, request, status, code in cases:
        failure = grpc_a.fails(method, request)
        assert (failure.code, failure.error_code) == (status, code), (method, request)
    held = grpc_a.HoldLoyaltyPoints(hold(funded, "sale-3", 100))
    failure = grpc_b.fails("CommitLoyaltyPointsHold", commit(funded, held.hold_id))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")
    failure = grpc_a.fails("HoldLoyaltyPoints", hold(funded, "sale-3", 101))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")


def test_an_expired_hold_whose_points_were_spent_is_points_hold_expired(grpc_a, funded):
    clock.freeze(clock.now())
    try:
        held = grpc_a.HoldLoyaltyPoints(hold(funded, "sale-4", 800, ttl_seconds=30))
        clock.advance(timedelta(seconds=31))
        # the redemption releases the expired hold first, then spends its points
        assert grpc_a.RedeemLoyaltyPoints(redeem(funded, "r-4", 500)).points_balance == 500
        failure = grpc_a.fails("CommitLoyaltyPointsHold", commit(funded, held.hold_id))
        assert (failure.code, failure.error_code) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "points_hold_expired",
        )
        assert failure.trailers["error-details"]
    finally:
        clock.unfreeze()


def test_twenty_clients_committing_one_hold_at_once_redeem_once(grpc_a, funded):
    held = grpc_a.HoldLoyaltyPoints(hold(funded, "sale-5", 700))
    with ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(lambda _: grpc_a.CommitLoyaltyPointsHold(commit(funded, held.hold_id)), range(20))
        )
    assert len({a.transaction_id for a in answers}) == 1 and answers[0].transaction_id
    assert {a.points_balance for a in answers} == {300}
    assert grpc_a.GetCustomer(by_id(funded)).loyalty.points_balance == 300
