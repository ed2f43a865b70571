"""Redemption holds raced on real threads against real PostgreSQL: holds never reserve more than is there, holds
and plain redemptions never spend the same points twice, and a hold committed many times at once redeems once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from core.tenancy import tenant_context
from loyalty.errors import InsufficientPoints, PointsHoldNotActive
from loyalty.models import HoldStatus, LoyaltyAccount, LoyaltyTransaction, PointsHold
from loyalty.services import (
    HoldResult,
    points_earn,
    points_hold_commit,
    points_hold_place,
    points_hold_release,
    points_redeem,
)
from tests.concurrency import run_threads

pytestmark = pytest.mark.django_db(transaction=True)


def _seed(tenant: Any, customer: Any, points: int) -> None:
    with tenant_context(tenant):
        points_earn(customer=customer, idempotency_key="seed", points=points)


def _account(tenant: Any, customer: Any) -> LoyaltyAccount:
    with tenant_context(tenant):
        return LoyaltyAccount.objects.get(customer_id=customer.pk)


def test_thirty_holds_racing_for_the_same_points_never_over_reserve(tenant_a, customer_a):
    _seed(tenant_a, customer_a, 2_000)

    def place(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_hold_place(
                customer=customer_a, idempotency_key=f"h-{i}", points=150, reference=f"T{i}"
            )

    results = run_threads(30, place)
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"HoldResult": 13, "InsufficientPoints": 17}, kinds
    # each hold saw what the ones before it left
    assert sorted(r.available_points for r in results if isinstance(r, HoldResult)) == list(
        range(50, 2000, 150)
    )
    account = _account(tenant_a, customer_a)
    assert (account.available, account.held_points) == (2_000, 1_950)
    with tenant_context(tenant_a):
        assert PointsHold.objects.filter(status=HoldStatus.HELD).count() == 13


def test_holds_and_plain_redemptions_racing_never_spend_the_same_points(tenant_a, customer_a):
    _seed(tenant_a, customer_a, 1_000)

    def hold_or_redeem(i: int) -> Any:
        with tenant_context(tenant_a):
            if i % 2:
                return points_hold_place(customer=customer_a, idempotency_key=f"h-{i}", points=300)
            return points_redeem(customer=customer_a, idempotency_key=f"r-{i}", points=300)

    results = run_threads(20, hold_or_redeem)
    done = [r for r in results if not isinstance(r, Exception)]
    assert len(done) == 3, results  # 3 x 300 of 1,000, whichever kind won
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception))
    held = sum(r.points for r in done if isinstance(r, HoldResult))
    redeemed = sum(r.points for r in done if not isinstance(r, HoldResult))
    account = _account(tenant_a, customer_a)
    assert (account.available, account.held_points, account.redeemed) == (1_000 - redeemed, held, redeemed)
    assert account.available - account.held_points == 100


def test_a_hold_committed_ten_times_at_once_redeems_once(tenant_a, customer_a):
    _seed(tenant_a, customer_a, 1_000)
    with tenant_context(tenant_a):
        placed = points_hold_place(customer=customer_a, idempotency_key="sale-1", points=700, reference="T-1")

    def commit(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_hold_commit(customer=customer_a, hold_id=placed.hold_id)

    results = run_threads(10, commit)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.transaction_id for r in results}) == 1 and None not in {r.transaction_id for r in results}
    assert sum(not r.replayed for r in results) == 1
    account = _account(tenant_a, customer_a)
    assert (account.available, account.held_points, account.redeemed) == (300, 0, 700)
    with tenant_context(tenant_a):
        assert LoyaltyTransaction.objects.filter(type="redeem").count() == 1
        assert PointsHold.objects.get(pk=placed.hold_id).status == HoldStatus.COMMITTED


def test_a_commit_and_a_release_racing_end_the_hold_one_way(tenant_a, customer_a):
    _seed(tenant_a, customer_a, 1_000)
    with tenant_context(tenant_a):
        placed = points_hold_place(customer=customer_a, idempotency_key="sale-2", points=400)

    def end(i: int) -> Any:
        with tenant_context(tenant_a):
            service = points_hold_commit if i % 2 else points_hold_release
            return service(customer=customer_a, hold_id=placed.hold_id)

    results = run_threads(10, end)
    with tenant_context(tenant_a):
        status = PointsHold.objects.get(pk=placed.hold_id).status
        redeems = LoyaltyTransaction.objects.filter(type="redeem").count()
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, PointsHoldNotActive) for r in refused), refused
    assert len(refused) == 5  # the other kind of ending, every one of them
    account = _account(tenant_a, customer_a)
    if status == HoldStatus.COMMITTED:
        assert (redeems, account.available, account.held_points) == (1, 600, 0)
    else:
        assert (status, redeems, account.available, account.held_points) == (HoldStatus.RELEASED, 0, 1_000, 0)
