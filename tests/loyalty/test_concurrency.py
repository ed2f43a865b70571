"""Real threads against real PostgreSQL: redemptions never overdraw, a key sent many times at once earns once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from core.errors import DomainError
from core.models import IdempotencyRecord
from core.tenancy import tenant_context
from loyalty.errors import InsufficientPoints
from loyalty.models import LoyaltyAccount, LoyaltyTransaction
from loyalty.services import points_earn, points_redeem
from tests.concurrency import run_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_threads_redeeming_from_one_account_never_overdraw_it(tenant_a, customer_a):
    with tenant_context(tenant_a):
        points_earn(customer=customer_a, idempotency_key="seed", points=2_000)

    def redeem(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_redeem(customer=customer_a, idempotency_key=f"r-{i}", points=150, reference=f"T{i}")

    results = run_threads(50, redeem)
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"LoyaltyResult": 13, "InsufficientPoints": 37}, kinds
    assert sorted(r.points_balance for r in results if not isinstance(r, Exception)) == list(
        range(50, 2000, 150)
    )
    with tenant_context(tenant_a):
        account = LoyaltyAccount.objects.get(customer_id=customer_a.pk)
        assert (account.available, account.redeemed) == (50, 1950)
        assert LoyaltyTransaction.objects.filter(type="redeem").count() == 13
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception))


def test_the_same_idempotency_key_from_ten_threads_earns_once(tenant_a, customer_a):
    def earn(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_earn(
                customer=customer_a,
                idempotency_key="pos-42",
                purchase_amount=Decimal("250.00"),
                reference="POS-42",
            )

    results = run_threads(10, earn)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.transaction_id for r in results}) == 1
    assert {r.points_balance for r in results} == {250}
    assert sum(not r.replayed for r in results) == 1
    with tenant_context(tenant_a):
        assert LoyaltyTransaction.objects.filter(type="earn").count() == 1
        assert IdempotencyRecord.objects.filter(scope="loyalty").count() == 1
        assert LoyaltyAccount.objects.get(customer_id=customer_a.pk).available == 250


def test_the_same_redemption_key_from_ten_threads_redeems_once(tenant_a, customer_a):
    with tenant_context(tenant_a):
        points_earn(customer=customer_a, idempotency_key="seed", points=1_000)

    def redeem(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_redeem(customer=customer_a, idempotency_key="checkout-1", points=300)

    results = run_threads(10, redeem)
    assert {r.transaction_id for r in results} != {None} and len({r.transaction_id for r in results}) == 1
    with tenant_context(tenant_a):
        assert LoyaltyAccount.objects.get(customer_id=customer_a.pk).available == 700


def test_first_earns_racing_for_a_new_account_create_one_account(tenant_a, customer_a):
    def earn(i: int) -> Any:
        with tenant_context(tenant_a):
            return points_earn(
                customer=customer_a, idempotency_key=f"first-{i}", purchase_amount=Decimal("10.00")
            )

    results = run_threads(10, earn)
    assert not [r for r in results if isinstance(r, Exception)], results
    with tenant_context(tenant_a):
        assert LoyaltyAccount.objects.count() == 1
        assert LoyaltyAccount.objects.get().available == 100


def test_earns_and_redemptions_interleaved_keep_the_ledger_exact(tenant_a, customer_a):
    with tenant_context(tenant_a):
        points_earn(customer=customer_a, idempotency_key="seed", points=500)

    def work(i: int) -> Any:
        with tenant_context(tenant_a):
            if i % 2:
                return points_earn(customer=customer_a, idempotency_key=f"e-{i}", points=100)
            return points_redeem(customer=customer_a, idempotency_key=f"r-{i}", points=120)

    results = run_threads(30, work)
    # Only the business refusal may come back: a deadlock or any other error fails the test.
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, Exception)), results
    redeemed = sum(r.points for r in results if not isinstance(r, Exception) and r.discount_amount)
    with tenant_context(tenant_a):
        account = LoyaltyAccount.objects.get(customer_id=customer_a.pk)
    assert account.available == 500 + 15 * 100 - redeemed
    # The conftest check then verifies every bucket and award against the ledger.


def test_every_kind_of_change_on_one_account_at_once_never_deadlocks(tenant_a, customer_a, program_for):
    """Earn (with stamps), redeem, return, refund, adjust, expire, release and tier review of one account, all at
    once: each takes the account lock first and the stamp cards after it, so none waits for another in a cycle."""
    from core import clock
    from loyalty.services import (
        points_adjust,
        points_expire,
        points_release_pending,
        points_reverse,
        stamp_rule_save,
        stamps_add,
        tier_review,
    )

    program_for(tenant_a, pending_days=1)
    with tenant_context(tenant_a):
        rules = [
            stamp_rule_save(
                tenant_id=tenant_a.slug, name=name, skus=[sku], stamps_per_card=5, reward_description="free"
            )
            for name, sku in (("Coffee", "LATTE"), ("Bagel", "BAGEL"))
        ]
        for i in range(8):
            points_earn(
                customer=customer_a,
                idempotency_key=f"seed-{i}",
                purchase_amount=Decimal("100.00"),
                reference=f"P{i}",
                items=[{"sku": "LATTE", "quantity": 3}, {"sku": "BAGEL", "quantity": 2}],
            )
    clock.advance(timedelta(days=2))  # the seeded points are released on first touch
    with tenant_context(tenant_a):
        for i in range(4):
            points_redeem(customer=customer_a, idempotency_key=f"paid-{i}", points=100, reference=f"R{i}")

    def work(i: int) -> Any:
        with tenant_context(tenant_a):
            match i % 8:
                case 0:
                    return points_earn(
                        customer=customer_a,
                        idempotency_key=f"e-{i}",
                        purchase_amount=Decimal("50.00"),
                        reference=f"N{i}",
                        items=[{"sku": "BAGEL", "quantity": 1}, {"sku": "LATTE", "quantity": 1}],
                    )
                case 1:
                    return points_redeem(customer=customer_a, idempotency_key=f"r-{i}", points=100)
                case 2:
                    return points_reverse(
                        customer=customer_a, idempotency_key=f"v-{i}", reference=f"P{i // 8}"
                    )
                case 3:
                    return points_reverse(
                        customer=customer_a, idempotency_key=f"f-{i}", reference=f"R{i // 8}"
                    )
                case 4:
                    return points_adjust(
                        customer=customer_a, idempotency_key=f"a-{i}", points=-10, reason="fix", actor="s"
                    )
                case 5:
                    return stamps_add(
                        customer=customer_a, rule_id=rules[i % 2].pk, stamps=4, idempotency_key=f"s-{i}"
                    )
                case 6:
                    return (points_expire(customer=customer_a), points_release_pending(customer=customer_a))
                case _:
                    return tier_review(customer=customer_a)

    results = run_threads(32, work)
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)], results
    # The conftest check then verifies every bucket, award and stamp card against the ledgers.


def test_a_policy_change_racing_with_a_return_is_never_missed(tenant_a, customer_a, program_for, monkeypatch):
    """The return reads the program, then the policy switches from "allow" to "clamp" before it locks the
    account: the return must follow the policy in force once it holds the lock, never the one it read first."""
    from loyalty import services

    program_for(tenant_a, negative_balance_policy="allow")
    with tenant_context(tenant_a):
        points_earn(
            customer=customer_a, idempotency_key="e", purchase_amount=Decimal("900.00"), reference="P1"
        )
        points_redeem(customer=customer_a, idempotency_key="r", points=900)

    program_read, policy_changed = threading.Event(), threading.Event()
    import loyalty.services.maturing

    original = services.program_snapshot_cached

    def program_read_then_wait(tenant_id: str) -> Any:
        snapshot = original(tenant_id)
        if threading.current_thread().name == "returner":
            assert snapshot is not None and snapshot.program.allows_negative  # the process's copy, soon stale
            program_read.set()
            policy_changed.wait(timeout=30)
        return snapshot

    # The lock reads the process's copy of the program before it checks its version under the account lock.
    monkeypatch.setattr(loyalty.services.maturing, "program_snapshot_cached", program_read_then_wait)
    outcome: list[Any] = []

    def give_back() -> None:
        try:
            with tenant_context(tenant_a):
                outcome.append(
                    services.points_reverse(customer=customer_a, idempotency_key="v", reference="P1")
                )
        except Exception as exc:  # pragma: no cover - reported below
            outcome.append(exc)
        finally:
            connection.close()

    returner = threading.Thread(target=give_back, name="returner")
    returner.start()
    assert program_read.wait(timeout=30)
    program_for(tenant_a, negative_balance_policy="clamp")
    policy_changed.set()
    returner.join(timeout=60)
    [result] = outcome
    assert (result.points_balance, result.points_unrecovered) == (0, 900), result
    with tenant_context(tenant_a):
        account = LoyaltyAccount.objects.get(customer_id=customer_a.pk)
    assert (account.available, account.allow_negative) == (0, False)
