"""Every write of commercial credit. The only code that changes a line's exposure.

One lock per line serialises everything that touches its exposure: each write first locks the customer's credit line
(`select_for_update()`), decides on the locked row, moves the exposure and appends the ledger row in the same
transaction. The database refuses an exposure above the approved limit (see `CreditLine.Meta.constraints`), so a
bug here cannot overspend either.

A refused use still leaves `credit.limit.exceeded` in the outbox: the refusal hands the event to
`core.refusals.refusal_record`, which writes it after the refused transaction rolled back, in its own transaction.
"""

from __future__ import annotations

from credit.services.exposure import IDEMPOTENCY_SCOPE
from credit.services.holds import (
    credit_hold_place,
    credit_hold_release,
    credit_holds_expire,
    credit_line_holds_expire,
)
from credit.services.inputs import MAX_HOLD_DAYS, MAX_TERMS_DAYS, hold_ttl, overdue_grace_days, same_actor
from credit.services.lines import (
    credit_line_approve,
    credit_line_close,
    credit_line_limit_change,
    credit_line_reinstate,
    credit_line_reject,
    credit_line_request,
    credit_line_suspend,
)
from credit.services.overdue import credit_line_overdue_process, credit_overdue_process
from credit.services.payments import payment_record
from credit.services.results import (
    CreditAvailability,
    CreditUsageResult,
    HoldResult,
    OverdueRunResult,
    PaymentAllocationResult,
    PaymentResult,
)
from credit.services.terms import (
    volume_discount_bracket_check,
    volume_discount_bracket_save,
    volume_discounts_replace,
)
from credit.services.usage import credit_charge_cancel, credit_check, credit_use

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "MAX_HOLD_DAYS",
    "MAX_TERMS_DAYS",
    "CreditAvailability",
    "CreditUsageResult",
    "HoldResult",
    "OverdueRunResult",
    "PaymentAllocationResult",
    "PaymentResult",
    "credit_charge_cancel",
    "credit_check",
    "credit_hold_place",
    "credit_hold_release",
    "credit_holds_expire",
    "credit_line_approve",
    "credit_line_close",
    "credit_line_holds_expire",
    "credit_line_limit_change",
    "credit_line_overdue_process",
    "credit_line_reinstate",
    "credit_line_reject",
    "credit_line_request",
    "credit_line_suspend",
    "credit_overdue_process",
    "credit_use",
    "hold_ttl",
    "overdue_grace_days",
    "payment_record",
    "same_actor",
    "volume_discount_bracket_check",
    "volume_discount_bracket_save",
    "volume_discounts_replace",
]
