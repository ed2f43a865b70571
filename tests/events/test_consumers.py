"""Orders, POS sales and payments published to RabbitMQ the way the other services do, applied by a real Celery
worker on the real test database: effects, dedupe, dead letters, parking, and a worker killed mid-message."""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from core.tenancy import tenant_context
from tests.events.conftest import (
    PREFIX,
    database_url_for_tests,
    dead_letters,
    order_completed,
    payment_received,
    pos_completed,
    processed,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]


def purchases(tenant: Any, **filters: Any) -> list[Any]:
    from customers.models import Purchase

    with tenant_context(tenant):
        return list(Purchase.objects.filter(**filters).prefetch_related("items"))


def metrics_of(tenant: Any, customer: Any) -> Any:
    from customers.models import CustomerMetrics

    with tenant_context(tenant):
        return CustomerMetrics.objects.filter(customer_id=customer.pk).first()


def points_balance(tenant: Any, customer: Any) -> int:
    from loyalty.selectors import loyalty_summary

    with tenant_context(tenant):
        return loyalty_summary(customer).points_balance


def applied(tenant: Any, event: dict[str, Any], timeout: float = 30.0) -> Any:
    return wait_until(
        lambda: processed(tenant, event["event_id"]), timeout=timeout, what=f"{event['event_type']}"
    )


def test_order_completed_records_the_purchase_metrics_and_points(worker, broker, tenant, customer):
    event = order_completed(
        tenant,
        customer.id,
        total="12500.00",
        items=[
            {"sku": "SKU-1", "category": "grocery", "quantity": 2, "unit_price": "5000.00"},
            {"sku": "SKU-2", "category": "bakery", "quantity": "1.5", "unit_price": "1666.67"},
        ],
    )
    broker.publish("order_events", "order.completed", event)

    record = applied(tenant, event)
    assert record.outcome == "applied"
    [purchase] = purchases(tenant, source_id=event["data"]["order_id"])
    assert (purchase.source, purchase.customer_id, purchase.channel) == ("order", customer.id, "web")
    assert purchase.total_amount == Decimal("12500.00")
    assert sorted((i.sku, i.quantity, i.unit_price) for i in purchase.items.all()) == [
        ("SKU-1", Decimal("2.000"), Decimal("5000.00")),
        ("SKU-2", Decimal("1.500"), Decimal("1666.67")),
    ]
    metrics = metrics_of(tenant, customer)
    assert (metrics.order_count, metrics.lifetime_value, metrics.average_order_value) == (
        1,
        Decimal("12500.00"),
        Decimal("12500.00"),
    )
    # the default program: 1 point per currency unit
    assert points_balance(tenant, customer) == 12500


def test_a_blocked_customers_order_is_recorded_but_earns_nothing(worker, broker, tenant, customer):
    from customers.services import customer_update

    with tenant_context(tenant):
        customer = customer_update(customer=customer, data={"status": "blocked"}, actor="t")
    event = order_completed(tenant, customer.id, total="2000.00")
    broker.publish("order_events", "order.completed", event)

    record = applied(tenant, event)
    assert (
        record.outcome == "applied; points_skipped:customer_blocked"
    )  # not dead-lettered: the sale is a fact
    assert len(purchases(tenant, source_id=event["data"]["order_id"])) == 1
    assert metrics_of(tenant, customer).order_count == 1
    assert points_balance(tenant, customer) == 0


def test_pos_sales_identified_and_anonymous(worker, broker, tenant, customer):
    identified = pos_completed(tenant, customer.id, total="3000.00")
    anonymous = pos_completed(tenant, "", total="4500.00")
    broker.publish("pos_events", "pos.transaction.completed", identified)
    broker.publish("pos_events", "pos.transaction.completed", anonymous)
    applied(tenant, identified)
    applied(tenant, anonymous)

    [sale] = purchases(tenant, source_id=identified["data"]["transaction_id"])
    assert (sale.source, sale.store_id, sale.channel, sale.customer_id) == (
        "pos",
        "store-7",
        "pos",
        customer.id,
    )
    [walk_in] = purchases(tenant, source_id=anonymous["data"]["transaction_id"])
    assert walk_in.customer_id is None
    # the anonymous sale counts only toward the tenant's figures
    metrics = metrics_of(tenant, customer)
    assert (metrics.order_count, metrics.lifetime_value) == (1, Decimal("3000.00"))
    from customers.history import sales_kpis

    with tenant_context(tenant):
        kpis = sales_kpis(
            start=sale.completed_at.replace(year=2020), end=sale.completed_at.replace(year=2030)
        )
    assert (kpis["sales_count"], kpis["revenue"], kpis["anonymous_sales_count"]) == (2, Decimal("7500.00"), 1)


