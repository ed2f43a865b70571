"""Celery tasks of the event plumbing (relay the outbox, prune what was published or consumed long ago), and the
per-tenant loop every app's periodic task runs on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from celery import shared_task

from core.models import Tenant
from core.relay import outbox_prune, outbox_relay, processed_events_prune, relay_kicks_deferred
from core.tenancy import tenant_context

logger = logging.getLogger(__name__)

T = TypeVar("T")


def for_each_tenant(
    name: str, candidates: Callable[[Tenant], Iterable[T]], process: Callable[[T], Any]
) -> dict[str, tuple[list[Any], int]]:
    """Every tenant, by slug: list what is due with `candidates(tenant)` in one tenant transaction, then `process`
    each item in a tenant transaction of its own, so that one item's failure is logged and undoes nothing else, and
    no transaction holds many row locks. Returns {tenant slug: (results of the items that went through, number of
    items that failed)}; a tenant whose listing failed counts one failure."""
    results: dict[str, tuple[list[Any], int]] = {}
    for tenant in Tenant.objects.order_by("slug"):
        try:
            with tenant_context(tenant):
                items = list(candidates(tenant))
        except Exception:
            logger.exception("%s: could not list what is due for tenant %s", name, tenant.slug)
            results[tenant.slug] = ([], 1)
            continue
        done: list[Any] = []
        failed = 0
        with relay_kicks_deferred():  # one relay kick for the tenant's items, not one per item's commit
            for item in items:
                try:
                    with tenant_context(tenant):
                        done.append(process(item))
                except Exception:
                    logger.exception("%s failed for %s of tenant %s", name, item, tenant.slug)
                    failed += 1
        results[tenant.slug] = (done, failed)
    return results


@shared_task(name="core.outbox_relay", ignore_result=True)
def outbox_relay_task() -> int:
    """Publish due outbox rows (beat every few seconds, and kicked after each commit that recorded events)."""
    return outbox_relay().published


@shared_task(name="core.outbox_prune", ignore_result=True)
def outbox_prune_task() -> dict[str, int]:
    """Daily: drop published outbox rows past OUTBOX_RETENTION_DAYS and old dedupe records of consumed events."""
    return {"outbox": outbox_prune(), "processed_events": processed_events_prune()}
