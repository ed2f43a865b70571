"""The outbox relay: publishes recorded events to the broker, marks them published once the broker took them.

Rows are claimed with `SELECT ... FOR UPDATE SKIP LOCKED` inside `all_tenants_context()`, so any number of relays
(beat every few seconds, the after-commit kick, several workers) run at once without publishing a row twice. A row
is marked published in the same transaction that holds its lock, and only after the broker's publisher confirm:
a crash before the commit republishes it (at least once; consumers dedupe by `event_id`), never loses it.

When the broker is unreachable or refuses a message, the rows of the batch get `attempts + 1` and a
`next_attempt_at` with exponential backoff (capped) and wait.

The broker is RabbitMQ (publisher confirms), or the embedded Redis of `make run`: kombu's Redis transport emulates
the topic exchange (its bindings are a Redis set; a message goes to every bound queue whose pattern matches, and
to none when nothing is bound, as with RabbitMQ), and a publish returns once Redis stored the message. Without
any broker configured (`settings.OUTBOX_RELAY_ENABLED` false) the relay leaves every row unpublished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu import Connection, Exchange, Producer

from core.models import OutboxEvent
from core.tenancy import all_tenants_context

logger = logging.getLogger(__name__)

EXCHANGE_NAME = "customer_events"
EXCHANGE = Exchange(EXCHANGE_NAME, type="topic", durable=True)
APP_ID = "zenlogic-customer-service"


def relay_batch_size() -> int:
    return settings.OUTBOX_RELAY_BATCH_SIZE


def relay_max_backoff() -> float:
    return settings.OUTBOX_RELAY_MAX_BACKOFF_SECONDS


def relay_backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s ... up to the cap: how long a row waits after its `attempts`-th failed publish."""
    seconds = min(2.0 ** max(attempts - 1, 0), relay_max_backoff())
    return timedelta(seconds=seconds)


@dataclass
class RelayResult:
    published: int = 0
    failed: int = 0
    skipped: bool = False  # no broker configured

    def __iadd__(self, other: RelayResult) -> RelayResult:
        self.published += other.published
        self.failed += other.failed
        return self


# --- the broker connection: one per thread (prefork children, relay threads), reopened after any error ----------
_local = threading.local()


def _producer() -> Producer:
    producer: Producer | None = getattr(_local, "producer", None)
    if producer is not None:
        return producer
    timeout = settings.OUTBOX_RELAY_CONNECT_TIMEOUT
    connection = Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=timeout,
        heartbeat=0,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    )
    try:
        connection.ensure_connection(max_retries=0)  # no retry here: the next relay run is the retry
        channel = connection.channel()
        EXCHANGE(channel).declare()
        producer = Producer(channel, exchange=EXCHANGE, auto_declare=False)
    except Exception:
        _release(connection)
        raise
    _local.connection = connection
    _local.producer = producer
    return producer


def _release(connection: Connection | None = None) -> None:
    connection = connection or getattr(_local, "connection", None)
    _local.connection = None
    _local.producer = None
    if connection is not None:
        with contextlib.suppress(Exception):  # already broken: nothing to clean up
            connection.release()


_SWEEP_INTERVAL = 60.0  # seconds between sweeps of the bindings of dead queues (kombu's Redis transport only)


def _sweep_dead_bindings(producer: Producer) -> None:
    """On Redis, drop the bindings of expiring queues nobody consumes any more (an `events_tail` killed hard):
    kombu refreshes a consumed queue's binding, and only a sweep removes a stale one; else the relay would keep
    filling a list nobody reads."""
    sweep = getattr(producer.channel, "sweep_bindings", None)
    now = time.monotonic()
    if sweep is None or now - getattr(_local, "swept_at", float("-inf")) < _SWEEP_INTERVAL:
        return
    _local.swept_at = now
    try:
        sweep()
    except Exception as exc:  # housekeeping only: the next relay run tries again
        logger.info("Could not sweep stale event bindings: %s", exc)


def relay_connection_close() -> None:
    """Close this thread's broker connection (tests, worker shutdown)."""
    _release()


def _publish(producer: Producer, row: OutboxEvent) -> None:
    body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False)
    timeout = settings.OUTBOX_RELAY_CONFIRM_TIMEOUT
    producer.publish(
        body,
        routing_key=row.event_type,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=str(row.event_id),
        type=row.event_type,
        app_id=APP_ID,
        timestamp=int(row.occurred_at.timestamp()),
        headers={"tenant_id": row.tenant_id},
        retry=False,
        timeout=timeout,
        confirm_timeout=timeout,
    )


