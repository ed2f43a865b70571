"""Redemption holds through the services: held points are not available to other redemptions or quotes; a commit
redeems exactly them, once; a release frees them; a hold past its time releases itself at the next operation on
the account (or by the periodic job), and commits late only while its points are still there."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from core import clock
from core.errors import IdempotencyKeyReused, InvalidInput
from core.models import OutboxEvent
from loyalty import tasks
from loyalty.errors import (
    BelowMinimumRedemption,
    InsufficientPoints,
    PointsHoldExpired,
    PointsHoldNotActive,
    PointsHoldNotFound,
    RedemptionExceedsPurchaseShare,
)
from loyalty.models import HoldStatus, LoyaltyAccount, LoyaltyTransaction, PointsHold
from loyalty.schedule import beat_schedule
from loyalty.services import (
    commit_key,
    points_hold_commit,
    points_hold_place,
    points_hold_release,
    points_redeem,
    points_reverse,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(customer_a, earn):
    earn(customer_a, points=1_000)
    return customer_a


@pytest.fixture
def call(in_tenant):
    """`call(service, customer, **kwargs)` in the customer's tenant transaction, as a door runs it."""

    def _call(service, customer, **kwargs):
        with in_tenant(customer.tenant_id):
            return service(customer=customer, **kwargs)

    return _call


@pytest.fixture
def hold(call):
    def _hold(customer, points, *, key=None, **kwargs):
        return call(
            points_hold_place, customer, idempotency_key=key or uuid.uuid4().hex, points=points, **kwargs
        )

    return _hold


@pytest.fixture
def account(in_tenant):
    def _account(customer):
        with in_tenant(customer.tenant_id):
            return LoyaltyAccount.objects.get(customer_id=customer.pk)

    return _account


def test_held_points_are_not_available_to_a_redemption_or_a_quote(funded, hold, call, account):
    placed = hold(funded, 600, reference="T-1", purchase_amount="20000")
    assert (placed.status, placed.points, placed.discount_amount, placed.currency, placed.reference) == (
        "held",
        600,
        Decimal("6.00"),
        "CLP",
        "T-1",
    )
    assert (placed.points_balance, placed.held_points, placed.available_points) == (1000, 600, 400)
    assert placed.expires_at == clock.now() + timedelta(seconds=300)  # the default: five minutes
    assert (account(funded).available, account(funded).held_points) == (1000, 600)

    with pytest.raises(InsufficientPoints) as refused:
        call(points_redeem, funded, idempotency_key="r-1", points=500)
    assert refused.value.details == {"available": 400, "requested": 500}
    with pytest.raises(InsufficientPoints):
        call(points_redeem, funded, idempotency_key="", points=500, dry_run=True)
    with pytest.raises(InsufficientPoints):
        hold(funded, 500)
    quote = call(points_redeem, funded, idempotency_key="", points=400, dry_run=True)
    assert quote.discount_amount == Decimal("4.00")
    assert call(points_redeem, funded, idempotency_key="r-2", points=400).points_balance == 600
    with pytest.raises(InsufficientPoints):
        hold(funded, 100)


def test_commit_redeems_exactly_the_held_points_once(funded, hold, call, account, in_tenant):
    placed = hold(funded, 600, reference="T-2", purchase_amount="20000")
    committed = call(points_hold_commit, funded, hold_id=placed.hold_id, actor="till-1")
    assert (committed.status, committed.replayed) == ("committed", False)
    assert (committed.points_balance, committed.held_points, committed.available_points) == (400, 0, 400)
    redemption = committed.redemption
    assert redemption is not None and redemption.transaction_id == committed.transaction_id
    assert (redemption.points, redemption.discount_amount, redemption.points_balance) == (
        600,
        Decimal("6.00"),
        400,
    )
    with in_tenant(funded.tenant_id):
        txn = LoyaltyTransaction.objects.get(type="redeem")
        assert (txn.points, txn.reference, txn.purchase_amount, txn.idempotency_key, txn.actor) == (
            600,
            "T-2",
            Decimal("20000.00"),
            commit_key(placed.hold_id),
            "till-1",
        )
        assert PointsHold.objects.get(pk=placed.hold_id).redemption_id == txn.pk
        redeemed = OutboxEvent.objects.filter(event_type="loyalty.points.redeemed")
        assert [e.payload["data"]["points"] for e in redeemed] == [600]

    again = call(points_hold_commit, funded, hold_id=str(placed.hold_id))
    assert (again.status, again.replayed, again.transaction_id) == ("committed", True, txn.pk)
    assert account(funded).available == 400
    with in_tenant(funded.tenant_id):
        assert LoyaltyTransaction.objects.filter(type="redeem").count() == 1
    with pytest.raises(PointsHoldNotActive):
        call(points_hold_release, funded, hold_id=placed.hold_id)


