"""Print the events this service publishes, one JSON line each (the envelope as published), as they come.

    python manage.py events_tail [--type PATTERN] [--count N]

Binds a queue of its own to the `customer_events` topic exchange with the routing key PATTERN (default `#`: every
event; `loyalty.#`, `customer.*`, `credit.used` ...), so it sees what is published while it runs, and takes
nothing from anybody else's queue. Against RabbitMQ the queue is exclusive and auto-delete; on the embedded Redis
of `make run` (where kombu keeps the exchange's bindings in Redis) the command deletes its queue when it stops,
and a queue left by a killed one expires.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu import Connection, Consumer, Message, Queue

from core.relay import EXCHANGE

# Redis only (RabbitMQ drops an exclusive queue with its connection): unconsumed for this long, the list goes
EMBEDDED_QUEUE_EXPIRES = 60.0


class Command(BaseCommand):
    help = "Print each event published to the customer_events exchange as one JSON line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--type",
            default="#",
            metavar="PATTERN",
            help="Routing-key pattern of the events to show: `*` is one word, `#` any number (default `#`).",
        )
        parser.add_argument(
            "--count", type=int, default=0, help="Stop after this many events (default: never)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.OUTBOX_RELAY_ENABLED:
            raise CommandError(
                "No broker is configured: start `make run` (its embedded Redis is found by manage.py) or set "
                "CELERY_BROKER_URL."
            )
        pattern = options["type"].strip() or "#"
        limit = max(options["count"], 0)
        amqp = settings.BROKER_IS_AMQP
        name = f"events-tail.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
        queue = Queue(
            name,
            EXCHANGE,
            routing_key=pattern,
            durable=False,
            auto_delete=True,
            exclusive=amqp,
            expires=None if amqp else EMBEDDED_QUEUE_EXPIRES,
        )
        stop = threading.Event()
        printed = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)

        def on_message(message: Message) -> None:
            nonlocal printed
            body = message.body
            text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
            sys.stdout.write(text.strip() + "\n")
            sys.stdout.flush()
            message.ack()
            printed += 1
            if limit and printed >= limit:
                stop.set()

        with Connection(settings.CELERY_BROKER_URL, heartbeat=0, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=3)
            channel = connection.channel()
            bound = queue(channel)
            bound.declare()
            try:
                with Consumer(channel, queues=[bound], on_message=on_message, accept=None):
                    self.stderr.write(
                        f"Waiting for events on {EXCHANGE.name} matching {pattern!r} in queue {name} (Ctrl-C stops)"
                    )
                    self.stderr.flush()
                    while not stop.is_set():
                        try:
                            connection.drain_events(timeout=0.5)
                        except TimeoutError:
                            continue
            finally:
                if not amqp:
                    bound.delete()
