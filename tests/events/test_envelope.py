"""What makes a consumed message malformed: each refusal has a stable reason code (no database, no broker)."""

from __future__ import annotations

import json
import uuid

import pytest

from core.consumers import PoisonMessage, envelope_parse
from loyalty.handlers import loyalty_idempotency_key


def body(**overrides: object) -> bytes:
    message = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.completed",
        "occurred_at": "2026-03-01T12:00:00Z",
        "tenant_id": "acme",
        "version": 1,
        "data": {"order_id": "1"},
    }
    message.update(overrides)
    return json.dumps({k: v for k, v in message.items() if v is not ...}).encode()


def test_a_valid_envelope_is_read():
    envelope = envelope_parse(body(data={"total_amount": 12.5}), expected_type="order.completed")
    assert envelope.tenant_id == "acme"
    assert envelope.occurred_at is not None and envelope.occurred_at.utcoffset().total_seconds() == 0
    # JSON numbers are read as exact decimals, never binary floats
    assert str(envelope.data["total_amount"]) == "12.5"


def test_a_missing_version_means_version_1():
    assert envelope_parse(body(version=...), expected_type="order.completed").version == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "invalid_envelope"),
        (body(event_id="nope"), "invalid_event_id"),
        (body(event_id=...), "invalid_event_id"),
        (body(event_type="pos.transaction.completed"), "unexpected_event_type"),
        (body(tenant_id=""), "invalid_tenant_id"),
        (body(tenant_id=7), "invalid_tenant_id"),
        (body(version=2), "unsupported_version"),
        (body(data=[]), "invalid_data"),
        (body(data=...), "invalid_data"),
    ],
)
def test_malformed_envelopes_are_refused_with_a_reason(raw, reason):
    with pytest.raises(PoisonMessage) as refused:
        envelope_parse(raw, expected_type="order.completed")
    assert refused.value.reason == reason


def test_the_loyalty_key_of_a_sale_is_the_one_pos_terminals_send_to_add_loyalty_points():
    assert loyalty_idempotency_key("pos", "T-1001") == "pos:T-1001"
    assert loyalty_idempotency_key("order", "ORD-9") == "order:ORD-9"


def test_the_consumer_step_runs_only_with_an_amqp_broker(settings, monkeypatch):
    from config.celery import app
    from core.consumers import EventConsumerStep, consumer_enabled

    assert "core.consumers:EventConsumerStep" in app.steps["worker"]
    settings.BROKER_IS_AMQP = False  # the embedded default: Redis
    assert not consumer_enabled()
    assert not EventConsumerStep(parent=None).include_if(None)
    settings.BROKER_IS_AMQP = True
    assert consumer_enabled()
    settings.EVENTS_CONSUMER_ENABLED = False  # EVENTS_CONSUMER_ENABLED=0 in the environment
    assert not consumer_enabled()


def test_queue_names_come_from_the_prefix():
    from core.consumers import EventsConfig, topology

    t = topology(EventsConfig(prefix="acme-prod"))
    assert {q.name for q in t.queues.values()} == {
        "acme-prod.order.completed",
        "acme-prod.pos.transaction.completed",
        "acme-prod.payment.received",
    }
    order = t.queues["order"]
    assert (order.exchange.name, order.exchange.type, order.routing_key, order.durable) == (
        "order_events",
        "topic",
        "order.completed",
        True,
    )
    assert order.queue_arguments["x-queue-type"] == "quorum"
    assert t.parked["order"].queue_arguments == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "acme-prod.order.completed",
    }
    assert t.dead_letter_queue.name == "acme-prod.dead-letter"


def test_each_app_registers_its_handlers_in_a_declared_order():
    from core.events import event_handlers

    assert [h.name for h in event_handlers("order.completed")] == [
        "customers.handlers.order_completed",
        "loyalty.handlers.purchase_earn",
    ]
    assert [h.name for h in event_handlers("pos.transaction.completed")] == [
        "customers.handlers.pos_transaction_completed",
        "loyalty.handlers.purchase_earn",
    ]
    assert [h.name for h in event_handlers("payment.received")] == ["credit.handlers.payment_received"]
