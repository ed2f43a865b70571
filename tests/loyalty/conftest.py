"""Loyalty fixtures: a frozen clock, programs, customers with points, and the ledger-consistency check that runs
after every test of this package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core import clock

START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[Callable[..., datetime]]:
    """Every loyalty test starts at START on a frozen clock; `frozen_clock(days=..)` moves it forward."""
    from datetime import timedelta

    clock.freeze(START)

    def _advance(**delta: Any) -> datetime:
        return clock.advance(timedelta(**delta))

    yield _advance
    clock.unfreeze()


@pytest.fixture(autouse=True)
def ledger_consistency(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the database: cached balances equal the ledger's sums, for every account."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and "db" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("db")
    yield
    from tests.loyalty.ledger import assert_all_ledgers_consistent

    assert_all_ledgers_consistent()


@pytest.fixture
def program_for(in_tenant: Callable[[Any], Any]) -> Callable[..., Any]:
    """Configure a tenant's program: `program_for(tenant, pending_days=14, tiers=[...])`."""
    from loyalty.services import program_update

    def _configure(tenant: Any, *, tiers: list[dict[str, Any]] | None = None, **settings: Any) -> Any:
        with in_tenant(tenant):
            return program_update(tenant_id=tenant.slug, data=settings, tiers=tiers, actor="test")

    return _configure


# Round numbers that make tier tests readable: silver 1,000, gold 5,000, platinum 20,000 (the defaults).
NO_EXPIRY = {"expiry_months": None}


@pytest.fixture
def earn(in_tenant: Callable[[Any], Any]) -> Callable[..., Any]:
    """`earn(customer, "100.00", key=..., reference=...)` or `earn(customer, points=50)` in the customer's tenant."""
    from loyalty.services import points_earn

    counter = {"n": 0}

    def _earn(customer: Any, amount: str | None = None, *, key: str | None = None, **kwargs: Any) -> Any:
        counter["n"] += 1
        with in_tenant(customer.tenant_id):
            return points_earn(
                customer=customer,
                idempotency_key=key or f"earn-{counter['n']}",
                purchase_amount=Decimal(amount) if amount is not None else None,
                **kwargs,
            )

    return _earn


@pytest.fixture
def redeem(in_tenant: Callable[[Any], Any]) -> Callable[..., Any]:
    from loyalty.services import points_redeem

    counter = {"n": 0}

    def _redeem(customer: Any, points: int, *, key: str | None = None, **kwargs: Any) -> Any:
        counter["n"] += 1
        with in_tenant(customer.tenant_id):
            return points_redeem(
                customer=customer, idempotency_key=key or f"redeem-{counter['n']}", points=points, **kwargs
            )

    return _redeem


@pytest.fixture
def reverse(in_tenant: Callable[[Any], Any]) -> Callable[..., Any]:
    from loyalty.services import points_reverse

    counter = {"n": 0}

    def _reverse(
        customer: Any, reference: str, amount: str | None = None, *, key: str | None = None, **kw: Any
    ) -> Any:
        counter["n"] += 1
        with in_tenant(customer.tenant_id):
            return points_reverse(
                customer=customer,
                idempotency_key=key or f"reverse-{counter['n']}",
                reference=reference,
                amount=Decimal(amount) if amount is not None else None,
                **kw,
            )

    return _reverse


@pytest.fixture
def summary(in_tenant: Callable[[Any], Any]) -> Callable[[Any], Any]:
    from loyalty.selectors import loyalty_summary

    def _summary(customer: Any) -> Any:
        with in_tenant(customer.tenant_id):
            return loyalty_summary(customer)

    return _summary


@pytest.fixture
def account_of(in_tenant: Callable[[Any], Any]) -> Callable[[Any], Any]:
    from loyalty.models import LoyaltyAccount

    def _account(customer: Any) -> Any:
        with in_tenant(customer.tenant_id):
            return LoyaltyAccount.objects.get(customer_id=customer.pk)

    return _account
