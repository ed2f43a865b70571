"""A write whose invalidation cannot reach Redis leaves stale snapshots for a bounded time only."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings

from customers import cache as customer_cache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_invalidation_missed_during_outage_lands_within_bound() -> None:
    assert "redis" in settings.CACHES["default"]["BACKEND"]
    tenant, customer = "t-" + uuid.uuid4().hex[:8], uuid.uuid4()
    generation = customer_cache.customer_snapshot_generation(tenant, customer)
    customer_cache.customer_snapshot_set(tenant, customer, b"7118", generation=generation)
    assert customer_cache.customer_snapshot_get(tenant, customer).data == b"7118"
    assert customer_cache.cache.get(customer_cache.customer_cache_key(tenant, customer)) is not None

    broken = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{_closed_port()}/3"}
    with override_settings(CACHES={"default": broken}), transaction.atomic():
        customer_cache.customer_cache_invalidate(tenant_id=tenant, customer_id=customer)
        # nothing listens on that port: the bump after commit fails for real

    # Redis is back. Another process (it shares nothing with this one) reads Redis directly: the stale
    # snapshot must be gone within the bound, not served for the whole TTL.
    key = customer_cache.customer_cache_key(tenant, customer)
    bound = 2.5  # the README states: one retry interval (1 s) after Redis is reachable again, plus slack
    started = time.monotonic()
    while customer_cache.cache.get(key) is not None and time.monotonic() - started < bound + 2:
        time.sleep(0.1)
    assert customer_cache.cache.get(key) is None
    assert time.monotonic() - started <= bound
