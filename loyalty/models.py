"""Loyalty: the program each business configures, the points ledger, tiers and stamp cards.

Balances live in two places that must agree: the append-only ledger (`LoyaltyTransaction`) and the cached buckets
on `LoyaltyAccount`. Only `loyalty.services` writes either, under a row lock on the account; the database refuses
what must never happen (a negative available balance where the program does not allow one, an award spent below
zero, a ledger row edited or deleted).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from core.ledgers import AppendOnlyLedger
from core.models import IdempotencyRecord, TenantOwned
from customers.models import Customer


class TierCode(models.TextChoices):
    BRONZE = "bronze", "Bronze"
    SILVER = "silver", "Silver"
    GOLD = "gold", "Gold"
    PLATINUM = "platinum", "Platinum"


# Lowest first: a tier's rank is its index here.
TIER_ORDER: tuple[str, ...] = tuple(TierCode.values)


def tier_rank(code: str) -> int:
    return TIER_ORDER.index(code)


# The default program's tiers: (code, name, threshold in qualifying points, earn multiplier).
DEFAULT_TIERS: tuple[tuple[str, str, int, Decimal], ...] = (
    (TierCode.BRONZE, "Bronze", 0, Decimal("1.000")),
    (TierCode.SILVER, "Silver", 1_000, Decimal("1.250")),
    (TierCode.GOLD, "Gold", 5_000, Decimal("1.500")),
    (TierCode.PLATINUM, "Platinum", 20_000, Decimal("2.000")),
)


class EarnRounding(models.TextChoices):
    FLOOR = "floor", "Round down (never award a fraction of a point)"
    HALF_UP = "half_up", "Round half up"


class DowngradePolicy(models.TextChoices):
    NEVER = "never", "Never downgrade"
    ONE_TIER = "one_tier", "At review, at most one tier down"
    RECALCULATE = "recalculate", "At review, recalculate from qualifying points"


class NegativeBalancePolicy(models.TextChoices):
    CLAMP = "clamp", "Take back what is there and record the rest as unrecovered"
    ALLOW = "allow", "Allow a negative balance (future points pay it back)"


class LoyaltyProgram(TenantOwned):
    """One per business. The defaults are the contract's default program."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, default="Loyalty program")
    earn_rate = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("1"),
        help_text="Points per 1 currency unit spent, before the tier multiplier.",
    )
    earn_rounding = models.CharField(
        max_length=16,
        choices=EarnRounding.choices,
        default=EarnRounding.FLOOR,
        help_text="Applied once, to amount x rate x multiplier.",
    )
    redemption_points_per_unit = models.PositiveIntegerField(
        default=100, help_text="Points worth 1 currency unit of discount."
    )
    min_redemption_points = models.PositiveIntegerField(
        default=100, help_text="The fewest points one redemption may use."
    )
    max_redemption_share = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("1"),
        help_text="The most of a purchase (0-1) payable with points; checked when the purchase amount is given.",
    )
    pending_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="The return window: earned points are pending (not spendable) for this many days.",
    )
    expiry_months = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=12,
        help_text="Each award expires this many months after it; empty = never.",
    )
    qualifying_window_months = models.PositiveSmallIntegerField(
        default=12, help_text="Tiers look at qualifying points earned over this rolling window."
    )
    review_period_months = models.PositiveSmallIntegerField(
        default=12, help_text="A tier is kept at least this long; downgrades happen only at a review."
    )
    downgrade_policy = models.CharField(
        max_length=16, choices=DowngradePolicy.choices, default=DowngradePolicy.ONE_TIER
    )
    negative_balance_policy = models.CharField(
        max_length=16,
        choices=NegativeBalancePolicy.choices,
        default=NegativeBalancePolicy.CLAMP,
        help_text="What a return does when the points it earned were already spent.",
    )
    bonus_points_qualify = models.BooleanField(
        default=False,
        help_text="Whether explicit bonus points count toward tiers (purchase points always do).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="loyalty_program_one_per_tenant"),
            models.CheckConstraint(condition=Q(earn_rate__gt=0), name="loyalty_program_earn_rate_positive"),
            models.CheckConstraint(
                condition=Q(redemption_points_per_unit__gt=0),
                name="loyalty_program_redemption_value_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_redemption_share__gt=0) & Q(max_redemption_share__lte=1),
                name="loyalty_program_max_share_0_1",
            ),
            models.CheckConstraint(
                condition=Q(qualifying_window_months__gte=1) & Q(review_period_months__gte=1),
                name="loyalty_program_periods_positive",
            ),
            models.CheckConstraint(
                condition=Q(expiry_months__isnull=True) | Q(expiry_months__gte=1),
                name="loyalty_program_expiry_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"

    @property
    def allows_negative(self) -> bool:
        return self.negative_balance_policy == NegativeBalancePolicy.ALLOW


class LoyaltyTier(TenantOwned):
    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers")
    code = models.CharField(max_length=16, choices=TierCode.choices)
    name = models.CharField(max_length=50)
    threshold = models.BigIntegerField(help_text="Qualifying points over the window needed for this tier.")
    earn_multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1"))
    benefits = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="loyalty_tier_code_unique"),
            models.CheckConstraint(condition=Q(threshold__gte=0), name="loyalty_tier_threshold_non_negative"),
            # A multiplier below 1 would let a purchase earn fewer points than it qualifies for.
            models.CheckConstraint(
                condition=Q(earn_multiplier__gte=1), name="loyalty_tier_multiplier_at_least_1"
            ),
        ]
        ordering = ["threshold"]

    def __str__(self) -> str:
        return self.name


