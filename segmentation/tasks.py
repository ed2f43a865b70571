"""Celery tasks of the segmentation app: the nightly RFM recomputation, one task per tenant."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.errors import DomainError
from core.models import Tenant
from core.tasks import for_each_tenant
from core.tenancy import tenant_cached, tenant_context
from segmentation import selectors, services

logger = logging.getLogger(__name__)


@shared_task(name="segmentation.rfm_dispatch")
def rfm_dispatch() -> list[str]:
    """Enqueue the recomputation of every tenant whose night has come and whose run for yesterday is missing."""
    now = timezone.now()
    local_hour = int(settings.SEGMENTATION_LOCAL_HOUR)

    def due(tenant: Tenant) -> list[tuple[str, date]]:
        if now.astimezone(ZoneInfo(tenant.time_zone)).hour < local_hour:
            return []
        as_of = services.rfm_default_as_of(tenant, now=now)
        return [(tenant.slug, as_of)] if selectors.rfm_run_due(as_of) else []

    def enqueue(item: tuple[str, date]) -> str:
        slug, as_of = item
        rfm_recompute_tenant.delay(slug, as_of.isoformat())
        return slug

    runs = for_each_tenant("RFM dispatch", due, enqueue)
    return [slug for done, _failed in runs.values() for slug in done]


@shared_task(name="segmentation.rfm_recompute_tenant")
def rfm_recompute_tenant(tenant_slug: str, as_of: str | None = None) -> dict[str, Any]:
    """Recompute one tenant's segments (idempotent: the same as-of date and rules twice is a no-op)."""
    tenant = tenant_cached(tenant_slug)
    day = date.fromisoformat(as_of) if as_of else None
    try:
        with tenant_context(tenant):
            result = services.rfm_recompute(tenant=tenant, as_of=day, triggered_by="beat")
    except DomainError as exc:
        logger.warning("RFM recomputation of %s refused: %s", tenant_slug, exc.message)
        return {"tenant": tenant_slug, "refused": exc.code}
    run = result.run
    return {
        "tenant": tenant_slug,
        "as_of": run.as_of.isoformat(),
        "rule_version": run.rule_version,
        "created": result.created,
        "customers": run.customers_total,
        "segment_changes": run.segment_changes,
    }
