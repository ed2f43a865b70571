"""What the customers app does with the events of other services: a completed order or POS sale becomes a purchase
in the customer's history (the fact later handlers, such as loyalty's, act on).

Registered with core's event registry when the app starts (`CustomersConfig.ready`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.events import (
    CustomerNotYetKnown,
    EventContext,
    customer_uuid,
    event_handler,
    required_str,
    timestamp,
)
from core.money import parse_amount
from customers.history import purchase_items_parse, purchase_record
from customers.models import Customer, CustomerStatus

ORDER = 10  # first: the purchase is the fact every other handler of a sale builds on


@dataclass(frozen=True)
class PurchaseFact:
    """The sale as recorded, for the handlers that run after this one (`context.facts["purchase"]`)."""

    source: str  # "order" or "pos"
    source_id: str
    customer: Customer | None  # None: an anonymous sale (or an erased customer's)
    total: Decimal
    currency: str
    items: list[dict[str, Any]]


def _purchase_apply(context: EventContext, *, source: str, id_field: str) -> str:
    envelope = context.envelope
    data = envelope.data
    source_id = required_str(data, id_field)
    customer_id = customer_uuid(data.get("customer_id"))
    customer = None
    if customer_id is not None:
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CustomerNotYetKnown(str(customer_id))
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
        completed_at=timestamp(data, "completed_at"),
        channel=str(data.get("channel") or ("pos" if source == "pos" else "")),
        store_id=str(data.get("store_id") or ""),
        items=items,
    )
    context.facts["purchase"] = PurchaseFact(source, source_id, customer, total, purchase.currency, items)
    return "applied" if created else "purchase_already_recorded"


@event_handler("order.completed", order=ORDER)
def order_completed(context: EventContext) -> str:
    return _purchase_apply(context, source="order", id_field="order_id")


@event_handler("pos.transaction.completed", order=ORDER)
def pos_transaction_completed(context: EventContext) -> str:
    return _purchase_apply(context, source="pos", id_field="transaction_id")


def event_customer(context: EventContext) -> Customer | None:
    """The customer an event names (erased ones too), None when it names none; CustomerNotYetKnown when this tenant
    does not have it (yet)."""
    customer_id = customer_uuid(context.envelope.data.get("customer_id"))
    if customer_id is None:
        return None
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise CustomerNotYetKnown(str(customer_id))
    return customer