class LoyaltyAccount(TenantOwned):
    """A customer's cached balances; always equal to the sums of its ledger."""

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="loyalty_account")
    available = models.BigIntegerField(default=0)
    allow_negative = models.BooleanField(
        default=False,
        help_text="Copied from the program's negative-balance policy so that the database can check it.",
    )
    pending = models.BigIntegerField(default=0)
    lifetime_earned = models.BigIntegerField(default=0, help_text="Earned minus earnings reversed.")
    redeemed = models.BigIntegerField(default=0, help_text="Redeemed minus redemptions reversed.")
    expired = models.BigIntegerField(default=0)
    adjusted = models.BigIntegerField(default=0, help_text="Net manual adjustments.")
    unrecovered = models.BigIntegerField(
        default=0, help_text="Points a return should have taken back but that were already spent."
    )
    qualifying_points = models.BigIntegerField(default=0, help_text="Qualifying points in the window.")
    qualifying_as_of = models.DateTimeField(null=True, blank=True)
    # The qualifying points are summed over the window only when the count may be out of date: an earn adds to
    # it while the window starts no earlier than it did at the last sum and still before every row counted.
    qualifying_counted_from = models.DateTimeField(
        null=True, blank=True, help_text="Where the window started at the last sum; empty: sum again."
    )
    qualifying_oldest_at = models.DateTimeField(
        null=True, blank=True, help_text="No row counted in the qualifying points is dated before this."
    )
    tier = models.CharField(max_length=16, choices=TierCode.choices, default=TierCode.BRONZE)
    earned_tier = models.CharField(
        max_length=16,
        choices=TierCode.choices,
        default=TierCode.BRONZE,
        help_text="The tier the program's rules give; `tier` differs only while an override is active.",
    )
    tier_override = models.CharField(max_length=16, choices=TierCode.choices, blank=True)
    tier_override_expires_at = models.DateTimeField(null=True, blank=True)
    tier_review_at = models.DateTimeField(null=True, blank=True)
    tier_changed_at = models.DateTimeField(null=True, blank=True)
    # Lower bounds kept by the services (never later than the real date; empty = nothing of that kind), so that
    # an operation finds out with no query that no pending award is due for release and no award due to expire.
    next_release_at = models.DateTimeField(
        null=True, blank=True, help_text="No pending award is released before this; empty: none pending."
    )
    next_expiry_at = models.DateTimeField(
        null=True, blank=True, help_text="No award with points left expires before this; empty: none will."
    )
    # Points reserved for sales not yet paid (`PointsHold`): a redemption may spend only available - held_points.
    # Kept here, under the account lock, so that availability is this one row; not bounded by `available` (a
    # return may take back points that are held: the hold's commit is then refused).
    held_points = models.BigIntegerField(
        default=0, db_default=0, help_text="Points held for sales not yet committed."
    )
    next_hold_expiry_at = models.DateTimeField(
        null=True, blank=True, help_text="No held hold expires before this; empty: none held."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("adjust_points", "Can adjust loyalty points by hand"),
            ("override_tier", "Can override a customer's loyalty tier"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(available__gte=0) | Q(allow_negative=True),
                name="loyalty_account_available_non_negative",
            ),
            models.CheckConstraint(condition=Q(pending__gte=0), name="loyalty_account_pending_non_negative"),
            models.CheckConstraint(condition=Q(held_points__gte=0), name="loyalty_account_held_non_negative"),
            models.CheckConstraint(
                condition=Q(lifetime_earned__gte=0)
                & Q(redeemed__gte=0)
                & Q(expired__gte=0)
                & Q(unrecovered__gte=0)
                & Q(qualifying_points__gte=0),
                name="loyalty_account_buckets_non_negative",
            ),
            # The buckets add up: what is held is what was earned, less spent and expired, plus the rest.
            models.CheckConstraint(
                condition=Q(
                    available=F("lifetime_earned")
                    - F("redeemed")
                    - F("expired")
                    + F("adjusted")
                    + F("unrecovered")
                    - F("pending")
                ),
                name="loyalty_account_buckets_add_up",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "tier_review_at"], name="loyalty_account_review_idx"),
        ]

    def __str__(self) -> str:
        return f"Loyalty account of {self.customer}"


