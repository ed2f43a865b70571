"""`manage.py events_tail` against the real RabbitMQ: an exclusive auto-delete queue of its own on customer_events."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from core.outbox import outbox_record
from core.relay import outbox_relay, relay_connection_close
from core.tenancy import tenant_context
from tests.events.conftest import PROJECT_ROOT, database_url_for_tests, wait_until


def queue_state(broker: Any, name: str) -> str:
    """What a passive declare from another connection says: "exclusive" (another connection's), "gone", "open"."""
    from amqp.exceptions import NotFound, ResourceLocked
    from kombu import Connection

    with Connection(broker.url) as connection:
        try:
            connection.channel().queue_declare(name, passive=True)
        except ResourceLocked:
            return "exclusive"
        except NotFound:
            return "gone"
    return "open"


pytestmark = [pytest.mark.rabbitmq, pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_events_tail_prints_the_matching_events_and_leaves_no_queue(
    broker: Any, tenant: Any, django_db_blocker: Any
) -> None:
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": database_url_for_tests()}
    tail = subprocess.Popen(
        [sys.executable, "manage.py", "events_tail", "--type", "customer.*"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert tail.stdout is not None and tail.stderr is not None
        ready = tail.stderr.readline()
        queue = re.search(r"in queue (\S+)", ready)
        assert queue, ready
        assert queue_state(broker, queue.group(1)) == "exclusive"  # its own, while it runs
        threading.Thread(target=lambda: lines.extend(tail.stdout), daemon=True).start()  # type: ignore[arg-type]
        with tenant_context(tenant):
            wanted = outbox_record(
                tenant_id=tenant.slug, event_type="customer.updated", data={}, aggregate_id="t"
            )
            outbox_record(
                tenant_id=tenant.slug, event_type="loyalty.points.earned", data={}, aggregate_id="t"
            )
        outbox_relay()
        relay_connection_close()

        def printed() -> list[dict[str, Any]]:
            envelopes = [json.loads(line) for line in list(lines)]
            return envelopes if any(e["event_id"] == str(wanted.event_id) for e in envelopes) else []

        envelopes = wait_until(printed, timeout=30, what="events_tail to print the event")
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(15) == 0
    finally:
        tail.kill()
    assert all(e["event_type"].startswith("customer.") for e in envelopes)  # the pattern: no loyalty event
    event = next(e for e in envelopes if e["event_id"] == str(wanted.event_id))
    assert (event["event_type"], event["tenant_id"]) == ("customer.updated", tenant.slug)
    wait_until(lambda: queue_state(broker, queue.group(1)) == "gone", timeout=10, what="the queue to go")
