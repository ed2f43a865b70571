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
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, close_old_connections
from django.db import connection as db_connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from kombu import Connection, Consumer, Exchange, Message, Queue
from kombu.mixins import ConsumerProducerMixin

from core.errors import DomainError, IdempotencyKeyReused

logger = logging.getLogger(__name__)

ORDER_COMPLETED = "order.completed"
POS_TRANSACTION_COMPLETED = "pos.transaction.completed"
PAYMENT_RECEIVED = "payment.received"

HEADER_REASON = "x-dead-letter-reason"
HEADER_DETAIL = "x-dead-letter-detail"
HEADER_PARK_COUNT = "x-park-count"


# --- configuration (read when the consumer starts; tests and deployments set it through the environment) --------
def _conf(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    return str(value) if value is not None else (os.environ.get(name) or default)


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
            prefix=_conf("EVENTS_QUEUE_PREFIX", "customer-service"),
            prefetch=int(_conf("EVENTS_PREFETCH", "10")),
            park_delay_seconds=float(_conf("EVENTS_PARK_DELAY_SECONDS", "30")),
            park_max_attempts=int(_conf("EVENTS_PARK_MAX_ATTEMPTS", "20")),
            queue_type=_conf("EVENTS_QUEUE_TYPE", "quorum"),
            delivery_limit=int(_conf("EVENTS_DELIVERY_LIMIT", "20")),
            db_retry_max_seconds=float(_conf("EVENTS_DB_RETRY_MAX_SECONDS", "30")),
        )


# --- errors that decide a message's fate ------------------------------------------------------------------------
class PoisonMessage(Exception):
    """The message can never be applied as it is: dead-letter it with `reason` (a stable snake_case code)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CustomerNotYetKnown(Exception):
    """The event names a customer this tenant does not have (yet): park the message and try again later."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} not found")
        self.customer_id = customer_id


TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


# --- the envelope -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    event_type: str
    tenant_id: str
    occurred_at: datetime | None
    version: int
    data: dict[str, Any]


def envelope_parse(body: bytes | str, *, expected_type: str) -> Envelope:
    """The contract's envelope, or PoisonMessage saying what is wrong with it."""
    try:
        payload = json.loads(body, parse_float=Decimal)  # decimals in JSON numbers are read exactly
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise PoisonMessage("malformed_json", str(exc)[:300]) from exc
    if not isinstance(payload, dict):
        raise PoisonMessage("invalid_envelope", "the body is not a JSON object")
    try:
        event_id = uuid.UUID(str(payload.get("event_id")))
    except ValueError as exc:
        raise PoisonMessage(
            "invalid_event_id", f"event_id {payload.get('event_id')!r} is not a UUID"
        ) from exc
    event_type = payload.get("event_type")
    if event_type != expected_type:
        raise PoisonMessage("unexpected_event_type", f"expected {expected_type!r}, got {event_type!r}")
    tenant_id = payload.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id.strip() or len(tenant_id) > 63:
        raise PoisonMessage("invalid_tenant_id", f"tenant_id {tenant_id!r} is not a tenant slug")
    version = payload.get("version", 1)
    if version != 1:
        raise PoisonMessage("unsupported_version", f"version {version!r}; this consumer reads version 1")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PoisonMessage("invalid_data", "data is missing or not an object")
    occurred_at = payload.get("occurred_at")
    return Envelope(
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant_id.strip(),
        occurred_at=_optional_timestamp(occurred_at),
        version=1,
        data=data,
    )


def _optional_timestamp(value: Any) -> datetime | None:
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and not timezone.is_naive(moment) else None


def _required_str(data: dict[str, Any], name: str, *, max_length: int = 100) -> str:
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PoisonMessage("invalid_data", f"data.{name} is required")
    if len(value.strip()) > max_length:
        raise PoisonMessage("invalid_data", f"data.{name} is longer than {max_length} characters")
    return value.strip()


def _timestamp(data: dict[str, Any], name: str) -> datetime:
    value = data.get(name)
    moment = _optional_timestamp(value)
    if moment is None:
        raise PoisonMessage("invalid_timestamp", f"data.{name} {value!r} is not an RFC 3339 time with offset")
    return moment


def _customer_uuid(value: Any) -> uuid.UUID | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return uuid.UUID(str(value).strip())
    except ValueError as exc:
        raise PoisonMessage("invalid_customer_id", f"customer_id {value!r} is not a UUID") from exc


def loyalty_idempotency_key(source: str, source_id: str) -> str:
    """The key a sale earns points under, shared with gRPC AddLoyaltyPoints so that a sale earns once:
    `order:<order_id>` for orders, `pos:<transaction_id>` for POS sales."""
    return f"{source}:{source_id}"


# --- the effects (one door into the services: parse, call, nothing else) ----------------------------------------
def _purchase_apply(envelope: Envelope, *, source: str, id_field: str) -> str:
    from core.money import parse_amount
    from customers.history import purchase_items_parse, purchase_record
    from customers.models import Customer, CustomerStatus

    data = envelope.data
    source_id = _required_str(data, id_field)
    customer_uuid = _customer_uuid(data.get("customer_id"))
    customer = None
    if customer_uuid is not None:
        customer = Customer.objects.filter(pk=customer_uuid).first()
        if customer is None:
            raise CustomerNotYetKnown(str(customer_uuid))
        if customer.status == CustomerStatus.ERASED:
            customer = None  # an erased customer's late sale counts like an anonymous one
    total = parse_amount(data.get("total_amount"), field="total_amount", allow_zero=True)
    items = purchase_items_parse(data.get("items"))
    purchase, created = purchase_record(
        tenant_id=envelope.tenant_id,
        source=source,
        source_id=source_id,
        customer=customer,
        total_amount=total,
        currency=data.get("currency") or None,
        completed_at=_timestamp(data, "completed_at"),
        channel=str(data.get("channel") or ("pos" if source == "pos" else "")),
        store_id=str(data.get("store_id") or ""),
        items=items,
    )
    outcome = "applied" if created else "purchase_already_recorded"
    if customer is not None and total > 0:
        outcome += _points_earn(envelope, customer, source, source_id, total, purchase.currency, items)
    return outcome


