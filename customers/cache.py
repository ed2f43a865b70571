"""The customer cache the gRPC `GetCustomer` answers from. Keys carry the tenant; every service that changes what
`GetCustomer` returns (the customer, its loyalty account, credit line or segment) drops the entry after commit."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def customer_cache_key(tenant_id: str, customer_id: UUID | str) -> str:
    return f"customer:v1:{tenant_id}:{customer_id}"


def customer_cache_invalidate(*, tenant_id: str, customer_id: UUID | str) -> None:
    """Drop the entry once the transaction commits (dropping it earlier would let a reader re-cache stale data)."""
    key = customer_cache_key(tenant_id, customer_id)

    def _drop() -> None:
        try:
            cache.delete(key)
        except Exception:
            logger.warning("Could not drop customer cache entry %s", key, exc_info=True)

    transaction.on_commit(_drop)


def customer_cache_get(tenant_id: str, customer_id: UUID | str) -> Any:
    try:
        return cache.get(customer_cache_key(tenant_id, customer_id))
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)
        return None


def customer_cache_set(tenant_id: str, customer_id: UUID | str, value: Any, ttl: int) -> None:
    try:
        cache.set(customer_cache_key(tenant_id, customer_id), value, ttl)
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)
