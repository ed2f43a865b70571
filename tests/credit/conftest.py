"""Fixtures of the credit tests: business customers, credit lines, the credit clock, credit managers, and the
headless Chromium the admin's browser tests drive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

# 2026-03-02 12:00 UTC is 09:00 in Santiago (tenant_a's time zone): the same date in both.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def business_a(tenant_a: Any) -> Any:
    from tests.factories import BusinessCustomerFactory

    return BusinessCustomerFactory(tenant=tenant_a)


@pytest.fixture
def business_b(tenant_b: Any) -> Any:
    from tests.factories import BusinessCustomerFactory

    return BusinessCustomerFactory(tenant=tenant_b)


@pytest.fixture
def clock_at() -> Iterator[Callable[[datetime], None]]:
    """Freeze the clock (starting at T0); `clock_at(moment)` moves it. The wall clock comes back after."""
    from core import clock

    clock.freeze(T0)
    yield clock.freeze
    clock.unfreeze()


@pytest.fixture
def approved_line(business_a: Any) -> Any:
    """An approved line of 1000.00 at 30 days for business_a."""
    from tests.credit.factories import credit_line_approved

    return credit_line_approved(business_a)


@pytest.fixture
def invalidations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every customer-cache invalidation the credit services ask for, as (tenant_id, customer_id)."""
    import credit.services.exposure

    calls: list[tuple[str, str]] = []
    real = credit.services.exposure.customer_cache_invalidate

    def spy(*, tenant_id: str, customer_id: Any) -> None:
        calls.append((tenant_id, str(customer_id)))
        real(tenant_id=tenant_id, customer_id=customer_id)

    # Every change of a line goes through the exposure module, the one place credit drops a customer's cache.
    monkeypatch.setattr(credit.services.exposure, "customer_cache_invalidate", spy)
    return calls


def create_credit_managers_group() -> Any:
    """Run the data migration's function: the group it creates, with every permission it grants."""
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    migration = importlib.import_module("credit.migrations.0003_credit_managers_group")
    migration.create_group(apps, None)
    # The back office's roles: credit managers also read customers, loyalty and segments.
    importlib.import_module("customers.migrations.0003_back_office_roles").create_roles(apps, None)
    return Group.objects.get(name=migration.GROUP)


@pytest.fixture
def credit_managers_group(db: Any) -> Any:
    """The group of the data migration (recreated: a transactional test's flush drops migration data)."""
    return create_credit_managers_group()


@pytest.fixture
def make_staff(credit_managers_group: Any) -> Callable[..., Any]:
    """A staff user of `tenant` (password 'secret-pass'), a credit manager unless manager=False."""
    from core.models import User

    def _make(tenant: Any, username: str, *, manager: bool = True) -> Any:
        user = User.objects.create_user(username, f"{username}@example.com", "secret-pass", tenant=tenant)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        if manager:
            user.groups.add(credit_managers_group)
        return user

    return _make