def test_pos_sale_and_add_loyalty_points_for_the_same_sale_earn_once(worker, broker, tenant, customer):
    from loyalty.handlers import loyalty_idempotency_key
    from loyalty.services import points_earn

    transaction_id = f"POS-{uuid.uuid4().hex[:8]}"
    # the terminal called AddLoyaltyPoints first, with the key derived from its transaction id
    with tenant_context(tenant):
        points_earn(
            customer=customer,
            idempotency_key=loyalty_idempotency_key("pos", transaction_id),
            purchase_amount=Decimal("3000.00"),
            currency="CLP",
            reference=transaction_id,
        )
    event = pos_completed(tenant, customer.id, transaction_id=transaction_id, total="3000.00")
    broker.publish("pos_events", "pos.transaction.completed", event)
    applied(tenant, event)

    assert len(purchases(tenant, source_id=transaction_id)) == 1
    assert points_balance(tenant, customer) == 3000


def test_payment_received_releases_credit_exposure(worker, broker, tenant):
    from credit.selectors import credit_summary
    from credit.services import credit_line_approve, credit_line_request, credit_use
    from tests.factories import BusinessCustomerFactory

    business = BusinessCustomerFactory(tenant=tenant)
    with tenant_context(tenant):
        line = credit_line_request(
            customer=business, requested_limit=Decimal("100000"), payment_terms_days=30, requested_by="seller"
        )
        credit_line_approve(line=line, decided_by="manager")
        credit_use(
            customer=business, amount=Decimal("40000"), order_id="ORD-CREDIT-1", idempotency_key="use-1"
        )
        before = credit_summary(business).available
    assert before == Decimal("60000.00")

    event = payment_received(tenant, business.id, amount="25000.00", order_id="ORD-CREDIT-1")
    broker.publish("payment_events", "payment.received", event)
    assert applied(tenant, event).outcome == "applied"
    with tenant_context(tenant):
        assert credit_summary(business).available == Decimal("85000.00")


def test_the_same_event_delivered_twice_is_applied_once(worker, broker, tenant, customer):
    event = order_completed(tenant, customer.id, total="1000.00")
    broker.publish("order_events", "order.completed", event)
    broker.publish("order_events", "order.completed", event)
    # a different event for the same order (the producer retried with a new id): still one purchase
    again = order_completed(tenant, customer.id, order_id=event["data"]["order_id"], total="1000.00")
    broker.publish("order_events", "order.completed", again)

    applied(tenant, event)
    applied(tenant, again)
    queue = f"{PREFIX}.order.completed"
    wait_until(lambda: broker.depth(queue) == (0, 1), what="the order queue to drain")
    assert len(purchases(tenant, source_id=event["data"]["order_id"])) == 1
    assert metrics_of(tenant, customer).order_count == 1
    assert points_balance(tenant, customer) == 1000
    from core.models import IdempotencyRecord

    with tenant_context(tenant):
        assert IdempotencyRecord.objects.filter(scope="events", key=event["event_id"]).count() == 1


def test_malformed_messages_are_dead_lettered_with_their_reason_and_the_queue_keeps_flowing(
    worker, broker, tenant, customer
):
    wrong_currency = order_completed(tenant, customer.id, currency="USD")
    bad_amount = order_completed(tenant, customer.id, total="12,50")
    missing_id = order_completed(tenant, customer.id)
    del missing_id["data"]["order_id"]
    unknown_tenant = order_completed("no-such-tenant", customer.id)
    bad_time = pos_completed(tenant, customer.id, completed_at="yesterday")
    bad_payment = payment_received(tenant, customer.id, amount="-5")
    for event in (wrong_currency, bad_amount, missing_id, unknown_tenant):
        broker.publish("order_events", "order.completed", event)
    broker.publish("pos_events", "pos.transaction.completed", bad_time)
    broker.publish("payment_events", "payment.received", bad_payment)
    not_json_id = str(uuid.uuid4())
    broker.publish("order_events", "order.completed", b"{not json", headers={"x-test-id": not_json_id})
    good = order_completed(tenant, customer.id, total="500.00")
    broker.publish("order_events", "order.completed", good)

    letters = dead_letters(
        broker,
        {
            e["event_id"]
            for e in (wrong_currency, bad_amount, missing_id, unknown_tenant, bad_time, bad_payment)
        }
        | {not_json_id},
    )
    reasons = {key: message.headers["x-dead-letter-reason"] for key, message in letters.items()}
    assert reasons == {
        wrong_currency["event_id"]: "invalid_currency",
        bad_amount["event_id"]: "invalid_amount",
        missing_id["event_id"]: "invalid_data",
        unknown_tenant["event_id"]: "unknown_tenant",
        bad_time["event_id"]: "invalid_timestamp",
        bad_payment["event_id"]: "invalid_amount",
        not_json_id: "malformed_json",
    }
    letter = letters[missing_id["event_id"]]
    assert "order_id" in letter.headers["x-dead-letter-detail"]
    assert letter.headers["x-original-exchange"] == "order_events"
    assert letter.headers["x-original-queue"] == f"{PREFIX}.order.completed"
    assert json.loads(letter.body) == missing_id  # the original body, untouched
    # nothing of the refused events was applied; the good one behind them was
    applied(tenant, good)
    for event in (wrong_currency, bad_amount, missing_id, bad_time, bad_payment):
        assert processed(tenant, event["event_id"]) is None
    assert metrics_of(tenant, customer).order_count == 1


