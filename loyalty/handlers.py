"""What loyalty does with the events of other services: a sale of a known customer earns points, once per sale.

Registered with core's event registry when the app starts (`LoyaltyConfig.ready`); runs after the customers app
recorded the purchase (`customers.handlers.PurchaseFact`).
"""

from __future__ import annotations

import logging

from core.errors import Conflict, IdempotencyKeyReused, NotFound
from core.events import EventContext, event_handler
from customers.errors import CustomerBlocked
from customers.handlers import ORDER as PURCHASE_RECORDED
from customers.handlers import PurchaseFact
from customers.models import CustomerStatus
from loyalty.services import points_earn

logger = logging.getLogger(__name__)

ORDER = PURCHASE_RECORDED + 10


def loyalty_idempotency_key(source: str, source_id: str) -> str:
    """The key a sale earns points under, shared with gRPC AddLoyaltyPoints so that a sale earns once:
    `order:<order_id>` for orders, `pos:<transaction_id>` for POS sales."""
    return f"{source}:{source_id}"


@event_handler("order.completed", order=ORDER)
@event_handler("pos.transaction.completed", order=ORDER)
def purchase_earn(context: EventContext) -> str:
    purchase: PurchaseFact = context.facts["purchase"]
    if purchase.customer is None or purchase.total <= 0:
        return ""
    if purchase.customer.status == CustomerStatus.BLOCKED:
        # The sale happened and stays recorded (history, metrics); a blocked customer earns nothing from it.
        logger.warning(
            "Event %s: points not earned for %s %s: %s",
            context.envelope.event_id,
            purchase.source,
            purchase.source_id,
            CustomerBlocked.code,
        )
        return f"; points_skipped:{CustomerBlocked.code}"
    try:
        points_earn(
            customer=purchase.customer,
            idempotency_key=loyalty_idempotency_key(purchase.source, purchase.source_id),
            purchase_amount=purchase.total,
            currency=purchase.currency,
            reference=purchase.source_id,
            items=[
                {**item, "quantity": str(item["quantity"]), "unit_price": str(item["unit_price"])}
                for item in purchase.items
            ],
            source="event",
            actor=f"event:{context.envelope.event_id}",
        )
    except (Conflict, NotFound, IdempotencyKeyReused) as exc:
        # The purchase is a fact and stays recorded; the points were refused by a business rule, or were already
        # earned for this sale through AddLoyaltyPoints with other details.
        logger.warning(
            "Event %s: points not earned for %s %s: %s",
            context.envelope.event_id,
            purchase.source,
            purchase.source_id,
            exc.code,
        )
        return f"; points_skipped:{exc.code}"
    return ""
