"""Every event this service publishes to `customer_events`: its routing key, when it is recorded, and the fields of
its `data`. The README's *Published events* table says the same for people; tests hold both to the code (every
event a test receives has exactly its catalogued fields, and the README lists every type).

Core knows no app: this is a list of names, the services that record the events live in their apps. A consumer's
contract changes only by adding an event type or, for a type added after the first ten, a field; the first ten
(`FIRST_TEN`) keep their fields exactly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedEvent:
    event_type: str
    when: str
    fields: tuple[str, ...]


_CUSTOMER = (
    "customer_id", "type", "display_name", "first_name", "last_name", "legal_name", "trade_name", "email", "phone",
    "document_type", "document_number", "loyalty_card_number", "external_id", "status", "created_at", "updated_at",
)  # fmt: skip
_LINE = (
    "credit_line_id", "customer_id", "status", "usable", "credit_limit", "used", "available", "currency",
    "payment_terms_days",
)  # fmt: skip
_TIER_CHANGE = (
    "customer_id", "previous_tier", "tier", "rule", "qualifying_points", "window_start", "window_end", "reason",
)  # fmt: skip
_STAMP_REWARD = (
    "customer_id", "reward_id", "rule_id", "rule_name", "reward_description", "reward_sku", "stamps_per_card",
    "status", "issued_at", "reference",
)  # fmt: skip
# an overdue hold placed or released: the line's state, the hold and what is overdue
_OVERDUE_HOLD = (
    *_LINE,
    "hold",
    "previous_status",
    "reason",
    "overdue_amount",
    "oldest_overdue_due_date",
    "grace_days",
    "changed_by",
    "changed_at",
)

CATALOGUE: tuple[PublishedEvent, ...] = (
    # --- the first ten ----------------------------------------------------------------------------------------
    PublishedEvent("customer.created", "a customer is created", _CUSTOMER),
    PublishedEvent("customer.updated", "a customer's fields change", (*_CUSTOMER, "changed_fields")),
    PublishedEvent("customer.deleted", "a customer is erased (GDPR)", ("customer_id", "erased_at")),
    PublishedEvent(
        "loyalty.points.earned",
        "points are earned (purchase or bonus)",
        (
            "customer_id",
            "transaction_id",
            "points",
            "pending",
            "points_balance",
            "pending_balance",
            "purchase_amount",
            "currency",
            "reference",
            "source",
            "tier",
            "expires_at",
        ),
    ),
    PublishedEvent(
        "loyalty.points.redeemed",
        "points are redeemed for a discount",
        (
            "customer_id",
            "transaction_id",
            "points",
            "discount_amount",
            "currency",
            "points_balance",
            "reference",
            "source",
        ),
    ),
    PublishedEvent("loyalty.tier.upgraded", "the customer's tier goes up", _TIER_CHANGE),
    PublishedEvent(
        "credit.approved",
        "a credit line is approved (change `approved`), or its limit or terms change (change `limit_changed`)",
        (
            "credit_line_id",
            "customer_id",
            "change",
            "status",
            "credit_limit",
            "used",
            "available",
            "currency",
            "payment_terms_days",
            "requested_by",
            "decided_by",
            "decided_at",
        ),
    ),
    PublishedEvent(
        "credit.used",
        "an order is charged to the customer's credit",
        (
            "usage_id",
            "credit_line_id",
            "customer_id",
            "order_id",
            "amount",
            "currency",
            "due_date",
            "credit_limit",
            "used",
            "available",
            "hold_id",
            "reopened",
        ),
    ),
    PublishedEvent(
        "credit.limit.exceeded",
        "a use or checkout hold is refused beyond the limit (recorded although the request was refused)",
        (
            "credit_line_id",
            "customer_id",
            "order_id",
            "operation",
            "amount",
            "currency",
            "credit_limit",
            "used",
            "available",
        ),
    ),
    PublishedEvent(
        "customer.segment.changed",
        "the nightly RFM run moves a customer to another segment",
        (
            "customer_id",
            "old_segment",
            "new_segment",
            "recency_score",
            "frequency_score",
            "monetary_score",
            "is_vip",
            "churn_risk",
            "as_of",
            "rule_version",
            "run_id",
        ),
    ),
    # --- the line's life after approval ---------------------------------------------------------------------------
    PublishedEvent(
        "credit.suspended",
        "a credit manager suspends an approved or on-hold line: refuse new credit sales",
        (*_LINE, "previous_status", "reason", "changed_by", "changed_at"),
    ),
    PublishedEvent(
        "credit.reinstated",
        "a suspension is lifted (status `on_hold`, usable false, if overdue charges still block the line)",
        (*_LINE, "previous_status", "reason", "changed_by", "changed_at"),
    ),
    PublishedEvent(
        "credit.closed",
        "a line is closed (or a request withdrawn) once nothing is owed on it",
        (*_LINE, "previous_status", "reason", "changed_by", "changed_at"),
    ),
    PublishedEvent(
        "credit.limit.changed",
        "an approved, suspended or on-hold line's limit or payment terms change",
        (
            *_LINE,
            "previous_credit_limit",
            "previous_payment_terms_days",
            "reason",
            "changed_by",
            "changed_at",
        ),
    ),
    PublishedEvent(
        "credit.hold.placed",
        "the line goes on hold: charges overdue past the grace period (nightly run, reinstatement)",
        _OVERDUE_HOLD,
    ),
    PublishedEvent(
        "credit.hold.released",
        "an overdue hold ends: the overdue charges were paid (payment, nightly run)",
        _OVERDUE_HOLD,
    ),
    PublishedEvent(
        "credit.payment.recorded",
        "a payment is applied to the line (REST, payment.received): exposure released",
        (
            *_LINE,
            "payment_id",
            "amount",
            "applied_amount",
            "unapplied_amount",
            "payment_currency",
            "order_id",
            "received_at",
            "allocations",
        ),
    ),
    # --- points, tiers and stamps ---------------------------------------------------------------------------------
    PublishedEvent(
        "loyalty.points.reversed",
        "a purchase is returned (fully or partly): earned points taken back, redeemed points given back",
        (
            "customer_id",
            "reference",
            "full",
            "returned_amount",
            "purchase_amount",
            "points_reversed",
            "points_unrecovered",
            "points_returned",
            "stamps_reversed",
            "points_balance",
            "pending_balance",
            "tier",
            "transaction_ids",
            "reason",
            "source",
        ),
    ),
    PublishedEvent(
        "loyalty.points.adjusted",
        "staff correct a balance (points signed: negative takes points away)",
        (
            "customer_id",
            "transaction_id",
            "points",
            "reason",
            "points_balance",
            "pending_balance",
            "tier",
            "expires_at",
            "adjusted_by",
            "source",
        ),
    ),
    PublishedEvent(
        "loyalty.points.expired",
        "awards past their date expire (nightly job, or any operation that matures the account first)",
        (
            "customer_id",
            "transaction_id",
            "points",
            "points_balance",
            "pending_balance",
            "awards_expired",
            "oldest_expires_at",
            "newest_expires_at",
            "expired_at",
            "source",
        ),
    ),
    PublishedEvent(
        "loyalty.tier.downgraded",
        "the customer's tier goes down (tier review, a return, an override)",
        (*_TIER_CHANGE, "benefits", "previous_benefits"),
    ),
    PublishedEvent(
        "loyalty.stamp_reward.issued",
        "a stamp card is completed (purchase items or explicit stamps): one event per reward",
        (*_STAMP_REWARD, "stamps_on_card"),
    ),
    PublishedEvent(
        "loyalty.stamp_reward.redeemed", "a stamp reward is used", (*_STAMP_REWARD, "redeemed_at")
    ),
    # --- customers --------------------------------------------------------------------------------------------------
    PublishedEvent(
        "customer.blocked",
        "a customer's status goes from active to blocked (after its customer.updated)",
        ("customer_id", "status", "previous_status", "changed_by", "changed_at"),
    ),
    PublishedEvent(
        "customer.unblocked",
        "a blocked customer is active again (after its customer.updated)",
        ("customer_id", "status", "previous_status", "changed_by", "changed_at"),
    ),
)

EVENTS: dict[str, PublishedEvent] = {event.event_type: event for event in CATALOGUE}
FIRST_TEN = tuple(event.event_type for event in CATALOGUE[:10])
# The fields of a tier in `benefits` / `previous_benefits`.
TIER_BENEFIT_FIELDS = ("tier", "name", "threshold", "earn_multiplier", "description")
