"""Consuming other services' events: orders, POS sales and payments, from RabbitMQ, inside the Celery worker.

Topology (names from `EVENTS_QUEUE_PREFIX`, default `customer-service`, so parallel deployments and test runs each
have their own queues):

    order_events   --order.completed-->             <prefix>.order.completed             (durable)
    pos_events     --pos.transaction.completed-->   <prefix>.pos.transaction.completed   (durable)
    payment_events --payment.received-->            <prefix>.payment.received            (durable)
    <prefix>.<event>.parked   messages waiting for a customer we do not know yet; after EVENTS_PARK_DELAY_SECONDS
                              RabbitMQ dead-letters them back to their queue (per-message expiration)
    <prefix>.dead-letter      (fanout exchange and queue) what we could not apply, with the reason in the headers
                              `x-dead-letter-reason` (a stable code) and `x-dead-letter-detail`

The main queues are quorum queues with a delivery limit (EVENTS_QUEUE_TYPE=classic turns that off): a message that
kills the worker again and again is dead-lettered by RabbitMQ instead of blocking the queue.

Each message is applied in one database transaction that first claims its `event_id` through core's idempotency
mechanism (`core.idempotency`, scope `events`): a duplicate finds the record, or waits for the first delivery's
transaction and then finds it. The message is acked only after that transaction committed.

- Malformed or refused (invalid JSON, envelope, amount, currency, unknown tenant, ...): dead-lettered with the
  reason, then acked. Never silently dropped, never blocking the queue.
- The customer does not exist (yet): parked and retried EVENTS_PARK_MAX_ATTEMPTS times, EVENTS_PARK_DELAY_SECONDS
  apart (a `customer.created` of ours may still be on its way), then dead-lettered as `customer_not_found`.
- Database unavailable (or any other transient database error): retried in place with exponential backoff, the
  message held unacked; on shutdown it goes back to the queue.

The consumer runs in its own thread with its own broker connections (one to consume, one to publish parked and
dead-lettered messages with publisher confirms), started by a bootstep of the Celery worker, so that waiting for
the database never stalls the worker's task loop. The step is enabled only with an AMQP broker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, close_old_connections
from django.db import connection as db_connection
from django.utils import timezone
from kombu import Connection, Consumer, Exchange, Message, Queue
from kombu.mixins import ConsumerProducerMixin

from core.errors import DomainError
from core.events import (  # noqa: F401 - PoisonMessage and envelope_parse are part of this module's interface
    CustomerNotYetKnown,
    Envelope,
    PoisonMessage,
    envelope_parse,
    event_handle,
)

logger = logging.getLogger(__name__)

ORDER_COMPLETED = "order.completed"
POS_TRANSACTION_COMPLETED = "pos.transaction.completed"
PAYMENT_RECEIVED = "payment.received"

HEADER_REASON = "x-dead-letter-reason"
HEADER_DETAIL = "x-dead-letter-detail"
HEADER_PARK_COUNT = "x-park-count"


# --- configuration (EVENTS_* in config/settings.py, read when the consumer starts) ------------------------------
@dataclass(frozen=True)
class EventsConfig:
    prefix: str = "customer-service"
    prefetch: int = 10
    park_delay_seconds: float = 30.0
    park_max_attempts: int = 20
    queue_type: str = "quorum"  # or "classic"
    delivery_limit: int = 20
    db_retry_max_seconds: float = 30.0

    @classmethod
    def from_settings(cls) -> EventsConfig:
        return cls(
            prefix=settings.EVENTS_QUEUE_PREFIX,
            prefetch=settings.EVENTS_PREFETCH,
            park_delay_seconds=settings.EVENTS_PARK_DELAY_SECONDS,
            park_max_attempts=settings.EVENTS_PARK_MAX_ATTEMPTS,
            queue_type=settings.EVENTS_QUEUE_TYPE,
            delivery_limit=settings.EVENTS_DELIVERY_LIMIT,
            db_retry_max_seconds=settings.EVENTS_DB_RETRY_MAX_SECONDS,
        )


TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


@dataclass(frozen=True)
class Route:
    """Where an event comes from: the producer's exchange and its routing key (the event type)."""

    name: str
    exchange: str
    routing_key: str

    @property
    def event_type(self) -> str:
        return self.routing_key


ROUTES = (
    Route("order", "order_events", ORDER_COMPLETED),
    Route("pos", "pos_events", POS_TRANSACTION_COMPLETED),
    Route("payment", "payment_events", PAYMENT_RECEIVED),
)


# --- applying one message in one transaction ------------------------------------------------------------------


