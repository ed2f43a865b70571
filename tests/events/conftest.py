"""Fixtures of the event tests: a per-run namespace on the shared RabbitMQ, a real Celery worker on the test
database, a broker client that publishes the way the other services do, and tenants of this run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue

from tests.conftest import require_service
from tests.waiting import wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:8]
PREFIX = f"zltest-{RUN_ID}"
TASK_QUEUE = f"{PREFIX}.tasks"

# Read at call time by the relay and the consumer, in this process and in the worker it starts.
TEST_ENV = {
    "EVENTS_QUEUE_PREFIX": PREFIX,
    "CELERY_TASK_DEFAULT_QUEUE": TASK_QUEUE,
    "EVENTS_PARK_DELAY_SECONDS": "1",
    "EVENTS_PARK_MAX_ATTEMPTS": "3",
    "EVENTS_DB_RETRY_MAX_SECONDS": "2",
    "OUTBOX_RELAY_MAX_BACKOFF_SECONDS": "1",
}
os.environ.update(TEST_ENV)
# the relay's after-commit kick in this process sends to the queue the test worker consumes
settings.CELERY_TASK_DEFAULT_QUEUE = TASK_QUEUE


# --- the broker -------------------------------------------------------------------------------------------------
class Broker:
    """Publishes raw JSON as the Order, POS and Payment services would, and reads queues."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = Connection(url, transport_options={"confirm_publish": True}, heartbeat=0)

    def _channel(self) -> Any:
        self.connection.ensure_connection(
            max_retries=20, interval_start=0.5, interval_step=0.5, interval_max=2
        )
        return self.connection.default_channel

    def reconnect(self) -> None:
        self.connection.release()
        self.connection = Connection(self.url, transport_options={"confirm_publish": True}, heartbeat=0)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: dict[str, Any] | bytes,
        headers: dict[str, Any] | None = None,
    ) -> None:
        import json

        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        channel = self._channel()
        Exchange(exchange, type="topic", durable=True)(channel).declare()
        message = channel.prepare_message(
            raw,
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers or {},
            properties={"delivery_mode": 2},
        )
        channel.basic_publish(message, exchange=exchange, routing_key=routing_key)

    def declare(self, queue: Queue) -> None:
        queue(self._channel()).declare()

    def delete_queue(self, name: str) -> None:
        with contextlib.suppress(Exception):  # best effort cleanup
            channel = self.connection.channel()
            channel.queue_delete(name)
            channel.close()

    def delete_exchange(self, name: str) -> None:
        with contextlib.suppress(Exception):  # best effort cleanup
            channel = self.connection.channel()
            channel.exchange_delete(name)
            channel.close()

    def depth(self, name: str) -> tuple[int, int] | None:
        """(ready messages, consumers), or None when the queue does not exist."""
        try:
            channel = self.connection.channel()
        except Exception:
            self.reconnect()
            channel = self.connection.channel()
        try:
            _, messages, consumers = channel.queue_declare(name, passive=True)
            return messages, consumers
        except Exception:
            return None
        finally:
            with contextlib.suppress(Exception):
                channel.close()

    def get_all(self, name: str) -> list[Any]:
        """Every message now in the queue (acked: removed)."""
        channel = self._channel()
        messages = []
        while True:
            message = channel.basic_get(name, no_ack=True)
            if message is None:
                return messages
            messages.append(message)

    def close(self) -> None:
        self.connection.release()


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = require_service("CELERY_BROKER_URL", "RabbitMQ")
    if not url.startswith(("amqp://", "pyamqp://", "amqps://")):
        pytest.skip(f"CELERY_BROKER_URL is not RabbitMQ ({url.split(':')[0]})")
    return url


@pytest.fixture(scope="session")
def broker(broker_url: str) -> Iterator[Broker]:
    client = Broker(broker_url)
    yield client
    # the run's queues and exchange: nothing of this run is left bound to the shared exchanges
    from core.consumers import EventsConfig, topology

    t = topology(EventsConfig(prefix=PREFIX))
    for queue in [*t.queues.values(), *t.parked.values(), t.dead_letter_queue]:
        client.delete_queue(queue.name)
    client.delete_queue(TASK_QUEUE)
    client.delete_queue(f"{PREFIX}.customer-events")
    client.delete_exchange(t.dead_letter_exchange.name)
    client.delete_exchange(TASK_QUEUE)  # Celery's direct exchange of the task queue
    client.close()


@pytest.fixture
def customer_events_queue(broker: Broker) -> Iterator[str]:
    """A queue of this run bound to every event we publish to `customer_events`."""
    name = f"{PREFIX}.customer-events"
    broker.declare(
        Queue(name, Exchange("customer_events", type="topic", durable=True), routing_key="#", durable=True)
    )
    broker.get_all(name)
    yield name


# --- the worker -------------------------------------------------------------------------------------------------
def database_url_for_tests(*, owner: bool = False) -> str:
    """The test database's URL, for the app's role (or the owner role: DDL, database settings), made from the
    parameters Django itself connects with: a TCP host, or the embedded server's socket directory (in the query,
    as the launcher writes it)."""
    from django.conf import settings
    from django.db import connection

    params = connection.get_connection_params()
    user, password = params.get("user") or "", params.get("password") or ""
    if owner:
        user, password = settings.DATABASE_OWNER["USER"], settings.DATABASE_OWNER["PASSWORD"]
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
    host, port = str(params.get("host") or "127.0.0.1"), params.get("port") or 5432
    if host.startswith("/"):
        return f"postgres://{auth}/{params['dbname']}?host={quote(host, safe='')}&port={port}"
    return f"postgres://{auth}{host}:{port}/{params['dbname']}"