# --- relaying ---------------------------------------------------------------------------------------------------
def _relay_batch(size: int) -> RelayResult:
    result = RelayResult()
    with all_tenants_context():
        now = timezone.now()
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("created_at")[:size]
        )
        if not rows:
            return result
        confirmed: list[Any] = []
        error: Exception | None = None
        try:
            producer = _producer()
            _sweep_dead_bindings(producer)
            for row in rows:
                _publish(producer, row)  # returns once the broker confirmed the message
                confirmed.append(row.pk)
        except Exception as exc:
            error = exc
            _release()
        if confirmed:
            OutboxEvent.objects.filter(pk__in=confirmed).update(
                published_at=timezone.now(), next_attempt_at=None, last_error=""
            )
        failed = rows[len(confirmed) :]
        if failed:
            message = f"{type(error).__name__}: {error}"[:1000]
            now = timezone.now()
            for row in failed:
                row.attempts += 1
                row.next_attempt_at = now + relay_backoff(row.attempts)
                row.last_error = message
            OutboxEvent.objects.bulk_update(failed, ["attempts", "next_attempt_at", "last_error"])
            logger.warning(
                "Outbox relay could not publish %d event(s); they wait for the next attempt: %s",
                len(failed),
                message,
            )
        result.published = len(confirmed)
        result.failed = len(failed)
    return result


def outbox_relay(*, batch_size: int | None = None, time_budget: float | None = None) -> RelayResult:
    """Publish due outbox rows in batches until none is left, the broker fails, or the time budget is spent."""
    if not settings.OUTBOX_RELAY_ENABLED:
        return RelayResult(skipped=True)
    size = batch_size or relay_batch_size()
    budget = settings.OUTBOX_RELAY_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    total = RelayResult()
    while True:
        batch = _relay_batch(size)
        total += batch
        if batch.failed or batch.published < size or time.monotonic() >= deadline:
            return total


def outbox_prune(*, retention_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete published rows older than the retention period (settings.OUTBOX_RETENTION_DAYS)."""
    days = settings.OUTBOX_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        with all_tenants_context():
            ids = list(
                OutboxEvent.objects.filter(published_at__lt=cutoff).values_list("pk", flat=True)[:batch_size]
            )
            if ids:
                OutboxEvent.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


def processed_events_prune(*, retention_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete the dedupe records of consumed events older than EVENTS_DEDUPE_RETENTION_DAYS (default 30).

    Redeliveries come within minutes; every effect is idempotent on its own key as well (purchase source id,
    loyalty idempotency key, payment id), so a very late duplicate is still applied once.
    """
    from core.idempotency import EVENTS_SCOPE
    from core.models import IdempotencyRecord

    days = settings.EVENTS_DEDUPE_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        with all_tenants_context():
            ids = list(
                IdempotencyRecord.objects.filter(scope=EVENTS_SCOPE, created_at__lt=cutoff).values_list(
                    "pk", flat=True
                )[:batch_size]
            )
            if ids:
                IdempotencyRecord.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


# --- the after-commit kick --------------------------------------------------------------------------------------
_kick_state = {"failed_at": 0.0}
KICK_PAUSE_AFTER_FAILURE = 10.0  # seconds without kicks after the broker refused one; beat catches up


def _kick() -> None:
    if time.monotonic() - _kick_state["failed_at"] < KICK_PAUSE_AFTER_FAILURE:
        return
    from core.tasks import outbox_relay_task

    options: dict[str, Any] = {"retry": False, "expires": 60}
    # the queue the worker of this deployment consumes
    if settings.CELERY_TASK_DEFAULT_QUEUE:
        options["queue"] = settings.CELERY_TASK_DEFAULT_QUEUE
    try:
        outbox_relay_task.apply_async(**options)
    except Exception as exc:
        _kick_state["failed_at"] = time.monotonic()
        logger.warning("Could not kick the outbox relay (beat will publish the events): %s", exc)


_deferred = threading.local()


@contextlib.contextmanager
def relay_kicks_deferred() -> Iterator[None]:
    """Within the block, commits that record events do not kick the relay one by one: one kick when the block ends,
    if any asked for one. A periodic job commits once per account or line, so a large tenant would otherwise send
    one relay task per account; beat (every few seconds) publishes what they record in the meantime."""
    if getattr(_deferred, "active", False):  # nested: the outermost block kicks
        yield
        return
    _deferred.active, _deferred.wanted = True, False
    try:
        yield
    finally:
        wanted = _deferred.wanted
        _deferred.active = _deferred.wanted = False
        if wanted:
            _kick()


def relay_kick_after_commit() -> None:
    """Ask a worker to relay right after the current transaction commits (once per transaction)."""
    if not settings.OUTBOX_RELAY_ENABLED:
        return
    if getattr(_deferred, "active", False):
        _deferred.wanted = True
        return
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        _kick()
        return
    if any(func is _kick for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_kick, robust=True)