def event_apply(route: Route, body: bytes | str) -> str:
    """Apply one message (dedupe record + effect) in one transaction; returns the outcome.

    The event id is claimed through core's idempotency mechanism (scope `events`) before the effect runs: a
    redelivery finds it (or waits for the first delivery's transaction) and is a no-op, `duplicate`; the same event
    id with another type or data is refused as `idempotency_key_reused` (dead-lettered). The effect is every
    handler the apps registered for the event (`core.events`), in their order, in this one transaction.
    Raises PoisonMessage (dead-letter it), CustomerNotYetKnown (park it), or a database error (retry it).
    """
    from core.idempotency import EVENTS_SCOPE, idempotent
    from core.models import Tenant
    from core.tenancy import tenant_context

    envelope = envelope_parse(body, expected_type=route.event_type)
    if not Tenant.objects.filter(slug=envelope.tenant_id).exists():
        raise PoisonMessage("unknown_tenant", f"tenant {envelope.tenant_id!r} is not known to this service")
    try:
        with tenant_context(envelope.tenant_id):
            result, replayed = idempotent(
                tenant_id=envelope.tenant_id,
                scope=EVENTS_SCOPE,
                key=str(envelope.event_id),
                operation=envelope.event_type,
                payload={"event_type": envelope.event_type, "data": envelope.data},
                work=lambda record: {"outcome": event_handle(envelope)[:200]},
            )
            return "duplicate" if replayed else str(result["outcome"])
    except DomainError as exc:
        if exc.code == "customer_not_found" and exc.details.get("customer_id"):
            raise CustomerNotYetKnown(str(exc.details["customer_id"])) from exc
        raise PoisonMessage(exc.code, exc.message) from exc
    except IntegrityError as exc:
        # a constraint refused the data (never a duplicate: those are caught above)
        raise PoisonMessage("integrity_error", str(exc)[:500]) from exc


# --- the consumer thread ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Topology:
    config: EventsConfig
    dead_letter_exchange: Exchange
    dead_letter_queue: Queue
    queues: dict[str, Queue]  # route name -> main queue
    parked: dict[str, Queue]  # route name -> parking queue


def topology(config: EventsConfig) -> Topology:
    prefix = config.prefix
    dlx = Exchange(f"{prefix}.dead-letter", type="fanout", durable=True)
    main_arguments: dict[str, Any] = {}
    if config.queue_type == "quorum":
        main_arguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": config.delivery_limit,
            "x-dead-letter-exchange": dlx.name,
        }
    queues = {}
    parked = {}
    for route in ROUTES:
        name = f"{prefix}.{route.routing_key}"
        queues[route.name] = Queue(
            name,
            Exchange(route.exchange, type="topic", durable=True),
            routing_key=route.routing_key,
            durable=True,
            queue_arguments=main_arguments or None,
        )
        parked[route.name] = Queue(
            f"{name}.parked",
            exchange=None,
            durable=True,
            queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
        )
    return Topology(
        config=config,
        dead_letter_exchange=dlx,
        dead_letter_queue=Queue(f"{prefix}.dead-letter", dlx, durable=True),
        queues=queues,
        parked=parked,
    )


class _Stopping(Exception):
    """Shutdown while a message waits for the database: leave it unacked, RabbitMQ gives it to another worker."""