def test_release_frees_the_points_and_a_released_hold_cannot_be_committed(funded, hold, call, account):
    placed = hold(funded, 700)
    released = call(points_hold_release, funded, hold_id=placed.hold_id)
    assert (released.status, released.replayed, released.available_points, released.held_points) == (
        "released",
        False,
        1000,
        0,
    )
    assert call(points_hold_release, funded, hold_id=placed.hold_id).replayed is True
    with pytest.raises(PointsHoldNotActive) as refused:
        call(points_hold_commit, funded, hold_id=placed.hold_id)
    assert refused.value.details["status"] == "released"
    assert call(points_redeem, funded, idempotency_key="r-3", points=1000).points_balance == 0
    assert account(funded).held_points == 0


def test_a_hold_past_its_time_releases_itself_at_the_next_operation(
    funded, hold, call, account, frozen_clock, in_tenant
):
    placed = hold(funded, 800, ttl_seconds=60)
    assert placed.expires_at == clock.now() + timedelta(seconds=60)
    frozen_clock(seconds=59)
    with pytest.raises(InsufficientPoints):
        call(points_redeem, funded, idempotency_key="", points=300, dry_run=True)
    frozen_clock(seconds=1)
    # the quote reads no lock and writes nothing, but no longer counts the hold
    assert call(points_redeem, funded, idempotency_key="", points=1000, dry_run=True).points == 1000
    assert account(funded).held_points == 800  # nobody locked the account yet
    assert call(points_redeem, funded, idempotency_key="r-4", points=300).points_balance == 700
    assert (account(funded).held_points, account(funded).next_hold_expiry_at) == (0, None)
    with in_tenant(funded.tenant_id):
        expired = PointsHold.objects.get(pk=placed.hold_id)
    assert (expired.status, expired.ended_at) == (HoldStatus.EXPIRED, clock.now())
    assert call(points_hold_release, funded, hold_id=placed.hold_id).status == "expired"  # changes nothing


def test_an_expired_hold_commits_late_only_while_its_points_are_still_there(funded, hold, call, frozen_clock):
    late = hold(funded, 400, ttl_seconds=30)
    gone = hold(funded, 500, ttl_seconds=30)
    frozen_clock(minutes=1)
    committed = call(points_hold_commit, funded, hold_id=late.hold_id)
    assert (committed.status, committed.points_balance, committed.available_points) == ("committed", 600, 600)
    call(points_redeem, funded, idempotency_key="r-5", points=200)  # 400 left: not enough for the 500
    with pytest.raises(PointsHoldExpired) as refused:
        call(points_hold_commit, funded, hold_id=gone.hold_id)
    assert refused.value.details == {
        "hold_id": str(gone.hold_id),
        "expired_at": gone.expires_at.isoformat(),
        "available": 400,
        "requested": 500,
    }


