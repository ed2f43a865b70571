"""Prometheus gauges of the outbox, computed from the database when `/metrics` is scraped (in the web process).

Computed at scrape time rather than pushed by the relay: any web process answers with the true figure, and a
stuck relay (the case the gauges exist for) cannot leave a stale value behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

BACKLOG = "zenlogic_customer_outbox_backlog"
OLDEST_AGE = "zenlogic_customer_outbox_oldest_unpublished_age_seconds"


def outbox_backlog() -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest one; 0 when none), over every tenant."""
    from core.models import OutboxEvent
    from core.tenancy import all_tenants_context

    with all_tenants_context():
        figures = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
            count=Count("pk"), oldest=Min("created_at")
        )
    oldest = figures["oldest"]
    age = max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
    return figures["count"] or 0, age


class OutboxCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # without describe(), registering would call collect() and query the database at import time
        yield GaugeMetricFamily(BACKLOG, "Outbox events not yet published to the broker.")
        yield GaugeMetricFamily(OLDEST_AGE, "Age of the oldest outbox event not yet published.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count, age = outbox_backlog()
        except DatabaseError:
            logger.warning("Outbox metrics unavailable: database error", exc_info=True)
            return
        yield GaugeMetricFamily(BACKLOG, "Outbox events not yet published to the broker.", value=count)
        yield GaugeMetricFamily(OLDEST_AGE, "Age of the oldest outbox event not yet published.", value=age)


_registered: set[int] = set()
_lock = threading.Lock()


def metrics_register(registry: CollectorRegistry = REGISTRY) -> None:
    """Register the outbox gauges once per registry (call from AppConfig.ready())."""
    with _lock:
        if id(registry) in _registered:
            return
        registry.register(OutboxCollector())
        _registered.add(id(registry))
