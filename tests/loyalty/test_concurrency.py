"""Real threads against real PostgreSQL: redemptions never overdraw, a key sent many times at once earns once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from core.tenancy import tenant_context
from loyalty.errors import InsufficientPoints
from loyalty.models import LoyaltyAccount, LoyaltyOperation, LoyaltyTransaction
from loyalty.services import points_earn, points_redeem

pytestmark = pytest.mark.django_db(transaction=True)

# At most this many threads hold a database connection at once (other test runs share the server's
# max_connections); the rest wait at the semaphore, and all still race for the same account row.
MAX_CONNECTIONS = 20


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in `count` threads started together; returns each result or the exception raised."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def target(i: int) -> None:
        start.wait()
        with slots:
            try:
                results[i] = work(i)
            except Exception as exc:
                results[i] = exc
            finally:
                connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    return results


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
        assert LoyaltyOperation.objects.count() == 1
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
    redeemed = sum(r.points for r in results if not isinstance(r, Exception) and r.discount_amount)
    with tenant_context(tenant_a):
        account = LoyaltyAccount.objects.get(customer_id=customer_a.pk)
    assert account.available == 500 + 15 * 100 - redeemed
    # The conftest check then verifies every bucket and award against the ledger.
