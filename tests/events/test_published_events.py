"""The events of the whole story, as they come out of the real RabbitMQ: one test per event type, each recorded by
its service in the transaction of the change, relayed by the outbox relay, read from a queue of this run.

Every envelope received for this run's tenant is checked against the catalogue (`core.event_catalogue`): the
contract's envelope, the routing key = event type, `message_id` = event id, and exactly the catalogued fields in
`data`, so the first ten events keep their payloads too. Each test also checks the change publishes once: a
replay of the same operation, or a nightly job run again, publishes nothing more.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from core import clock
from core.event_catalogue import EVENTS, TIER_BENEFIT_FIELDS
from core.models import OutboxEvent
from core.relay import outbox_relay
from core.tenancy import tenant_context
from tests.events.conftest import Broker
from tests.waiting import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]

D = Decimal
T0 = datetime(
    2026, 3, 2, 12, 0, tzinfo=UTC
)  # 09:00 in Santiago, the tenant's time zone: the same date in both
ENVELOPE_KEYS = {"event_id", "event_type", "occurred_at", "tenant_id", "version", "data"}


class Received:
    """What the relay published for this run's tenant, read from the run's queue bound to `#`."""

    def __init__(self, broker: Broker, queue: str, tenant: Any) -> None:
        self.broker, self.queue, self.tenant = broker, queue, tenant
        self.envelopes: list[dict[str, Any]] = []

    def _drain(self) -> Counter[str]:
        outbox_relay()  # the relay as the worker runs it, in this process (publisher confirms: queued on return)
        for message in self.broker.get_all(self.queue):
            envelope = json.loads(message.body)
            if envelope.get("tenant_id") != self.tenant.slug:
                continue  # another test's or another run's traffic on the shared exchange
            check_envelope(envelope, message)
            self.envelopes.append(envelope)
        return Counter(e["event_type"] for e in self.envelopes)

    def wait_for(self, *event_types: str) -> dict[str, list[dict[str, Any]]]:
        """Wait until at least these events (with repetition) arrived; {type: [data, ...]} of all received."""
        wanted = Counter(event_types)
        wait_until(
            lambda: all(self._drain()[t] >= n for t, n in wanted.items()),
            timeout=30,
            interval=0.2,
            what=f"events {dict(wanted)}",
        )
        return self.by_type()

    def by_type(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for envelope in self.envelopes:
            found.setdefault(envelope["event_type"], []).append(envelope["data"])
        return found

    def counts(self) -> Counter[str]:
        """Everything published so far: the relay left nothing of the tenant unpublished when this returns."""
        counts = self._drain()
        with tenant_context(self.tenant):
            assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
        return counts


def check_envelope(envelope: dict[str, Any], message: Any) -> None:
    event_type = envelope["event_type"]
    assert event_type in EVENTS, f"{event_type} is not in the catalogue"
    assert set(envelope) == ENVELOPE_KEYS
    assert envelope["version"] == 1
    assert str(uuid.UUID(envelope["event_id"])) == envelope["event_id"]
    assert envelope["occurred_at"].endswith("Z")
    assert message.delivery_info["routing_key"] == event_type
    assert message.properties["message_id"] == envelope["event_id"]
    assert set(envelope["data"]) == set(EVENTS[event_type].fields), event_type
    assert envelope["data"]["customer_id"]


@pytest.fixture
def received(broker: Broker, tenant: Any, customer_events_queue: str) -> Received:
    return Received(broker, customer_events_queue, tenant)


@pytest.fixture
def frozen() -> Iterator[Any]:
    clock.freeze(T0)
    yield clock.freeze
    clock.unfreeze()


# --- credit ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def business(tenant: Any) -> Any:
    from tests.factories import BusinessCustomerFactory

    return BusinessCustomerFactory(tenant=tenant)


@pytest.fixture
def line(business: Any, frozen: Any) -> Any:
    from tests.credit.factories import credit_line_approved

    return credit_line_approved(business, limit="1000", terms=30)


def credit(call: str, tenant: Any, **kwargs: Any) -> Any:
    from credit import services

    with tenant_context(tenant):
        return getattr(services, call)(**kwargs)


def test_credit_suspended_tells_the_order_service_to_stop(received, tenant, line):
    assert received.wait_for("credit.approved")["credit.approved"][0]["status"] == "approved"
    credit("credit_line_suspend", tenant, line=line, actor="api:risk", reason="Risk review")
    [data] = received.wait_for("credit.suspended")["credit.suspended"]
    assert data == {
        "credit_line_id": str(line.pk),
        "customer_id": str(line.customer_id),
        "status": "suspended",
        "usable": False,
        "previous_status": "approved",
        "credit_limit": "1000.00",
        "used": "0.00",
        "available": "1000.00",
        "currency": "CLP",
        "payment_terms_days": 30,
        "reason": "Risk review",
        "changed_by": "api:risk",
        "changed_at": data["changed_at"],
    }
    assert datetime.fromisoformat(data["changed_at"]) == T0
    assert received.counts()["credit.suspended"] == 1


def test_credit_reinstated_lets_it_sell_on_credit_again(received, tenant, line):
    credit("credit_line_suspend", tenant, line=line, actor="api:risk", reason="Risk review")
    credit("credit_line_reinstate", tenant, line=line, actor="api:risk", reason="Cleared")
    [data] = received.wait_for("credit.reinstated")["credit.reinstated"]
    assert (data["status"], data["usable"], data["previous_status"]) == ("approved", True, "suspended")
    assert (data["reason"], data["available"]) == ("Cleared", "1000.00")
    assert received.counts()["credit.reinstated"] == 1


def test_a_reinstated_line_that_overdue_charges_block_says_so(received, tenant, business, line, frozen):
    credit("credit_use", tenant, customer=business, amount=D("300"), order_id="ORD-1", idempotency_key="u-1")
    credit("credit_line_suspend", tenant, line=line, actor="api:risk", reason="Risk review")
    frozen(T0 + timedelta(days=40))  # the charge is now overdue past the grace period
    credit("credit_line_reinstate", tenant, line=line, actor="api:risk", reason="Cleared")
    events = received.wait_for("credit.reinstated", "credit.hold.placed")
    [reinstated], [held] = events["credit.reinstated"], events["credit.hold.placed"]
    # both say what the line is when the transaction commits: on hold, not usable
    assert (reinstated["status"], reinstated["usable"], reinstated["previous_status"]) == (
        "on_hold",
        False,
        "suspended",
    )
    assert (held["status"], held["usable"], held["overdue_amount"]) == ("on_hold", False, "300.00")


def test_credit_closed_ends_the_line(received, tenant, line):
    credit("credit_line_close", tenant, line=line, actor="api:manager", reason="Customer asked")
    [data] = received.wait_for("credit.closed")["credit.closed"]
    assert (data["status"], data["usable"], data["previous_status"]) == ("closed", False, "approved")
    assert (data["used"], data["reason"]) == ("0.00", "Customer asked")


def test_credit_limit_changed_carries_the_old_and_new_limit_and_credit_approved_still_comes(
    received, tenant, line
):
    credit(
        "credit_line_limit_change",
        tenant,
        line=line,
        actor="api:manager",
        approved_limit=D("2500"),
        payment_terms_days=45,
        reason="Good payer",
    )
    # the same change again is no change: nothing more is published
    credit("credit_line_limit_change", tenant, line=line, actor="api:manager", approved_limit=D("2500"),
           payment_terms_days=45, reason="Good payer")  # fmt: skip
    events = received.wait_for("credit.limit.changed", "credit.approved", "credit.approved")
    [data] = events["credit.limit.changed"]
    assert (data["previous_credit_limit"], data["credit_limit"]) == ("1000.00", "2500.00")
    assert (data["previous_payment_terms_days"], data["payment_terms_days"]) == (30, 45)
    assert (data["available"], data["usable"], data["reason"]) == ("2500.00", True, "Good payer")
    # consumers of credit.approved see the limit change as before
    assert [e["change"] for e in events["credit.approved"]] == ["approved", "limit_changed"]
    counts = received.counts()
    assert (counts["credit.limit.changed"], counts["credit.approved"]) == (1, 2)


def test_credit_hold_placed_by_the_nightly_overdue_run(received, tenant, business, line, frozen):
    from credit.tasks import credit_overdue_task

    credit("credit_use", tenant, customer=business, amount=D("300"), order_id="ORD-1", idempotency_key="u-1")
    frozen(T0 + timedelta(days=30 + 7 + 1))  # due on day 30, 7 days of grace
    credit_overdue_task()
    credit_overdue_task()  # the next night: still on hold, nothing new
    [data] = received.wait_for("credit.hold.placed")["credit.hold.placed"]
    assert (data["status"], data["usable"], data["previous_status"], data["hold"]) == (
        "on_hold",
        False,
        "approved",
        "overdue",
    )
    assert (data["overdue_amount"], data["oldest_overdue_due_date"], data["grace_days"]) == (
        "300.00",
        "2026-04-01",
        7,
    )
    assert (data["used"], data["available"], data["changed_by"]) == ("300.00", "700.00", "system:overdue")
    assert received.counts()["credit.hold.placed"] == 1


def test_credit_hold_released_once_the_overdue_charges_are_paid(received, tenant, business, line, frozen):
    from credit.tasks import credit_overdue_task

    credit("credit_use", tenant, customer=business, amount=D("300"), order_id="ORD-1", idempotency_key="u-1")
    frozen(T0 + timedelta(days=40))
    credit_overdue_task()
    credit("payment_record", tenant, customer=business, payment_id="PAY-1", amount=D("300"))
    [data] = received.wait_for("credit.hold.released")["credit.hold.released"]
    assert (data["status"], data["usable"], data["previous_status"], data["hold"]) == (
        "approved",
        True,
        "on_hold",
        "overdue",
    )
    assert (data["overdue_amount"], data["oldest_overdue_due_date"]) == ("0.00", None)
    assert (data["used"], data["available"], data["reason"]) == ("0.00", "1000.00", "Overdue charges paid.")
    assert received.counts()["credit.hold.released"] == 1


def test_credit_payment_recorded_once_per_payment(received, tenant, business, line):
    usage = credit(
        "credit_use", tenant, customer=business, amount=D("400"), order_id="ORD-7", idempotency_key="u-7"
    )
    first = credit("payment_record", tenant, customer=business, payment_id="PAY-7", amount=D("150"),
                   order_id="ORD-7", idempotency_key="p-7")  # fmt: skip
    # a retry with the same key, and the same payment reported again without one: applied (and published) once
    credit("payment_record", tenant, customer=business, payment_id="PAY-7", amount=D("150"), order_id="ORD-7",
           idempotency_key="p-7")  # fmt: skip
    credit("payment_record", tenant, customer=business, payment_id="PAY-7", amount=D("150"), order_id="ORD-7")
    assert first.created
    [data] = received.wait_for("credit.payment.recorded")["credit.payment.recorded"]
    assert data["payment_id"] == "PAY-7" and data["order_id"] == "ORD-7"
    assert (data["amount"], data["applied_amount"], data["unapplied_amount"]) == ("150.00", "150.00", "0.00")
    assert data["allocations"] == [{"usage_id": str(usage.usage_id), "order_id": "ORD-7", "amount": "150.00"}]
    assert (data["used"], data["available"], data["status"], data["usable"]) == (
        "250.00",
        "750.00",
        "approved",
        True,
    )
    assert datetime.fromisoformat(data["received_at"]) == T0
    assert received.counts()["credit.payment.recorded"] == 1


def test_a_rolled_back_change_publishes_nothing(received, tenant, line):
    from credit import services

    with pytest.raises(RuntimeError), tenant_context(tenant):
        services.credit_line_suspend(line=line, actor="api:risk", reason="Risk review")
        raise RuntimeError("the caller's transaction fails after the change")
    assert received.counts()["credit.suspended"] == 0
    with tenant_context(tenant):
        assert not OutboxEvent.objects.filter(event_type="credit.suspended").exists()


# --- loyalty ----------------------------------------------------------------------------------------------------
def loyalty(call: str, tenant: Any, **kwargs: Any) -> Any:
    from loyalty import services

    with tenant_context(tenant):
        return getattr(services, call)(**kwargs)


def test_loyalty_points_adjusted_once_per_key(received, tenant, customer, frozen):
    args = {
        "customer": customer,
        "idempotency_key": "adj-1",
        "points": 250,
        "reason": "Goodwill",
        "actor": "staff:ana",
    }
    loyalty("points_adjust", tenant, **args)
    assert loyalty("points_adjust", tenant, **args).replayed
    loyalty("points_adjust", tenant, customer=customer, idempotency_key="adj-2", points=-50, reason="Typo",
            actor="staff:ana")  # fmt: skip
    events = received.wait_for("loyalty.points.adjusted", "loyalty.points.adjusted")[
        "loyalty.points.adjusted"
    ]
    assert [(e["points"], e["points_balance"], e["reason"]) for e in events] == [
        (250, 250, "Goodwill"),
        (-50, 200, "Typo"),
    ]
    assert (events[0]["adjusted_by"], events[0]["source"], events[1]["expires_at"]) == (
        "staff:ana",
        "admin",
        None,
    )
    assert events[0]["expires_at"].startswith("2027-03-02")  # 12 months, the default program
    assert received.counts()["loyalty.points.adjusted"] == 2


def test_loyalty_points_reversed_once_per_return(received, tenant, customer, frozen):
    loyalty("points_earn", tenant, customer=customer, idempotency_key="pos:R-1", purchase_amount=D("800"),
            reference="R-1")  # fmt: skip
    args = {
        "customer": customer,
        "idempotency_key": "ret-1",
        "reference": "R-1",
        "amount": D("200"),
        "reason": "Broken",
    }
    loyalty("points_reverse", tenant, **args)
    assert loyalty("points_reverse", tenant, **args).replayed
    [data] = received.wait_for("loyalty.points.reversed")["loyalty.points.reversed"]
    assert (data["reference"], data["full"], data["returned_amount"], data["purchase_amount"]) == (
        "R-1",
        False,
        "200.00",
        "800.00",
    )
    assert (data["points_reversed"], data["points_returned"], data["points_balance"]) == (200, 0, 600)
    assert (data["reason"], len(data["transaction_ids"])) == ("Broken", 1)
    assert received.counts()["loyalty.points.reversed"] == 1


def test_loyalty_points_expired_by_the_nightly_job(received, tenant, customer, frozen):
    from loyalty.tasks import expire_points

    loyalty("points_earn", tenant, customer=customer, idempotency_key="e-1", points=300)
    frozen(T0 + timedelta(days=400))
    expire_points()
    expire_points()  # nothing left to expire
    [data] = received.wait_for("loyalty.points.expired")["loyalty.points.expired"]
    assert (data["points"], data["points_balance"], data["awards_expired"], data["source"]) == (
        300,
        0,
        1,
        "system",
    )
    assert data["oldest_expires_at"] == data["newest_expires_at"]
    assert data["oldest_expires_at"].startswith("2027-03-02")
    assert received.counts()["loyalty.points.expired"] == 1


def test_loyalty_tier_downgraded_carries_the_benefits(received, tenant, customer, frozen):
    loyalty("points_earn", tenant, customer=customer, idempotency_key="pos:T-1", purchase_amount=D("1200"),
            reference="T-1")  # fmt: skip
    loyalty("points_reverse", tenant, customer=customer, idempotency_key="ret-T-1", reference="T-1")
    events = received.wait_for("loyalty.tier.upgraded", "loyalty.tier.downgraded")
    [down] = events["loyalty.tier.downgraded"]
    assert (down["previous_tier"], down["tier"], down["rule"]) == ("silver", "bronze", "purchase_returned")
    assert set(down["benefits"]) == set(down["previous_benefits"]) == set(TIER_BENEFIT_FIELDS)
    assert (down["benefits"]["tier"], down["previous_benefits"]["tier"]) == ("bronze", "silver")
    assert down["previous_benefits"]["threshold"] == 1000
    assert Decimal(down["previous_benefits"]["earn_multiplier"]) >= 1
    [up] = events["loyalty.tier.upgraded"]
    assert "benefits" not in up  # the first ten keep their payloads (checked against the catalogue too)
    assert received.counts()["loyalty.tier.downgraded"] == 1


@pytest.fixture
def coffee_rule(tenant: Any) -> Any:
    return loyalty("stamp_rule_save", tenant, tenant_id=tenant.slug, name="Coffee", stamps_per_card=3,
                   reward_description="A free coffee", skus=["COFFEE"], reward_sku="COFFEE-FREE")  # fmt: skip


def test_loyalty_stamp_reward_issued_once_per_full_card(received, tenant, customer, coffee_rule, frozen):
    args = {
        "customer": customer,
        "rule_id": coffee_rule.pk,
        "stamps": 4,
        "idempotency_key": "st-1",
        "reference": "S-1",
    }
    result = loyalty("stamps_add", tenant, **args)
    assert loyalty("stamps_add", tenant, **args).replayed
    [data] = received.wait_for("loyalty.stamp_reward.issued")["loyalty.stamp_reward.issued"]
    assert data == {
        "customer_id": str(customer.pk),
        "reward_id": result.rewards_issued[0],
        "rule_id": str(coffee_rule.pk),
        "rule_name": "Coffee",
        "reward_description": "A free coffee",
        "reward_sku": "COFFEE-FREE",
        "stamps_per_card": 3,
        "status": "issued",
        "issued_at": data["issued_at"],
        "reference": "S-1",
        "stamps_on_card": 1,
    }
    assert datetime.fromisoformat(data["issued_at"]) == T0
    assert received.counts()["loyalty.stamp_reward.issued"] == 1


def test_loyalty_stamp_reward_redeemed_once(received, tenant, customer, coffee_rule, frozen):
    from loyalty.errors import RewardAlreadyRedeemed

    result = loyalty(
        "stamps_add", tenant, customer=customer, rule_id=coffee_rule.pk, stamps=3, idempotency_key="s"
    )
    [reward_id] = result.rewards_issued
    loyalty("stamp_reward_redeem", tenant, customer=customer, reward_id=reward_id, reference="POS-9")
    with pytest.raises(RewardAlreadyRedeemed):
        loyalty("stamp_reward_redeem", tenant, customer=customer, reward_id=reward_id, reference="POS-9")
    [data] = received.wait_for("loyalty.stamp_reward.redeemed")["loyalty.stamp_reward.redeemed"]
    assert (data["reward_id"], data["status"], data["reference"]) == (reward_id, "redeemed", "POS-9")
    assert datetime.fromisoformat(data["redeemed_at"]) == T0
    assert received.counts()["loyalty.stamp_reward.redeemed"] == 1


def test_a_refused_adjustment_publishes_nothing(received, tenant, customer):
    from loyalty.errors import InsufficientPoints

    with pytest.raises(InsufficientPoints):
        loyalty("points_adjust", tenant, customer=customer, idempotency_key="adj-x", points=-10, reason="x",
                actor="staff:ana")  # fmt: skip
    assert received.counts()["loyalty.points.adjusted"] == 0


# --- customers --------------------------------------------------------------------------------------------------
def update(tenant: Any, customer: Any, **data: Any) -> Any:
    from customers.services import customer_update

    with tenant_context(tenant):
        return customer_update(customer=customer, data=data, actor="api:backoffice")


def test_customer_blocked(received, tenant, customer):
    update(tenant, customer, status="blocked")
    update(tenant, customer, status="blocked")  # no change: nothing published
    events = received.wait_for("customer.blocked", "customer.updated")
    [data] = events["customer.blocked"]
    assert (data["customer_id"], data["status"], data["previous_status"]) == (
        str(customer.pk),
        "blocked",
        "active",
    )
    assert data["changed_by"] == "api:backoffice"
    [updated] = events["customer.updated"]
    assert (updated["status"], updated["changed_fields"]) == ("blocked", ["status"])
    assert received.counts()["customer.blocked"] == 1


def test_customer_unblocked(received, tenant, customer):
    update(tenant, customer, status="blocked")
    update(tenant, customer, status="active")
    [data] = received.wait_for("customer.unblocked")["customer.unblocked"]
    assert (data["status"], data["previous_status"]) == ("active", "blocked")
    counts = received.counts()
    assert (counts["customer.blocked"], counts["customer.unblocked"], counts["customer.updated"]) == (1, 1, 2)
    # an update of another field publishes no status event
    update(tenant, customer, notes="VIP at the counter")
    counts = received.counts()
    assert (counts["customer.blocked"], counts["customer.unblocked"]) == (1, 1)
