"""The outbox relay against the real RabbitMQ: kicked after commit, never twice, waiting out a broker outage."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from core.models import OutboxEvent
from core.outbox import outbox_record
from core.relay import outbox_prune, outbox_relay, relay_backoff, relay_connection_close
from core.tenancy import all_tenants_context, tenant_context
from tests.events.conftest import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]


def outbox_rows(tenant: Any) -> list[OutboxEvent]:
    with tenant_context(tenant):
        return list(OutboxEvent.objects.all())


def received(
    broker: Any, queue: str, into: Counter[str], bodies: dict[str, Any] | None = None
) -> Counter[str]:
    for message in broker.get_all(queue):
        envelope = json.loads(message.body)
        into[envelope["event_id"]] += 1
        if bodies is not None:
            bodies[envelope["event_id"]] = (envelope, message)
    return into


def test_an_event_is_published_by_the_worker_right_after_commit(
    worker, broker, tenant, customer_events_queue
):
    from tests.factories import CustomerFactory

    customer = CustomerFactory(tenant=tenant)  # records customer.created in the outbox and commits
    [row] = [r for r in outbox_rows(tenant) if r.aggregate_id == str(customer.id)]
    counts: Counter[str] = Counter()
    bodies: dict[str, Any] = {}
    # no beat in this test: only the after-commit kick makes the worker relay it
    wait_until(
        lambda: received(broker, customer_events_queue, counts, bodies)[str(row.event_id)], what="the event"
    )
    envelope, message = bodies[str(row.event_id)]
    assert envelope["event_type"] == "customer.created"
    assert envelope["tenant_id"] == tenant.slug
    assert envelope["data"]["customer_id"] == str(customer.id)
    assert message.delivery_info["routing_key"] == "customer.created"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == str(row.event_id)
    wait_until(
        lambda: all(r.published_at for r in outbox_rows(tenant)), what="the rows to be marked published"
    )


def test_relays_running_at_once_publish_every_row_exactly_once(broker, tenant, customer_events_queue):
    # no kicks: the rows wait for the relays below
    with override_settings(OUTBOX_RELAY_ENABLED=False), tenant_context(tenant):
        for n in range(300):
            outbox_record(
                tenant_id=tenant.slug, event_type="customer.updated", data={"n": n}, aggregate_id="x"
            )
    ids = {str(r.event_id) for r in outbox_rows(tenant)}
    barrier = threading.Barrier(4)
    results = []

    def relay() -> None:
        try:
            barrier.wait()
            results.append(outbox_relay(batch_size=25))
        finally:
            relay_connection_close()
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts: Counter[str] = Counter()
    wait_until(lambda: ids <= set(received(broker, customer_events_queue, counts)), what="all 300 events")
    assert sum(r.published for r in results) == 300
    assert {event_id: counts[event_id] for event_id in ids} == dict.fromkeys(ids, 1)
    assert all(r.published_at is not None for r in outbox_rows(tenant))


def test_with_the_broker_unreachable_rows_wait_with_backoff_then_go_out(
    broker, tenant, customer_events_queue
):
    with override_settings(OUTBOX_RELAY_ENABLED=False), tenant_context(tenant):
        outbox_record(tenant_id=tenant.slug, event_type="customer.updated", data={}, aggregate_id="x")
    before = timezone.now()
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//"):
        relay_connection_close()
        result = outbox_relay()
        relay_connection_close()
    after = timezone.now()
    assert (result.published, result.failed) == (0, 1)
    [row] = outbox_rows(tenant)
    assert row.published_at is None and row.attempts == 1 and "1" in row.last_error
    assert before + relay_backoff(1) <= row.next_attempt_at <= after + relay_backoff(1)
    # not due yet: the relay leaves it alone
    with all_tenants_context():
        OutboxEvent.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert outbox_relay().published == 0
    with all_tenants_context():
        OutboxEvent.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    wait_until(lambda: outbox_relay().published == 1, timeout=10, what="the retry after the backoff")
    [row] = outbox_rows(tenant)
    assert row.published_at is not None and row.last_error == ""
    counts = wait_until(lambda: received(broker, customer_events_queue, Counter()), what="the event")
    assert counts[str(row.event_id)] == 1


def test_without_a_broker_the_relay_leaves_rows_unpublished_quietly(tenant):
    with override_settings(OUTBOX_RELAY_ENABLED=False, CELERY_BROKER_URL="memory://"):
        with tenant_context(tenant):
            outbox_record(tenant_id=tenant.slug, event_type="customer.updated", data={}, aggregate_id="x")
        result = outbox_relay()
    assert result.skipped and result.published == 0
    [row] = outbox_rows(tenant)
    assert (row.published_at, row.attempts, row.last_error) == (None, 0, "")


def test_published_rows_are_pruned_after_the_retention_period_and_unpublished_ones_never(tenant):
    with override_settings(OUTBOX_RELAY_ENABLED=False), tenant_context(tenant):
        old, recent, pending = (
            outbox_record(tenant_id=tenant.slug, event_type="customer.updated", data={}, aggregate_id=str(n))
            for n in range(3)
        )
    with all_tenants_context():
        OutboxEvent.objects.filter(pk=old.pk).update(published_at=timezone.now() - timedelta(days=8))
        OutboxEvent.objects.filter(pk=recent.pk).update(published_at=timezone.now() - timedelta(days=6))
        OutboxEvent.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=30))
    with override_settings(OUTBOX_RETENTION_DAYS=7):
        assert outbox_prune() == 1
    assert {r.pk for r in outbox_rows(tenant)} == {recent.pk, pending.pk}


def test_outbox_backlog_and_age_are_exposed_on_metrics(client, tenant):
    from prometheus_client import CollectorRegistry, generate_latest

    from core.metrics import BACKLOG, OLDEST_AGE, metrics_register

    with override_settings(OUTBOX_RELAY_ENABLED=False), tenant_context(tenant):
        for _ in range(3):
            outbox_record(tenant_id=tenant.slug, event_type="customer.updated", data={}, aggregate_id="x")
    with all_tenants_context():
        OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    registry = CollectorRegistry()
    metrics_register(registry)
    metrics_register(registry)  # idempotent
    text = generate_latest(registry).decode()
    assert f"{BACKLOG} 3.0" in text
    age = float(next(line for line in text.splitlines() if line.startswith(OLDEST_AGE)).split()[1])
    assert 299 <= age < 400
    # and on the service's own /metrics once registered on the default registry (AppConfig.ready does it)
    metrics_register()
    body = client.get("/metrics").content.decode()
    assert f"{BACKLOG} 3.0" in body


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)  # noqa: S603, S607


def test_a_broker_outage_while_events_are_produced_loses_nothing_and_duplicates_nothing(
    worker, broker, tenant, customer_events_queue
):
    """Customers are created (each records customer.created and commits) before, during and after RabbitMQ is
    stopped; relays run all along (a beat-like loop here, plus the worker's after-commit kicks)."""
    from tests.factories import CustomerFactory

    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # e.g. the database was busy; the next run retries
                    outbox_relay(time_budget=2)
                stop.wait(0.3)
        finally:
            relay_connection_close()
            connection.close()

    relay_thread = threading.Thread(target=beat)
    relay_thread.start()
    try:
        for _ in range(15):
            CustomerFactory(tenant=tenant)
        rabbitmqctl("stop_app")
        try:
            for _ in range(15):
                CustomerFactory(tenant=tenant)
                time.sleep(0.2)
            waiting = [r for r in outbox_rows(tenant) if r.published_at is None]
            assert waiting, "with the broker down, some events must be waiting"
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        for _ in range(15):
            CustomerFactory(tenant=tenant)
        broker.reconnect()
        wait_until(
            lambda: all(r.published_at for r in outbox_rows(tenant)),
            timeout=90,
            what="every row to be published",
        )
    finally:
        stop.set()
        relay_thread.join(timeout=30)

    rows = outbox_rows(tenant)
    assert len(rows) == 45
    assert any(r.attempts > 0 for r in rows), "some rows must have waited out the outage"
    ids = {str(r.event_id) for r in rows}
    counts: Counter[str] = Counter()
    wait_until(lambda: ids <= set(received(broker, customer_events_queue, counts)), what="all 45 events")
    time.sleep(1)
    received(broker, customer_events_queue, counts)
    assert {event_id: counts[event_id] for event_id in ids} == dict.fromkeys(ids, 1)
    worker.wait_ready()  # the worker reconnected by itself
