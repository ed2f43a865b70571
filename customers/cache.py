"""The customer snapshot that gRPC `GetCustomer` answers from (Redis in production, any Django cache works).

Keys carry the tenant. Every service that changes what `GetCustomer` returns (the customer, its loyalty account,
credit line or segment) calls `customer_cache_invalidate`, which acts once the transaction commits.

A snapshot could be rebuilt from data read just before a writer committed and stored just after the writer
dropped it, and then serve stale data until it expires. To rule that out each customer has a *generation* token:
invalidating replaces it, a reader notes it before reading the database and stores it with the snapshot, and a
snapshot counts only while its generation is still the current one. A tenant has a generation too:
`customer_cache_invalidate_tenant` drops every snapshot of the tenant at once (after a bulk change such as a
segmentation run, or a change of the loyalty program's tiers).

Lookups by phone, email, document or card go through an alias key (`kind + normalised value -> customer id`).
An alias is never invalidated: the reader checks that the snapshot it leads to still carries that value. Since an
alias is only a hint, each process also keeps the ones it used in memory (saving a round trip to Redis per call).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

_PREFIX = "customer:v2"
_LOCAL_ALIASES_MAX = 100_000
_local_aliases: dict[str, str] = {}
_local_lock = threading.Lock()


def customer_cache_key(tenant_id: str, customer_id: UUID | str) -> str:
    return f"{_PREFIX}:{tenant_id}:{customer_id}"


def _generation_key(tenant_id: str, customer_id: UUID | str) -> str:
    return f"{_PREFIX}:{tenant_id}:{customer_id}:gen"


def _tenant_generation_key(tenant_id: str) -> str:
    return f"{_PREFIX}:{tenant_id}:tenant-gen"


def _alias_key(tenant_id: str, kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{_PREFIX}:{tenant_id}:by-{kind}:{digest}"


def _ttl() -> int:
    return int(settings.CUSTOMER_CACHE_TTL)


# An invalidation that cannot reach the cache is kept here and retried every `_RETRY_INTERVAL` seconds (and before
# this process reads the cache again) until it lands, so the staleness it leaves is bounded by how long this
# process cannot reach Redis plus one interval, not by the snapshot TTL.
_RETRY_INTERVAL = 1.0
_pending: dict[tuple[str, str], None] = {}  # (tenant_id, customer_id or "" for the whole tenant)
_pending_lock = threading.Lock()
_retry_thread: threading.Thread | None = None


def _bump(tenant_id: str, customer_id: str) -> None:
    if customer_id:
        cache.set(_generation_key(tenant_id, customer_id), uuid.uuid4().hex, 2 * _ttl() + 60)
        cache.delete(customer_cache_key(tenant_id, customer_id))
    else:
        cache.set(_tenant_generation_key(tenant_id), uuid.uuid4().hex, None)


def _flush_pending() -> bool:
    """Retry the invalidations that failed; True when none is left."""
    with _pending_lock:
        todo = list(_pending)
    for tenant_id, customer_id in todo:
        try:
            _bump(tenant_id, customer_id)
        except Exception:
            return False
        with _pending_lock:
            _pending.pop((tenant_id, customer_id), None)
    return True


def _retry_loop() -> None:
    global _retry_thread
    while True:
        time.sleep(_RETRY_INTERVAL)
        if _flush_pending():
            with _pending_lock:
                if not _pending:
                    _retry_thread = None
                    return


def _invalidate_now(tenant_id: str, customer_id: str) -> None:
    global _retry_thread
    try:
        _bump(tenant_id, customer_id)
        return
    except Exception:
        logger.warning(
            "Could not drop the cached customer(s) %s of %s; retrying",
            customer_id or "*",
            tenant_id,
            exc_info=True,
        )
    with _pending_lock:
        _pending[(tenant_id, customer_id)] = None
        if _retry_thread is None:
            _retry_thread = threading.Thread(target=_retry_loop, name="customer-cache-retry", daemon=True)
            _retry_thread.start()


def customer_cache_invalidate(*, tenant_id: str, customer_id: UUID | str) -> None:
    """Drop the snapshot once the transaction commits (earlier would let a reader re-cache stale data)."""
    transaction.on_commit(lambda: _invalidate_now(tenant_id, str(customer_id)))


def customer_cache_invalidate_tenant(*, tenant_id: str) -> None:
    """Drop every snapshot of the tenant once the transaction commits (one write, however many customers)."""
    transaction.on_commit(lambda: _invalidate_now(tenant_id, ""))


@dataclass(frozen=True)
class Snapshot:
    data: bytes | None  # the serialized answer, when cached and current
    generation: str  # note it before reading the database; store it with the rebuilt answer


def customer_snapshot_get(tenant_id: str, customer_id: UUID | str) -> Snapshot:
    """The cached answer (if current) and the customer's generation, in one round trip."""
    data_key, generation_key, tenant_key = (
        customer_cache_key(tenant_id, customer_id),
        _generation_key(tenant_id, customer_id),
        _tenant_generation_key(tenant_id),
    )
    if _pending and not _flush_pending():
        return Snapshot(data=None, generation="")
    try:
        found: dict[str, Any] = cache.get_many([data_key, generation_key, tenant_key])
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)
        return Snapshot(data=None, generation="")
    generation = f"{found.get(tenant_key) or ''}/{found.get(generation_key) or ''}"
    entry = found.get(data_key)
    if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == generation:
        return Snapshot(data=entry[1], generation=generation)
    return Snapshot(data=None, generation=generation)


def customer_snapshot_generation(tenant_id: str, customer_id: UUID | str) -> str:
    return customer_snapshot_get(tenant_id, customer_id).generation


def customer_snapshot_set(
    tenant_id: str,
    customer_id: UUID | str,
    data: bytes,
    *,
    generation: str,
    aliases: dict[str, str] | None = None,
) -> None:
    """Store an answer built from data read after `generation` was noted, and the lookups that led to it."""
    values: dict[str, Any] = {customer_cache_key(tenant_id, customer_id): (generation, data)}
    for kind, value in (aliases or {}).items():
        if value:
            values[_alias_key(tenant_id, kind, value)] = str(customer_id)
            _remember(_alias_key(tenant_id, kind, value), str(customer_id))
    try:
        cache.set_many(values, _ttl())
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)


def customer_alias_get(tenant_id: str, kind: str, value: str) -> str | None:
    """The id of the customer last found by `kind = value` (a hint: check it against the snapshot)."""
    key = _alias_key(tenant_id, kind, value)
    with _local_lock:
        local = _local_aliases.get(key)
    if local is not None:
        return local
    try:
        found = cache.get(key)
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)
        return None
    if not isinstance(found, str):
        return None
    _remember(key, found)
    return found


def customer_alias_set(tenant_id: str, kind: str, value: str, customer_id: UUID | str) -> None:
    key = _alias_key(tenant_id, kind, value)
    _remember(key, str(customer_id))
    try:
        cache.set(key, str(customer_id), _ttl())
    except Exception:
        logger.warning("Customer cache unavailable", exc_info=True)


def _remember(key: str, customer_id: str) -> None:
    with _local_lock:
        if len(_local_aliases) >= _LOCAL_ALIASES_MAX:
            _local_aliases.clear()
        _local_aliases[key] = customer_id