class OperationKind(models.TextChoices):
    EARN = "earn", "Earn"
    REDEEM = "redeem", "Redeem"
    HOLD = "hold", "Hold points for a sale"
    REVERSE = "reverse", "Reverse a purchase"
    ADJUST = "adjust", "Adjust"
    STAMPS = "stamps", "Add stamps"
    STAMP_REWARD = "stamp_reward", "Redeem a stamp reward"


class TransactionType(models.TextChoices):
    EARN = "earn", "Earn"
    REDEEM = "redeem", "Redeem"
    REVERSE_EARN = "reverse_earn", "Reverse earn (return)"
    REVERSE_REDEEM = "reverse_redeem", "Reverse redeem (refund)"
    EXPIRE = "expire", "Expire"
    ADJUST = "adjust", "Adjust"
    RELEASE = "release", "Release pending"


class NextVal(models.Func):
    """`nextval('<sequence>')`: a database-assigned number, increasing in insertion order."""

    function = "nextval"
    output_field = models.BigIntegerField()


LEDGER_SEQUENCE = "loyalty_transaction_seq"


class LoyaltyTransaction(AppendOnlyLedger, TenantOwned):
    """The append-only ledger (a database trigger refuses UPDATE and DELETE).

    `points` is the size of the movement; the signed deltas say which buckets it moved. `seq` orders rows
    written in the same instant (several rows of one operation share `created_at`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    seq = models.BigIntegerField(
        db_default=NextVal(models.Value(LEDGER_SEQUENCE)), editable=False, unique=True
    )
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="transactions")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="loyalty_transactions")
    operation = models.ForeignKey(
        IdempotencyRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    type = models.CharField(max_length=16, choices=TransactionType.choices)
    points = models.BigIntegerField()
    available_delta = models.BigIntegerField(default=0)
    pending_delta = models.BigIntegerField(default=0)
    qualifying_delta = models.BigIntegerField(
        default=0, help_text="Change of the qualifying points, dated `effective_at` in the tier window."
    )
    qualifying_points = models.BigIntegerField(
        default=0, help_text="Earn: qualifying points of the award; reverse earn: those taken back."
    )
    unrecovered_points = models.BigIntegerField(default=0)
    balance_after = models.BigIntegerField(help_text="Available points after this transaction.")
    pending_after = models.BigIntegerField(default=0)
    reference = models.CharField(max_length=100, blank=True, help_text="POS transaction or order id.")
    idempotency_key = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=32, blank=True, help_text="api, grpc, admin, event, system, ...")
    actor = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    purchase_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    discount_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Earn: when the award expires.")
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversals"
    )
    tier_after = models.CharField(max_length=16, blank=True)
    effective_at = models.DateTimeField(help_text="Where the qualifying delta falls in the tier window.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=0), name="loyalty_txn_points_non_negative"),
            models.CheckConstraint(
                condition=Q(unrecovered_points__gte=0), name="loyalty_txn_unrecovered_non_negative"
            ),
            # Single-transaction requests carry the caller's key; the database keeps it unique per tenant.
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(type__in=["earn", "redeem", "adjust"]) & ~Q(idempotency_key=""),
                name="loyalty_txn_key_unique_per_tenant",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at", "-seq"], name="loyalty_txn_account_time_idx"),
            models.Index(fields=["tenant", "reference"], name="loyalty_txn_reference_idx"),
            models.Index(fields=["tenant", "type", "created_at"], name="loyalty_txn_type_time_idx"),
            models.Index(
                fields=["account", "effective_at"],
                name="loyalty_txn_qualifying_idx",
                condition=~Q(qualifying_delta=0),
            ),
        ]
        ordering = ["-created_at", "-seq"]

    def __str__(self) -> str:
        return f"{self.type} {self.points}"


class AwardStatus(models.TextChoices):
    PENDING = "pending", "Pending (return window)"
    AVAILABLE = "available", "Available"


class PointsAward(TenantOwned):
    """A lot of points from one earn (or positive adjustment): when it expires and how much of it is left."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="awards")
    transaction = models.OneToOneField(LoyaltyTransaction, on_delete=models.PROTECT, related_name="award")
    points = models.BigIntegerField()
    remaining = models.BigIntegerField()
    qualifying_points = models.BigIntegerField(
        default=0, help_text="Counted toward the tier when the award becomes available; less any returned."
    )
    status = models.CharField(max_length=16, choices=AwardStatus.choices)
    release_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="loyalty_award_points_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("points")),
                name="loyalty_award_remaining_in_range",
            ),
            models.CheckConstraint(
                condition=Q(qualifying_points__gte=0), name="loyalty_award_qualifying_non_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "status", "expires_at"], name="loyalty_award_spend_idx"),
            models.Index(
                fields=["tenant", "release_at"],
                name="loyalty_award_release_idx",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["tenant", "expires_at"], name="loyalty_award_expiry_idx", condition=Q(remaining__gt=0)
            ),
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.points} points"