def _points_earn(
    envelope: Envelope,
    customer: Any,
    source: str,
    source_id: str,
    total: Decimal,
    currency: str,
    items: list[dict[str, Any]],
) -> str:
    from core.errors import Conflict, NotFound
    from loyalty.services import points_earn

    try:
        points_earn(
            customer=customer,
            idempotency_key=loyalty_idempotency_key(source, source_id),
            purchase_amount=total,
            currency=currency,
            reference=source_id,
            items=[
                {**item, "quantity": str(item["quantity"]), "unit_price": str(item["unit_price"])}
                for item in items
            ],
            source="event",
            actor=f"event:{envelope.event_id}",
        )
    except (Conflict, NotFound, IdempotencyKeyReused) as exc:
        # The purchase is a fact and stays recorded; the points were refused by a business rule, or were already
        # earned for this sale through AddLoyaltyPoints with other details.
        logger.warning(
            "Event %s: points not earned for %s %s: %s", envelope.event_id, source, source_id, exc.code
        )
        return f"; points_skipped:{exc.code}"
    return ""


def _order_completed(envelope: Envelope) -> str:
    return _purchase_apply(envelope, source="order", id_field="order_id")


def _pos_transaction_completed(envelope: Envelope) -> str:
    return _purchase_apply(envelope, source="pos", id_field="transaction_id")


def _payment_received(envelope: Envelope) -> str:
    from core.errors import Conflict, NotFound
    from core.money import parse_amount
    from credit.services import payment_record
    from customers.models import Customer

    data = envelope.data
    payment_id = _required_str(data, "payment_id")
    customer_uuid = _customer_uuid(data.get("customer_id"))
    if customer_uuid is None:
        return "skipped:no_customer"  # a payment nobody owes us on credit (anonymous sale)
    customer = Customer.objects.filter(pk=customer_uuid).first()  # erased ones too: the money is real
    if customer is None:
        raise CustomerNotYetKnown(str(customer_uuid))
    received_at = _optional_timestamp(data.get("received_at"))
    if data.get("received_at") and received_at is None:
        raise PoisonMessage(
            "invalid_timestamp", f"data.received_at {data.get('received_at')!r} is not RFC 3339"
        )
    order_id = data.get("order_id")
    try:
        payment_record(
            customer=customer,
            payment_id=payment_id,
            amount=parse_amount(data.get("amount"), field="amount"),
            currency=data.get("currency") or None,
            order_id=str(order_id) if order_id else None,
            received_at=received_at,
            actor=f"event:{envelope.event_id}",
        )
    except (NotFound, Conflict) as exc:
        # e.g. no credit line: the payment settles nothing on credit; recorded as seen, not an error
        logger.info("Event %s: payment %s not applied to credit: %s", envelope.event_id, payment_id, exc.code)
        return f"skipped:{exc.code}"
    return "applied"


@dataclass(frozen=True)
class Route:
    name: str
    exchange: str
    routing_key: str
    handler: Callable[[Envelope], str] = field(compare=False)

    @property
    def event_type(self) -> str:
        return self.routing_key


ROUTES = (
    Route("order", "order_events", ORDER_COMPLETED, _order_completed),
    Route("pos", "pos_events", POS_TRANSACTION_COMPLETED, _pos_transaction_completed),
    Route("payment", "payment_events", PAYMENT_RECEIVED, _payment_received),
)


# --- applying one message in one transaction ------------------------------------------------------------------
from core.idempotency import EVENTS_SCOPE  # noqa: E402 - the key space of consumed events


def event_apply(route: Route, body: bytes | str) -> str:
    """Apply one message (dedupe record + effect) in one transaction; returns the outcome.

    The event id is claimed through core's idempotency mechanism (scope `events`) before the effect runs: a
    redelivery finds it (or waits for the first delivery's transaction) and is a no-op, `duplicate`; the same event
    id with another type or data is refused as `idempotency_key_reused` (dead-lettered).
    Raises PoisonMessage (dead-letter it), CustomerNotYetKnown (park it), or a database error (retry it).
    """
    from core.idempotency import idempotent
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
                work=lambda record: {"outcome": route.handler(envelope)[:200]},
            )
            return "duplicate" if replayed else str(result["outcome"])
    except DomainError as exc:
        from customers.errors import CustomerNotFound

        if isinstance(exc, CustomerNotFound) and exc.details.get("customer_id"):
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
    """Only with an AMQP broker (never the embedded filesystem transport), unless EVENTS_CONSUMER_ENABLED=0."""
    flag = _conf("EVENTS_CONSUMER_ENABLED", "1").strip().lower()
    return bool(getattr(settings, "BROKER_IS_AMQP", False)) and flag not in {"0", "false", "no", "off"}


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
