"""Celery tasks of loyalty: find the accounts with work due, per tenant, and call the services.

Each customer is handled in its own `tenant_context` (its own transaction): one account's failure is logged and
never stops the others, and no transaction holds many account locks. The services are idempotent by state (an
award is released or expired once), so a task that runs twice or is redelivered changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

from celery import shared_task

from core import clock
from core.tasks import for_each_tenant
from customers.models import Customer
from loyalty import selectors, services

logger = logging.getLogger(__name__)


def _each_due_customer(
    name: str, find: Callable[..., list[UUID]], act: Callable[[Customer], Any]
) -> dict[str, dict[str, int]]:
    runs = for_each_tenant(
        f"loyalty {name}",
        lambda _tenant: find(now=clock.now()),
        lambda customer_id: act(Customer.objects.get(pk=customer_id)),
    )
    return {
        slug: {"done": len(done), "failed": failed} for slug, (done, failed) in runs.items() if done or failed
    }


@shared_task(name="loyalty.release_pending_points", ignore_result=True)
def release_pending_points() -> dict[str, dict[str, int]]:
    """Make pending points spendable once their return window has passed."""
    return _each_due_customer(
        "release", selectors.customers_with_pending_due, lambda c: services.points_release_pending(customer=c)
    )


@shared_task(name="loyalty.expire_points", ignore_result=True)
def expire_points() -> dict[str, dict[str, int]]:
    """Expire what is left of awards past their expiry date."""
    return _each_due_customer(
        "expiry", selectors.customers_with_expiry_due, lambda c: services.points_expire(customer=c)
    )


@shared_task(name="loyalty.review_tiers", ignore_result=True)
def review_tiers() -> dict[str, dict[str, int]]:
    """Tier review: apply the downgrade policy to accounts due, end manual overrides past their date."""
    return _each_due_customer(
        "tier review", selectors.customers_due_for_review, lambda c: services.tier_review(customer=c)
    )


@shared_task(name="loyalty.expire_holds", ignore_result=True)
def expire_holds() -> dict[str, dict[str, int]]:
    """Give back the points of holds past their time, for accounts no operation touched since."""
    return _each_due_customer(
        "hold expiry",
        selectors.customers_with_holds_expired,
        lambda c: services.points_holds_expire(customer=c),
    )
