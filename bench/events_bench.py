"""Benchmark of event ingestion (not a test): `order.completed` events through a real RabbitMQ, applied by the real
Celery worker's consumer, against a bare consumer doing the same inserts with psycopg.

    DATABASE_URL=... CELERY_BROKER_URL=amqp://... .venv/bin/python bench/events_bench.py [--events 2000]
        [--customers 10000] [--two-workers] [--json-out FILE]

Both sides read the same kind of message (the envelope the Order service publishes, one item, a known customer)
from a queue of this run's own (published through the default exchange straight into it, so no other consumer of
the shared `order_events` exchange sees them), and ack each message after its transaction committed:

- worker: `celery -A config worker` with this run's `EVENTS_QUEUE_PREFIX`; the queue is filled first, then the
  worker starts; the rate is counted from the first applied event to the last (`core_processedevent`), so the
  worker's start-up is left out. `--two-workers`: the same with two worker processes.
- bare consumer: kombu with the same prefetch, one psycopg connection, per message one transaction with the data
  statements the worker's consumer sends (dedupe record, purchase and its item, the customer's metrics from its
  purchases, the earn: key, locked account, qualifying sum, ledger row, award, account, outbox event, result).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_sql
import data

PREFETCH = 10

BARE_EVENT = [
    bare_sql.TENANT_SETTINGS,
    (
        "INSERT INTO core_processedevent (tenant_id, event_id, event_type, occurred_at, processed_at, outcome) "
        "VALUES (%(tenant)s, %(event_id)s, 'order.completed', %(now)s, now(), '') "
        "ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id"
    ),
    bare_sql.CUSTOMER_BY_ID,
    "SELECT currency FROM core_tenant WHERE slug = %(tenant)s",
    (
        "INSERT INTO customers_purchase (tenant_id, id, customer_id, source, source_id, channel, store_id, "
        "total_amount, currency, completed_at, created_at) VALUES (%(tenant)s, %(purchase)s, %(customer)s, "
        "'order', %(order)s, 'web', '', %(amount)s, 'CLP', %(now)s, %(now)s) "
        "ON CONFLICT DO NOTHING"
    ),
    (
        "INSERT INTO customers_purchaseitem (tenant_id, purchase_id, sku, category, quantity, unit_price) "
        "VALUES (%(tenant)s, %(purchase)s, 'SKU-1', 'grocery', 1, %(amount)s) RETURNING id"
    ),
    (
        "INSERT INTO customers_customermetrics (tenant_id, customer_id, order_count, lifetime_value, "
        "average_order_value, first_purchase_at, last_purchase_at, purchase_frequency_days, updated_at) "
        "SELECT %(tenant)s, %(customer)s, count(*), sum(total_amount), round(avg(total_amount), 2), "
        "min(completed_at), max(completed_at), NULL, now() FROM customers_purchase WHERE customer_id = %(customer)s "
        "ON CONFLICT (customer_id) DO UPDATE SET order_count = EXCLUDED.order_count, "
        "lifetime_value = EXCLUDED.lifetime_value, average_order_value = EXCLUDED.average_order_value, "
        "first_purchase_at = EXCLUDED.first_purchase_at, last_purchase_at = EXCLUDED.last_purchase_at, "
        "updated_at = EXCLUDED.updated_at"
    ),
    *bare_sql.EARN[3:],  # the earn, from claiming its key on
    "UPDATE core_processedevent SET outcome = 'applied' WHERE tenant_id = %(tenant)s AND event_id = %(event_id)s",
]


def publish(broker_url: str, queue: Any, bodies: list[dict[str, Any]]) -> None:
    """Publish persistent messages with publisher confirms straight into `queue` (declared first)."""
    from kombu import Connection

    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        queue(channel).declare()
        for body in bodies:
            message = channel.prepare_message(
                json.dumps(body).encode(),
                content_type="application/json",
                content_encoding="utf-8",
                properties={"delivery_mode": 2},
            )
            channel.basic_publish(message, exchange="", routing_key=queue.name)
        channel.close()


def applied_span(since: datetime) -> tuple[int, float]:
    """(events applied since `since`, seconds from the first to the last of them)."""
    from django.db import connection

    from core.tenancy import tenant_context

    with tenant_context(data.TENANT), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), extract(epoch FROM max(processed_at) - min(processed_at)) FROM core_processedevent "
            "WHERE event_type = 'order.completed' AND processed_at >= %s",
            [since],
        )
        count, span = cursor.fetchone()
    return int(count), float(span or 0.0)


def database_now() -> datetime:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]  # type: ignore[no-any-return]


def outbox_mark_published() -> None:
    """What earlier scenarios wrote stays out of the relay's way (and off the shared exchange)."""
    from django.db import connection

    from core.tenancy import all_tenants_context

    with all_tenants_context(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_outboxevent SET published_at = now() WHERE published_at IS NULL")


def profile_summary(path: str) -> None:
    """Where the worker's threads spend their time (py-spy with idle samples: waiting counts), inclusive, by the
    functions of the service and the libraries that matter here."""
    import collections

    total = 0
    counts: collections.Counter[str] = collections.Counter()
    own = ("core/", "customers/", "loyalty/", "credit/", "segmentation/", "kombu/", "amqp/", "psycopg/")
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit() or ("core/consumers.py" not in stack and "core/relay.py" not in stack):
            continue
        total += int(number)
        seen = set()
        for frame in stack.split(";"):
            function, _, where = frame.partition(" (")
            file = where.split(":")[0]
            key = f"{file}:{function}"
            if file.startswith(own) and key not in seen:
                seen.add(key)
                counts[key] += int(number)
    print(f"  profile of the worker's consumer and relay threads ({total} samples, idle included):")
    for key, count in counts.most_common(25):
        print(f"    {100 * count / max(total, 1):5.1f}%  {key}")


def run_workers(args: argparse.Namespace, customers: list[str], processes: int) -> dict[str, float]:
    from core.consumers import EventsConfig, topology

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    config = EventsConfig(prefix=prefix)
    queue = topology(config).queues["order"]
    bodies = [data.order_event(customers[n % len(customers)]) for n in range(args.events)]
    publish(args.broker_url, queue, bodies)
    outbox_mark_published()
    since = database_now()
    env = {
        **os.environ,
        "EVENTS_QUEUE_PREFIX": prefix,
        "CELERY_TASK_DEFAULT_QUEUE": f"{prefix}.tasks",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    logs = []
    workers = []
    for n in range(processes):
        log = tempfile.NamedTemporaryFile(prefix=f"{prefix}-worker-", suffix=".log", delete=False)  # noqa: SIM115
        logs.append(log)
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING",
            "--concurrency", "1", "--queues", f"{prefix}.tasks", "--hostname", f"{prefix}-{n}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        workers.append(
            subprocess.Popen(
                argv, cwd=data.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    deadline = time.monotonic() + args.timeout
    spy = None
    if args.profile and processes == 1:
        out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name  # noqa: SIM115
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(workers[0].pid), "--idle",
             "--subprocesses", "--rate", "200", "--format", "raw", "--output", out, "--nonblocking",
             "--duration", "20"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        while True:
            count, span = applied_span(since)
            if count >= args.events:
                break
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                tail = Path(logs[0].name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the worker applied {count} of {args.events} events:\n{tail}")
            time.sleep(0.5)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, 15)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
        cleanup(args.broker_url, config)
        for log in logs:
            Path(log.name).unlink(missing_ok=True)
    if spy is not None:
        spy.wait(60)
        profile_summary(out)
    rate = (count - 1) / span if span else float("nan")
    print(f"  worker x{processes}: {count:,} events in {span:.1f} s: {rate:,.1f} events/s", flush=True)
    return {"events": count, "seconds": span, "rate": rate}


def cleanup(broker_url: str, config: Any) -> None:
    import contextlib

    from kombu import Connection

    from core.consumers import topology

    t = topology(config)
    with Connection(broker_url) as connection:
        channel = connection.channel()
        for queue in [*t.queues.values(), *t.parked.values(), t.dead_letter_queue]:
            with contextlib.suppress(Exception):
                channel.queue_delete(queue.name)
        for name in (f"{config.prefix}.tasks",):
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
        with contextlib.suppress(Exception):
            channel.exchange_delete(t.dead_letter_exchange.name)
            channel.exchange_delete(f"{config.prefix}.tasks")
        channel.close()


def run_bare(args: argparse.Namespace, customers: list[str]) -> dict[str, float]:
    import psycopg
    from kombu import Connection, Consumer, Queue

    name = f"bench-{uuid.uuid4().hex[:8]}.bare"
    queue = Queue(name, durable=True)
    publish(
        args.broker_url, queue, [data.order_event(customers[n % len(customers)]) for n in range(args.events)]
    )
    database = psycopg.connect(os.environ["DATABASE_URL"], autocommit=False)
    database.prepare_threshold = 0
    done = 0
    first = last = 0.0

    def apply(body: Any, message: Any) -> None:
        nonlocal done, first, last
        envelope = json.loads(message.body)
        event = envelope["data"]
        now = datetime.fromisoformat(event["completed_at"].replace("Z", "+00:00"))
        params = bare_sql._params(
            event["customer_id"],
            "",
            event_id=envelope["event_id"],
            order=event["order_id"],
            key=f"order:{event['order_id']}",
            purchase=uuid.uuid4(),
            amount=event["total_amount"],
            points=125,
            now=now,
            year_ago=now - timedelta(days=365),
        )
        with database.transaction(), database.cursor() as cursor:
            for sql in BARE_EVENT:
                cursor.execute(sql, params)
                if sql == bare_sql.LOCK_ACCOUNT:
                    params["account"] = cursor.fetchone()[0]  # type: ignore[index]
        message.ack()
        done += 1
        last = time.perf_counter()
        if done == 1:
            first = last

    with Connection(args.broker_url) as connection:
        channel = connection.channel()
        consumer = Consumer(
            channel, queues=[queue], callbacks=[apply], accept=["json"], prefetch_count=PREFETCH
        )
        consumer.qos(prefetch_count=PREFETCH)
        with consumer:
            deadline = time.monotonic() + args.timeout
            while done < args.events and time.monotonic() < deadline:
                connection.drain_events(timeout=5)
        channel.queue_delete(name)
        channel.close()
    database.close()
    rate = (done - 1) / (last - first) if last > first else float("nan")
    print(f"  bare consumer: {done:,} events in {last - first:.1f} s: {rate:,.1f} events/s", flush=True)
    return {"events": done, "seconds": last - first, "rate": rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--two-workers", action="store_true", help="also with two worker processes")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", action="store_true", help="sample the worker with py-spy (20 s)")
    parser.add_argument("--json-out", default="")
    args = parser.parse_args(argv)
    args.broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not args.broker_url.startswith(("amqp://", "pyamqp://", "amqps://")):
        print("event ingestion: skipped (CELERY_BROKER_URL is not a RabbitMQ)")
        return 0
    data.setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    people = data.customers_load(args.customers)
    ids = [pk for pk, _ in people]
    data.accounts_ensure(ids)
    print(f"event ingestion: {args.events:,} order.completed events (one item each) per run", flush=True)
    results = {"bare_consumer": run_bare(args, ids), "event_ingest": run_workers(args, ids, 1)}
    if args.two_workers:
        results["event_ingest_2_workers"] = run_workers(args, ids, 2)
    ratio = results["event_ingest"]["rate"] / results["bare_consumer"]["rate"]
    print(f"  event_ingest/bare_consumer = {ratio:.2f}  (goal >= 0.50)")
    out: dict[str, Any] = {"scenarios": results, "ratios": {"event_ingest/bare_consumer": ratio}}
    if args.two_workers:
        scaling = results["event_ingest_2_workers"]["rate"] / results["event_ingest"]["rate"]
        print(f"  two workers / one worker = {scaling:.2f}  (goal about 2)")
        out["growth"] = {"event_ingest_2_workers/event_ingest": scaling}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
