"""Celery tasks of credit: iterate tenants and call the services, each in a tenant context of its own.

The periodic jobs touch many lines. Each line gets its own short tenant transaction: a line is locked only while it
is processed (never until the whole tenant is done, which would hold up checkouts), and a line that fails is logged
and undoes nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from uuid import UUID

from celery import shared_task

from core import clock
from core.tasks import for_each_tenant
from credit import selectors, services

logger = logging.getLogger(__name__)


def _each_tenant_line(
    name: str, candidates: Callable[[], list[UUID]], process: Callable[[UUID], Any]
) -> dict[str, tuple[list[Any], int]]:
    """Per tenant: pick the lines in one tenant transaction, then `process` each line in a transaction of its own.
    Returns {tenant: (results of the lines that went through, number of lines that failed)}."""
    return for_each_tenant(f"credit {name}", lambda _tenant: candidates(), process)


@shared_task(name="credit.overdue_process", ignore_result=True)
def credit_overdue_task() -> dict[str, Any]:
    """Nightly: mark charges overdue, put lines overdue past the grace period on hold, release paid-up ones."""
    runs = _each_tenant_line(
        "overdue run",
        lambda: selectors.credit_lines_for_overdue_run(today=selectors.credit_today()),
        lambda line_id: services.credit_line_overdue_process(line_id=line_id),
    )
    return {
        slug: {**asdict(services.OverdueRunResult.total(done)), "lines_failed": failed}
        for slug, (done, failed) in runs.items()
    }


@shared_task(name="credit.holds_expire", ignore_result=True)
def credit_holds_expire_task() -> dict[str, Any]:
    """Give back the amounts of checkout holds whose time is up."""
    now = clock.now()
    runs = _each_tenant_line(
        "hold expiry",
        lambda: selectors.credit_lines_with_expired_holds(now=now),
        lambda line_id: services.credit_line_holds_expire(line_id=line_id, now=now),
    )
    return {
        slug: {"holds_expired": sum(done), "lines_failed": failed} for slug, (done, failed) in runs.items()
    }
