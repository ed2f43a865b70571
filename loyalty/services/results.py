"""What the loyalty services return, and what a replay of the same key returns again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID


# --- Results --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoyaltyResult:
    """What earn, redeem and adjust return (and what a replay of the same key returns again)."""

    transaction_id: UUID | None
    points: int
    points_balance: int
    discount_amount: Decimal
    currency: str
    tier: str
    previous_tier: str
    tier_changed: bool
    pending_balance: int = 0
    stamp_rewards_issued: int = 0
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "transaction_id": str(self.transaction_id) if self.transaction_id else None,
            "points": self.points,
            "points_balance": self.points_balance,
            "discount_amount": str(self.discount_amount),
            "currency": self.currency,
            "tier": self.tier,
            "previous_tier": self.previous_tier,
            "tier_changed": self.tier_changed,
            "pending_balance": self.pending_balance,
            "stamp_rewards_issued": self.stamp_rewards_issued,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> LoyaltyResult:
        return cls(
            transaction_id=UUID(data["transaction_id"]) if data.get("transaction_id") else None,
            points=int(data["points"]),
            points_balance=int(data["points_balance"]),
            discount_amount=Decimal(data["discount_amount"]),
            currency=data["currency"],
            tier=data["tier"],
            previous_tier=data["previous_tier"],
            tier_changed=bool(data["tier_changed"]),
            pending_balance=int(data.get("pending_balance", 0)),
            stamp_rewards_issued=int(data.get("stamp_rewards_issued", 0)),
            replayed=replayed,
        )


@dataclass(frozen=True)
class ReversalResult:
    reference: str
    points_reversed: int
    points_unrecovered: int
    points_returned: int
    stamps_reversed: int
    points_balance: int
    pending_balance: int
    tier: str
    previous_tier: str
    tier_changed: bool
    transaction_ids: list[str] = field(default_factory=list)
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "points_reversed": self.points_reversed,
            "points_unrecovered": self.points_unrecovered,
            "points_returned": self.points_returned,
            "stamps_reversed": self.stamps_reversed,
            "points_balance": self.points_balance,
            "pending_balance": self.pending_balance,
            "tier": self.tier,
            "previous_tier": self.previous_tier,
            "tier_changed": self.tier_changed,
            "transaction_ids": list(self.transaction_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> ReversalResult:
        return cls(**{**data, "transaction_ids": list(data["transaction_ids"]), "replayed": replayed})


@dataclass(frozen=True)
class StampResult:
    rule_id: str
    stamps_added: int
    stamps: int
    stamps_per_card: int
    rewards_issued: list[str]
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "stamps_added": self.stamps_added,
            "stamps": self.stamps,
            "stamps_per_card": self.stamps_per_card,
            "rewards_issued": list(self.rewards_issued),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> StampResult:
        return cls(**{**data, "rewards_issued": list(data["rewards_issued"]), "replayed": replayed})


@dataclass(frozen=True)
class HoldResult:
    """A points hold as placed, committed or released; `redemption` is the redeem its commit wrote.

    `points_balance` is the account's balance (held points included), `held_points` what all its holds keep,
    `available_points` what another redemption may still spend (balance - held)."""

    hold_id: UUID
    status: str
    points: int
    reference: str
    purchase_amount: Decimal | None
    discount_amount: Decimal
    currency: str
    expires_at: datetime
    points_balance: int
    held_points: int
    available_points: int
    redemption: LoyaltyResult | None = None
    replayed: bool = False

    @property
    def transaction_id(self) -> UUID | None:
        return self.redemption.transaction_id if self.redemption else None

    def as_json(self) -> dict[str, Any]:
        return {
            "hold_id": str(self.hold_id),
            "status": self.status,
            "points": self.points,
            "reference": self.reference,
            "purchase_amount": None if self.purchase_amount is None else str(self.purchase_amount),
            "discount_amount": str(self.discount_amount),
            "currency": self.currency,
            "expires_at": self.expires_at.isoformat(),
            "points_balance": self.points_balance,
            "held_points": self.held_points,
            "available_points": self.available_points,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool) -> HoldResult:
        return cls(
            hold_id=UUID(data["hold_id"]),
            status=data["status"],
            points=int(data["points"]),
            reference=data["reference"],
            purchase_amount=None if data["purchase_amount"] is None else Decimal(data["purchase_amount"]),
            discount_amount=Decimal(data["discount_amount"]),
            currency=data["currency"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            points_balance=int(data["points_balance"]),
            held_points=int(data["held_points"]),
            available_points=int(data["available_points"]),
            replayed=replayed,
        )