class EventConsumer(ConsumerProducerMixin):
    # then run() starts over, so that a stop request is noticed while the broker is down
    connect_max_retries = 3  # type: ignore[assignment]

    def __init__(self, connection: Connection, config: EventsConfig) -> None:
        self.connection = connection
        self.config = config
        self.topology = topology(config)
        self.stop_event = threading.Event()

    @property
    def should_stop(self) -> bool:  # type: ignore[override]
        return self.stop_event.is_set()

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self.stop_event.set()
        else:
            self.stop_event.clear()

    def stop(self) -> None:
        self.stop_event.set()

    def get_consumers(self, consumer_cls: Any, channel: Any) -> list[Consumer]:
        t = self.topology
        t.dead_letter_exchange(channel).declare()
        t.dead_letter_queue(channel).declare()
        for queue in t.parked.values():
            queue(channel).declare()
        return [
            consumer_cls(
                queues=[t.queues[route.name]],
                on_message=lambda message, route=route: self.on_message(route, message),
                prefetch_count=self.config.prefetch,
                accept=None,
            )
            for route in ROUTES
        ]

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        logger.info("Consuming events from %s", ", ".join(q.name for q in self.topology.queues.values()))

    # one message ---------------------------------------------------------------------------------------------------
    def on_message(self, route: Route, message: Message) -> None:
        try:
            outcome = self._apply_with_retry(route, message)
        except _Stopping:
            return
        except PoisonMessage as exc:
            self._dead_letter(route, message, exc.reason, exc.detail)
        except CustomerNotYetKnown as exc:
            self._park_or_dead_letter(route, message, exc)
        except Exception as exc:
            logger.exception("Unexpected error applying a %s message", route.event_type)
            self._dead_letter(route, message, "unhandled_error", f"{type(exc).__name__}: {exc}")
        else:
            logger.info("Event %s: %s", route.event_type, outcome)
        message.ack()

    def _apply_with_retry(self, route: Route, message: Message) -> str:
        delay = 0.5
        while True:
            close_old_connections()
            try:
                return event_apply(route, message.body)
            except TRANSIENT_DB_ERRORS as exc:
                self._db_reset()
                logger.warning(
                    "Database unavailable (%s); retrying the %s message in %.1fs", exc, route.name, delay
                )
            except DatabaseError as exc:
                if not _is_transient(exc):
                    raise
                self._db_reset()
                logger.error("Database error (%s); retrying the %s message in %.1fs", exc, route.name, delay)
            if self.stop_event.wait(delay):
                raise _Stopping
            delay = min(delay * 2, self.config.db_retry_max_seconds)

    @staticmethod
    def _db_reset() -> None:
        with contextlib.suppress(Exception):  # the connection is broken; Django reconnects on next use
            db_connection.close()

    def _republish(
        self, message: Message, *, exchange: str, routing_key: str, headers: dict[str, Any], **extra: Any
    ) -> None:
        properties = message.properties or {}
        self.producer.publish(
            message.body,
            exchange=exchange,
            routing_key=routing_key,
            headers={**(message.headers or {}), **headers},
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            message_id=properties.get("message_id"),
            retry=True,
            retry_policy={"max_retries": 3},
            **extra,
        )

    def _dead_letter(self, route: Route, message: Message, reason: str, detail: str) -> None:
        info = message.delivery_info or {}
        logger.error("Dead-lettering a %s message: %s %s", route.event_type, reason, detail[:300])
        self._republish(
            message,
            exchange=self.topology.dead_letter_exchange.name,
            routing_key=route.routing_key,
            headers={
                HEADER_REASON: reason,
                HEADER_DETAIL: detail[:1000],
                "x-original-exchange": info.get("exchange", route.exchange),
                "x-original-routing-key": info.get("routing_key", route.routing_key),
                "x-original-queue": self.topology.queues[route.name].name,
                "x-dead-lettered-at": timezone.now().isoformat(),
            },
        )

    def _park_or_dead_letter(self, route: Route, message: Message, exc: CustomerNotYetKnown) -> None:
        count = _int_header(message.headers, HEADER_PARK_COUNT)
        if count >= self.config.park_max_attempts:
            self._dead_letter(
                route,
                message,
                "customer_not_found",
                f"customer {exc.customer_id} still unknown after {count} retries",
            )
            return
        logger.info(
            "Parking a %s message: customer %s not found (retry %d)", route.name, exc.customer_id, count + 1
        )
        self._republish(
            message,
            exchange="",
            routing_key=self.topology.parked[route.name].name,
            headers={HEADER_PARK_COUNT: count + 1},
            expiration=self.config.park_delay_seconds,
        )


def _int_header(headers: dict[str, Any] | None, name: str) -> int:
    try:
        return int((headers or {}).get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _is_transient(exc: DatabaseError) -> bool:
    """Worth retrying the same message: deadlocks and serialization failures (40), connection trouble (08), the
    server shutting down (57P), out of resources (53), and a schema behind the code (undefined table or column:
    migrations not applied yet; every message would fail the same way, so none is dead-lettered for it)."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    return sqlstate.startswith(("40", "08", "57P", "53")) or sqlstate in {"42P01", "42703"}


# --- the bootstep -------------------------------------------------------------------------------------------------
def consumer_enabled() -> bool:
    """Only with an AMQP broker (not the embedded Redis of `make run`), unless EVENTS_CONSUMER_ENABLED=0."""
    return bool(settings.BROKER_IS_AMQP and settings.EVENTS_CONSUMER_ENABLED)


class EventConsumerStep(bootsteps.StartStopStep):
    """Starts the event consumer thread in the worker's main process, next to the pool."""

    requires = ("celery.worker.components:Pool",)
    label = "event consumer"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.consumer: EventConsumer | None = None
        self.thread: threading.Thread | None = None

    def include_if(self, parent: Any) -> bool:
        return consumer_enabled()

    def start(self, parent: Any) -> None:
        connection = Connection(
            settings.CELERY_BROKER_URL, heartbeat=0, transport_options={"confirm_publish": True}
        )
        self.consumer = EventConsumer(connection, EventsConfig.from_settings())
        self.thread = threading.Thread(target=self._run, name="event-consumer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        try:
            while not consumer.should_stop:
                try:
                    consumer.run()  # reconnects by itself after connection errors
                except Exception:
                    # e.g. an ack or a dead-letter publish failed: unacked messages return to the queue
                    logger.exception("Event consumer failed; restarting it")
                    consumer.stop_event.wait(2)
        finally:
            self._db_close()

    @staticmethod
    def _db_close() -> None:
        from django.db import connections

        connections.close_all()

    def stop(self, parent: Any) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
