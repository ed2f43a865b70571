"""Celery tasks of credit: iterate tenants and call the services, each tenant in its own tenant context."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import shared_task

from core.models import Tenant
from core.tenancy import tenant_context
from credit import services

logger = logging.getLogger(__name__)


def _each_tenant(job: Callable[[], Any], name: str) -> dict[str, Any]:
    """Run `job` once per tenant; one tenant's failure is logged and never stops the others."""
    results: dict[str, Any] = {}
    for slug in Tenant.objects.order_by("slug").values_list("slug", flat=True):
        try:
            with tenant_context(slug):
                results[slug] = job()
        except Exception:
            logger.exception("credit %s failed for tenant %s", name, slug)
            results[slug] = "error"
    return results


@shared_task(name="credit.overdue_process", ignore_result=True)
def credit_overdue_task() -> dict[str, Any]:
    """Nightly: mark charges overdue, put lines overdue past the grace period on hold, release paid-up ones."""
    return _each_tenant(lambda: asdict(services.credit_overdue_process()), "overdue run")


@shared_task(name="credit.holds_expire", ignore_result=True)
def credit_holds_expire_task() -> dict[str, Any]:
    """Give back the amounts of checkout holds whose time is up."""
    return _each_tenant(services.credit_holds_expire, "hold expiry")