def test_an_event_for_a_customer_created_later_is_parked_then_applied(worker, broker, tenant):
    from customers.models import Customer

    customer_id = uuid.uuid4()
    event = order_completed(tenant, customer_id, total="700.00")
    broker.publish("order_events", "order.completed", event)
    parked = f"{PREFIX}.order.completed.parked"
    wait_until(lambda: (broker.depth(parked) or (0, 0))[0] >= 1, what="the message to be parked")
    assert processed(tenant, event["event_id"]) is None

    # the customer arrives (e.g. its customer.created was still on its way)
    with tenant_context(tenant):
        Customer.objects.create(id=customer_id, tenant=tenant, first_name="Late", last_name="Comer")
    applied(tenant, event)
    [purchase] = purchases(tenant, source_id=event["data"]["order_id"])
    assert purchase.customer_id == customer_id


def test_an_event_for_a_customer_that_never_appears_is_dead_lettered_after_the_retries(
    worker, broker, tenant
):
    event = pos_completed(tenant, uuid.uuid4())
    broker.publish("pos_events", "pos.transaction.completed", event)
    letters = dead_letters(broker, {event["event_id"]}, timeout=30)
    headers = letters[event["event_id"]].headers
    assert headers["x-dead-letter-reason"] == "customer_not_found"
    assert headers["x-park-count"] == 3  # EVENTS_PARK_MAX_ATTEMPTS of the test worker
    assert processed(tenant, event["event_id"]) is None


def test_a_worker_killed_in_the_middle_of_a_message_gets_it_redelivered_and_applies_it_once(
    worker, broker, tenant, customer
):
    """The test holds a lock on the purchase table, so the worker's transaction is stuck half-way (its dedupe row
    written, not committed); the worker is SIGKILLed there; a new worker gets the message again."""
    lock = psycopg.connect(database_url_for_tests(), autocommit=False)
    try:
        with lock.cursor() as cursor:
            cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        event = order_completed(tenant, customer.id, total="2500.00")
        broker.publish("order_events", "order.completed", event)

        def worker_waits_on_the_lock() -> bool:
            # a fresh autocommit connection each time: pg_stat_activity is a snapshot per transaction
            with (
                psycopg.connect(database_url_for_tests(), autocommit=True) as probe,
                probe.cursor() as cursor,
            ):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE '%%customers_purchase%%'"
                )
                return cursor.fetchone()[0] >= 1

        wait_until(worker_waits_on_the_lock, what="the worker to block inside the message")
        worker.kill()
    finally:
        lock.rollback()
        lock.close()

    assert processed(tenant, event["event_id"]) is None  # the killed worker's transaction never committed
    worker.start()
    applied(tenant, event)
    time.sleep(1)  # let any stray redelivery happen before counting
    assert len(purchases(tenant, source_id=event["data"]["order_id"])) == 1
    assert metrics_of(tenant, customer).order_count == 1
    assert points_balance(tenant, customer) == 2500


def test_concurrent_deliveries_of_one_event_apply_it_once(tenant, customer):
    """Two consumers holding the same event at once: the dedupe row serialises them (no broker needed)."""
    from django.db import connection

    from core.consumers import ROUTES, event_apply

    route = next(r for r in ROUTES if r.name == "order")
    body = json.dumps(order_completed(tenant, customer.id, total="900.00")).encode()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        try:
            barrier.wait()
            outcomes.append(event_apply(route, body))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied", "duplicate", "duplicate", "duplicate"]
    assert metrics_of(tenant, customer).order_count == 1


def test_with_the_database_down_a_message_waits_unacked_and_is_applied_when_it_returns(
    worker, broker, tenant, customer
):
    """New connections refused and the worker's sessions cut: the consumer retries with backoff and holds the
    message (never acked early, never dead-lettered); once the database is back the event is applied."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    admin = psycopg.connect(database_url_for_tests(owner=True), autocommit=True)  # owns the database
    app = psycopg.connect(database_url_for_tests(), autocommit=True)  # may end its own role's sessions
    try:
        admin.execute(f'ALTER DATABASE "{name}" CONNECTION LIMIT 0')
        app.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user"
            " AND application_name NOT LIKE 'pytest%%'"
        )
        connection.close()  # this test's own session was cut too
        event = order_completed(tenant, customer.id, total="800.00")
        broker.publish("order_events", "order.completed", event)
        queue = f"{PREFIX}.order.completed"
        time.sleep(3)  # several failed attempts (backoff up to 2 s in the test worker)
        assert broker.depth(queue) == (0, 1)  # delivered to the consumer, held unacked
    finally:
        admin.execute(f'ALTER DATABASE "{name}" CONNECTION LIMIT -1')
        admin.close()
        app.close()
    assert applied(tenant, event).outcome == "applied"
    assert metrics_of(tenant, customer).order_count == 1
    assert "Database unavailable" in worker.output()
