"""What credit does with the events of other services: a payment received settles the customer's charges.

Registered with core's event registry when the app starts (`CreditConfig.ready`).
"""

from __future__ import annotations

import logging

from core.errors import Conflict, NotFound
from core.events import EventContext, PoisonMessage, event_handler, optional_timestamp, required_str
from core.money import parse_amount
from credit.services import payment_record
from customers.handlers import event_customer

logger = logging.getLogger(__name__)


@event_handler("payment.received", order=10)
def payment_received(context: EventContext) -> str:
    envelope = context.envelope
    data = envelope.data
    payment_id = required_str(data, "payment_id")
    customer = event_customer(context)  # erased ones too: the money is real
    if customer is None:
        return "skipped:no_customer"  # a payment nobody owes us on credit (anonymous sale)
    received_at = optional_timestamp(data.get("received_at"))
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