class Worker:
    """`celery -A config worker` in a process group of its own, on the test database and this run's queues."""

    def __init__(self, broker: Broker, env: dict[str, str]) -> None:
        self.broker = broker
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"{PREFIX}-worker-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--loglevel", "INFO", "--concurrency", "1", "--queues", TASK_QUEUE,
            "--hostname", f"{PREFIX}-{uuid.uuid4().hex[:4]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603
            argv,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def queue_names(self) -> list[str]:
        from core.consumers import EventsConfig, topology

        return [q.name for q in topology(EventsConfig(prefix=PREFIX)).queues.values()]

    def consumers(self) -> list[int]:
        return [(self.broker.depth(name) or (0, 0))[1] for name in [*self.queue_names(), TASK_QUEUE]]

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited ({self.process.returncode}):\n{self.output()}")
            return all(count >= 1 for count in self.consumers())

        wait_until(ready, timeout=60, interval=0.3, what="the worker to consume its queues")

    def kill(self) -> None:
        """SIGKILL the worker and its pool, as the OOM killer or a lost machine would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        wait_until(
            lambda: all(count == 0 for count in self.consumers()), timeout=30, what="the consumers to go"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-20000:]


@pytest.fixture(scope="session")
def worker(broker: Broker, django_db_setup: Any, django_db_blocker: Any) -> Iterator[Worker]:
    with django_db_blocker.unblock():
        database_url = database_url_for_tests()
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    process = Worker(broker, env)
    process.start()
    yield process
    process.stop()
    if os.environ.get("EVENTS_TEST_KEEP_LOG") != "1":
        Path(process.log.name).unlink(missing_ok=True)


# --- data -------------------------------------------------------------------------------------------------------
@pytest.fixture
def tenant(transactional_db: Any) -> Any:
    """A tenant of this run only: another run's consumers see its events as an unknown tenant."""
    from tests.factories import TenantFactory

    return TenantFactory(
        slug=f"ev-{RUN_ID}", name="Events Tenant", country="CL", phone_region="CL", currency="CLP"
    )


@pytest.fixture
def customer(tenant: Any) -> Any:
    from tests.factories import CustomerFactory

    return CustomerFactory(tenant=tenant)


def envelope(
    event_type: str, tenant: Any, data: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": "2026-03-01T12:00:00Z",
        "tenant_id": tenant if isinstance(tenant, str) else tenant.slug,
        "version": 1,
        "data": data,
    }


def order_completed(tenant: Any, customer_id: Any, *, order_id: str | None = None, total: str = "12500.00",
                    items: list[dict[str, Any]] | None = None, **data: Any) -> dict[str, Any]:  # fmt: skip
    return envelope(
        "order.completed",
        tenant,
        {
            "order_id": order_id or f"ORD-{uuid.uuid4().hex[:10]}",
            "customer_id": str(customer_id) if customer_id else "",
            "total_amount": total,
            "currency": "CLP",
            "completed_at": "2026-03-01T11:59:00Z",
            "channel": "web",
            "items": items
            if items is not None
            else [{"sku": "SKU-1", "category": "grocery", "quantity": 2, "unit_price": "6250.00"}],
            **data,
        },
    )


def pos_completed(tenant: Any, customer_id: Any, *, transaction_id: str | None = None, total: str = "3000.00",
                  **data: Any) -> dict[str, Any]:  # fmt: skip
    return envelope(
        "pos.transaction.completed",
        tenant,
        {
            "transaction_id": transaction_id or f"POS-{uuid.uuid4().hex[:10]}",
            "customer_id": str(customer_id) if customer_id else "",
            "store_id": "store-7",
            "total_amount": total,
            "currency": "CLP",
            "completed_at": "2026-03-02T09:30:00-03:00",
            "items": [{"sku": "COFFEE", "category": "cafe", "quantity": "1", "unit_price": total}],
            **data,
        },
    )


def payment_received(tenant: Any, customer_id: Any, *, payment_id: str | None = None, amount: str = "1000.00",
                     **data: Any) -> dict[str, Any]:  # fmt: skip
    return envelope(
        "payment.received",
        tenant,
        {
            "payment_id": payment_id or f"PAY-{uuid.uuid4().hex[:10]}",
            "customer_id": str(customer_id),
            "amount": amount,
            "currency": "CLP",
            "received_at": "2026-03-03T10:00:00Z",
            **data,
        },
    )


@dataclass(frozen=True)
class Processed:
    """What the consumer recorded for an event id (its idempotency record)."""

    outcome: str


def processed(tenant: Any, event_id: str) -> Processed | None:
    """The dedupe record of an event (committed by the worker), or None."""
    from core.models import IdempotencyRecord
    from core.tenancy import tenant_context

    with tenant_context(tenant):
        record = IdempotencyRecord.objects.filter(scope="events", key=str(event_id)).first()
    return None if record is None else Processed(outcome=record.result.get("outcome", ""))


def dead_letters(broker: Broker, wanted: set[str], *, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for the dead-lettered messages of these event ids; {event_id: message}. Others are left alone."""
    import json

    found: dict[str, Any] = {}
    queue = f"{PREFIX}.dead-letter"

    def collect() -> bool:
        for message in broker.get_all(queue):
            try:
                event_id = str(json.loads(message.body).get("event_id"))
            except Exception:
                event_id = message.headers.get("x-test-id", "") if message.headers else ""
            found[event_id] = message
        return wanted <= set(found)

    wait_until(collect, timeout=timeout, interval=0.3, what=f"dead letters {wanted - set(found)}")
    return {key: value for key, value in found.items() if key in wanted}