def test_the_periodic_job_releases_holds_of_accounts_nobody_touches(
    funded, hold, account, frozen_clock, customer_b, earn
):
    hold(funded, 300, ttl_seconds=120)
    hold(funded, 200, ttl_seconds=600)
    earn(customer_b, points=500)
    hold(customer_b, 500, ttl_seconds=120)
    assert tasks.expire_holds() == {}
    frozen_clock(minutes=3)
    assert tasks.expire_holds() == {
        "tenant-a": {"done": 1, "failed": 0},
        "tenant-b": {"done": 1, "failed": 0},
    }
    assert account(funded).held_points == 200
    assert account(customer_b).held_points == 0
    assert tasks.expire_holds() == {}
    schedule = beat_schedule({"LOYALTY_HOLD_EXPIRY_INTERVAL_SECONDS": 60.0})
    assert schedule["loyalty.holds-expire"]["task"] == "loyalty.expire_holds"
    assert schedule["loyalty.holds-expire"]["schedule"] == 60.0


def test_a_hold_is_idempotent_by_its_key(funded, hold, account):
    first = hold(funded, 300, key="sale-1", reference="T-6")
    again = hold(funded, 300, key="sale-1", reference="T-6")
    assert (again.hold_id, again.replayed, first.replayed) == (first.hold_id, True, False)
    assert account(funded).held_points == 300
    with pytest.raises(IdempotencyKeyReused):
        hold(funded, 301, key="sale-1", reference="T-6")


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"points": 50}, BelowMinimumRedemption, "below_minimum_redemption"),
        ({"points": 600, "purchase_amount": "5"}, RedemptionExceedsPurchaseShare, None),
        ({"points": 100, "ttl_seconds": 0}, InvalidInput, "invalid_hold_expiry"),
        ({"points": 100, "ttl_seconds": 86_401}, InvalidInput, "invalid_hold_expiry"),
        ({"points": 100, "ttl_seconds": "60"}, InvalidInput, "invalid_hold_expiry"),
        ({"points": 0}, InvalidInput, "invalid_points"),
        ({"points": 100, "reference": "x" * 101}, InvalidInput, "invalid_reference"),
    ],
)
def test_a_hold_is_refused_as_a_redemption_would_be(funded, hold, account, kwargs, error, code):
    with pytest.raises(error) as refused:
        hold(funded, **kwargs)
    assert code is None or refused.value.code == code
    assert account(funded).held_points == 0


def test_an_unknown_or_foreign_hold_is_not_found(funded, hold, call, customer_b, earn):
    placed = hold(funded, 100)
    for hold_id in (uuid.uuid4(), "not-a-uuid"):
        with pytest.raises(PointsHoldNotFound):
            call(points_hold_commit, funded, hold_id=hold_id)
    earn(customer_b, points=100)
    with pytest.raises(PointsHoldNotFound):
        call(points_hold_release, customer_b, hold_id=placed.hold_id)  # another tenant's: never "forbidden"


def test_a_return_that_takes_back_held_points_makes_the_commit_refused(customer_a, earn, hold, call, account):
    earn(customer_a, "1000.00", key="pos-9", reference="T-9")
    placed = hold(customer_a, 900)
    call(points_reverse, customer_a, idempotency_key="ret-9", reference="T-9", amount=Decimal("500.00"))
    assert (account(customer_a).available, account(customer_a).held_points) == (500, 900)
    with pytest.raises(InsufficientPoints):
        call(points_hold_commit, customer_a, hold_id=placed.hold_id)
    assert account(customer_a).held_points == 900  # the refused commit changed nothing: release it
    assert call(points_hold_release, customer_a, hold_id=placed.hold_id).available_points == 500


def test_a_blocked_customer_cannot_hold_points_and_a_hold_placed_before_does_not_commit(
    funded, hold, call, account, in_tenant
):
    from customers.errors import CustomerBlocked
    from customers.services import customer_update

    placed = hold(funded, 200)
    with in_tenant(funded.tenant_id):
        customer_update(customer=funded, data={"status": "blocked"}, actor="t")
        funded.refresh_from_db()
    with pytest.raises(CustomerBlocked):
        hold(funded, 100)
    with pytest.raises(CustomerBlocked):
        call(points_hold_commit, funded, hold_id=placed.hold_id)
    assert account(funded).held_points == 200
    call(points_hold_release, funded, hold_id=placed.hold_id)
    assert account(funded).held_points == 0