class AwardAllocation(AppendOnlyLedger, TenantOwned):
    """Which awards a transaction drew from (points > 0) or gave back to (points < 0). Append-only."""

    transaction = models.ForeignKey(LoyaltyTransaction, on_delete=models.PROTECT, related_name="allocations")
    award = models.ForeignKey(PointsAward, on_delete=models.PROTECT, related_name="allocations")
    points = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="loyalty_allocation_points_non_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.points} from {self.award_id}"


class PurchaseReversal(AppendOnlyLedger, TenantOwned):
    """A return or refund of a purchase (by reference): how much of it, so later partial returns add up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="reversals")
    operation = models.ForeignKey(IdempotencyRecord, on_delete=models.PROTECT, related_name="+")
    reference = models.CharField(max_length=100)
    full = models.BooleanField(help_text="Everything left of the purchase was reversed.")
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    base_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="The purchase amount `amount` is of.",
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "reference"], name="loyalty_reversal_ref_idx")]

    def __str__(self) -> str:
        return f"return of {self.reference}"


class TierRule(models.TextChoices):
    THRESHOLD_REACHED = "threshold_reached", "Qualifying points reached the threshold"
    REVIEW_KEPT = "review_kept", "Review: policy keeps the tier"
    REVIEW_ONE_TIER_DOWN = "review_one_tier_down", "Review: one tier down"
    REVIEW_RECALCULATED = "review_recalculated", "Review: recalculated"
    PURCHASE_RETURNED = "purchase_returned", "The purchase that earned the tier was returned"
    OVERRIDE_SET = "override_set", "Manual override"
    OVERRIDE_CLEARED = "override_cleared", "Manual override removed"
    OVERRIDE_EXPIRED = "override_expired", "Manual override expired"


class TierChange(AppendOnlyLedger, TenantOwned):
    """Why a customer's tier changed: the numbers and the rule that decided it."""

    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="tier_changes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    old_tier = models.CharField(max_length=16, choices=TierCode.choices, help_text="Tier shown before.")
    new_tier = models.CharField(max_length=16, choices=TierCode.choices, help_text="Tier shown after.")
    old_earned_tier = models.CharField(max_length=16, choices=TierCode.choices)
    new_earned_tier = models.CharField(
        max_length=16,
        choices=TierCode.choices,
        help_text="The tier the rules give (differs under an override).",
    )
    rule = models.CharField(max_length=32, choices=TierRule.choices)
    qualifying_points = models.BigIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    threshold = models.BigIntegerField(help_text="Threshold of the new tier.")
    reason = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.old_tier} -> {self.new_tier} ({self.rule})"


