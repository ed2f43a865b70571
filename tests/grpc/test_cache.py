"""The customer snapshot cache: a snapshot rebuilt from data read before a change never outlives the change."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from customers.cache import (
    customer_alias_get,
    customer_cache_invalidate,
    customer_cache_invalidate_tenant,
    customer_snapshot_get,
    customer_snapshot_set,
)

# on_commit needs a connection; a real commit needs a transactional test
pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = uuid.uuid4()


def test_a_snapshot_is_served_until_invalidated():
    reader = customer_snapshot_get("t1", CUSTOMER)
    assert reader.data is None
    customer_snapshot_set(
        "t1", CUSTOMER, b"v1", generation=reader.generation, aliases={"phone": "+56961234567"}
    )
    assert customer_snapshot_get("t1", CUSTOMER).data == b"v1"
    assert customer_alias_get("t1", "phone", "+56961234567") == str(CUSTOMER)
    customer_cache_invalidate(tenant_id="t1", customer_id=CUSTOMER)  # outside a transaction: at once
    assert customer_snapshot_get("t1", CUSTOMER).data is None


def test_a_snapshot_built_before_a_change_is_never_served_after_it():
    """Reader notes the generation and reads the database; a writer commits and invalidates; the reader then
    stores what it read. Without generations that stale answer would be served until it expires."""
    noted = customer_snapshot_get("t1", CUSTOMER).generation
    customer_cache_invalidate(tenant_id="t1", customer_id=CUSTOMER)  # the writer, after its commit
    customer_snapshot_set("t1", CUSTOMER, b"stale", generation=noted)
    assert customer_snapshot_get("t1", CUSTOMER).data is None
    fresh = customer_snapshot_get("t1", CUSTOMER).generation
    customer_snapshot_set("t1", CUSTOMER, b"fresh", generation=fresh)
    assert customer_snapshot_get("t1", CUSTOMER).data == b"fresh"


def test_a_tenant_wide_invalidation_drops_every_snapshot_of_that_tenant_only():
    other = uuid.uuid4()
    for tenant, customer in [("t1", CUSTOMER), ("t1", other), ("t2", CUSTOMER)]:
        generation = customer_snapshot_get(tenant, customer).generation
        customer_snapshot_set(tenant, customer, b"v1", generation=generation)
    customer_cache_invalidate_tenant(tenant_id="t1")
    assert customer_snapshot_get("t1", CUSTOMER).data is None
    assert customer_snapshot_get("t1", other).data is None
    assert customer_snapshot_get("t2", CUSTOMER).data == b"v1"


def test_keys_carry_the_tenant():
    customer_snapshot_set("t1", CUSTOMER, b"one", generation="/", aliases={"email": "a@example.com"})
    assert customer_snapshot_get("t2", CUSTOMER).data is None
    assert customer_alias_get("t2", "email", "a@example.com") is None


def test_invalidation_waits_for_the_commit_and_is_skipped_on_rollback():
    customer_snapshot_set("t1", CUSTOMER, b"v1", generation=customer_snapshot_get("t1", CUSTOMER).generation)
    with transaction.atomic():
        customer_cache_invalidate(tenant_id="t1", customer_id=CUSTOMER)
        assert customer_snapshot_get("t1", CUSTOMER).data == b"v1"  # not yet committed
    assert customer_snapshot_get("t1", CUSTOMER).data is None

    customer_snapshot_set("t1", CUSTOMER, b"v2", generation=customer_snapshot_get("t1", CUSTOMER).generation)
    with pytest.raises(RuntimeError), transaction.atomic():
        customer_cache_invalidate(tenant_id="t1", customer_id=CUSTOMER)
        raise RuntimeError("rolled back")
    assert customer_snapshot_get("t1", CUSTOMER).data == b"v2"
