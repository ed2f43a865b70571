"""What the credit services answer (and what a replay of the same key answers again)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID


# --- Results ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreditAvailability:
    available: bool
    credit_limit: Decimal
    used: Decimal
    available_amount: Decimal
    currency: str
    status: str
    payment_terms_days: int
    reason: str


@dataclass(frozen=True)
class CreditUsageResult:
    usage_id: UUID
    amount: Decimal
    available_amount: Decimal
    due_date: date
    currency: str
    order_id: str = ""
    replayed: bool = False
    created: bool = True  # the first answer to this request created the charge (201), not found it (200)


@dataclass(frozen=True)
class HoldResult:
    hold_id: UUID
    order_id: str
    amount: Decimal
    currency: str
    status: str
    expires_at: datetime
    available_amount: Decimal
    replayed: bool = False
    created: bool = True


@dataclass(frozen=True)
class PaymentAllocationResult:
    usage_id: UUID
    order_id: str
    amount: Decimal


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    amount: Decimal
    applied_amount: Decimal
    unapplied_amount: Decimal
    allocations: tuple[PaymentAllocationResult, ...]
    available_amount: Decimal
    currency: str
    line_status: str
    replayed: bool = False
    created: bool = True


@dataclass(frozen=True)
class OverdueRunResult:
    charges_marked_overdue: int = 0
    lines_put_on_hold: int = 0
    lines_released: int = 0

    @classmethod
    def total(cls, results: Iterable[OverdueRunResult]) -> OverdueRunResult:
        rows = list(results)
        return cls(
            charges_marked_overdue=sum(r.charges_marked_overdue for r in rows),
            lines_put_on_hold=sum(r.lines_put_on_hold for r in rows),
            lines_released=sum(r.lines_released for r in rows),
        )