# --- Stamp cards ----------------------------------------------------------------------------------------------
class StampRule(TenantOwned):
    """Cafés: buy N qualifying items, get a reward."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    skus = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    categories = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    stamps_per_card = models.PositiveSmallIntegerField(default=10)
    reward_description = models.CharField(max_length=200)
    reward_sku = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="stamp_rule_name_unique"),
            models.CheckConstraint(condition=Q(stamps_per_card__gte=1), name="stamp_rule_card_size_positive"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StampCard(TenantOwned):
    """A customer's progress on one rule: stamps on the current card (less than a full card)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="stamp_cards")
    rule = models.ForeignKey(StampRule, on_delete=models.PROTECT, related_name="cards")
    stamps = models.IntegerField(default=0)
    lifetime_stamps = models.IntegerField(default=0)
    cards_completed = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "rule"], name="stamp_card_one_per_rule"),
            models.CheckConstraint(
                condition=Q(stamps__gte=0) & Q(lifetime_stamps__gte=0) & Q(cards_completed__gte=0),
                name="stamp_card_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stamps} stamps on {self.rule_id}"


class StampEntryKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    MANUAL = "manual", "Explicit stamps"
    RETURN = "return", "Return"
    CARD_COMPLETED = "card_completed", "Card completed (reward issued)"
    REWARD_REVOKED = "reward_revoked", "Reward revoked by a return"


class StampEntry(AppendOnlyLedger, TenantOwned):
    """The stamp ledger: the card's stamps are the sum of `delta`."""

    card = models.ForeignKey(StampCard, on_delete=models.PROTECT, related_name="entries")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    operation = models.ForeignKey(
        IdempotencyRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=StampEntryKind.choices)
    delta = models.IntegerField()
    unrecovered = models.IntegerField(default=0, help_text="Stamps a return could not take back.")
    reference = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "reference"], name="stamp_entry_reference_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d}"


class StampRewardStatus(models.TextChoices):
    ISSUED = "issued", "Issued"
    REDEEMED = "redeemed", "Redeemed"
    REVOKED = "revoked", "Revoked by a return"


class StampReward(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    card = models.ForeignKey(StampCard, on_delete=models.PROTECT, related_name="rewards")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="stamp_rewards")
    rule = models.ForeignKey(StampRule, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=StampRewardStatus.choices, default=StampRewardStatus.ISSUED
    )
    issued_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_reference = models.CharField(max_length=100, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["issued_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="redeemed") | Q(redeemed_at__isnull=False),
                name="stamp_reward_redeemed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.status}"


class HoldStatus(models.TextChoices):
    HELD = "held", "Held"
    COMMITTED = "committed", "Committed (redeemed)"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class PointsHold(TenantOwned):
    """Points reserved for one sale between the quote and the payment: committed (redeemed, exactly these points),
    released, or expired. While held they count in the account's `held_points`; only the services change either,
    under the account's lock."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="holds")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="loyalty_holds")
    operation = models.ForeignKey(
        IdempotencyRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200)
    points = models.BigIntegerField()
    reference = models.CharField(
        max_length=100, blank=True, help_text="The sale: POS transaction or order id."
    )
    purchase_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    discount_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.HELD)
    expires_at = models.DateTimeField()
    redemption = models.OneToOneField(
        LoyaltyTransaction,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hold",
        help_text="The redemption its commit wrote.",
    )
    source = models.CharField(max_length=32, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="loyalty_hold_points_positive"),
            models.CheckConstraint(
                condition=Q(redemption__isnull=True) | Q(status="committed"),
                name="loyalty_hold_redemption_only_committed",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "expires_at"], name="loyalty_hold_expiry_idx", condition=Q(status="held")
            ),
            models.Index(fields=["account", "status"], name="loyalty_hold_account_idx"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Hold of {self.points} points ({self.status})"
