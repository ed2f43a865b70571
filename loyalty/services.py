"""Every change to points, tiers and stamps. Nothing else writes the ledger or the cached balances.

How a change stays exact under retries and concurrency:
- A retry-able request first claims its idempotency key through `core.idempotency.idempotent` (a row in
  `IdempotencyRecord`, unique per tenant in the `loyalty` scope) in a savepoint; a concurrent duplicate waits on
  that unique index and then replays the stored result. A refused request (insufficient points, ...) rolls its
  savepoint back, so the key is not spent.
- The customer's `LoyaltyAccount` row is then locked (`select_for_update`); awards, allocations and the cached
  buckets of that customer change only under this lock. Stamp cards are locked after the account, in primary-key
  order.
- Each service first "matures" the account (releases pending awards whose return window passed, expires awards
  whose date passed), so what it sees does not depend on when the nightly jobs last ran.
- The database checks what must hold anyway: buckets add up, available >= 0 unless the program allows negative
  balances, an award's remaining stays within 0..points, the ledger is append-only.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Min, Sum

from core.errors import InvalidAmount, InvalidInput
from core.idempotency import idempotent
from core.models import IdempotencyRecord, Tenant
from core.money import MAX_AMOUNT, check_currency, parse_amount
from core.outbox import outbox_record
from customers.cache import customer_cache_invalidate
from customers.models import Customer
from loyalty import clock
from loyalty.calculations import (
    add_months,
    discount_for,
    earn_points,
    max_points_for_purchase,
    proportional_take,
    qualified_tier,
)
from loyalty.errors import (
    BelowMinimumRedemption,
    InsufficientPoints,
    InvalidEarnRequest,
    InvalidPoints,
    InvalidProgram,
    InvalidStamps,
    InvalidTier,
    NothingToReverse,
    PurchaseAmountUnknown,
    ReasonRequired,
    RedemptionExceedsPurchaseShare,
    ReversalExceedsPurchase,
    RewardAlreadyRedeemed,
    RewardRevoked,
    StampRewardNotFound,
    StampRuleNotFound,
)
from loyalty.models import (
    TIER_ORDER,
    AwardAllocation,
    AwardStatus,
    DowngradePolicy,
    EarnRounding,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTransaction,
    NegativeBalancePolicy,
    OperationKind,
    PointsAward,
    PurchaseReversal,
    StampCard,
    StampEntry,
    StampEntryKind,
    StampReward,
    StampRewardStatus,
    StampRule,
    TierChange,
    TierRule,
    TransactionType,
    tier_rank,
)
from loyalty.selectors import (
    default_tiers,
    program_get,
    program_tiers,
    qualifying_points_in_window,
    spendable_points,
    stamp_rule_get,
)

MAX_POINTS = 10**12
MAX_STAMPS = 1000  # per request, and per card from one purchase
MAX_ITEM_QUANTITY = Decimal(1_000_000)
MAX_REDEMPTION_POINTS_PER_UNIT = 1_000_000
MAX_MIN_REDEMPTION_POINTS = 1_000_000_000
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _atomic(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """`transaction.atomic` without the extra savepoint when the caller already holds a transaction.

    Only for services whose every write happens inside the savepoint of `_run_idempotent` (which a refusal rolls
    back): an outer savepoint around them would protect nothing and cost two round trips per call.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if transaction.get_connection().in_atomic_block:
            return func(*args, **kwargs)
        with transaction.atomic():
            return func(*args, **kwargs)

    return wrapper


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


# --- Input checks ---------------------------------------------------------------------------------------------
def _check_points(points: Any, *, allow_negative: bool = False) -> int:
    # ASCII digits only: str.isdigit() also accepts characters such as "²" that int() refuses.
    if isinstance(points, str) and _WHOLE_NUMBER.fullmatch(points.strip()):
        points = int(points.strip())
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidPoints(field="points")
    if abs(points) > MAX_POINTS or points == 0 or (points < 0 and not allow_negative):
        raise InvalidPoints(field="points")
    return points


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("An idempotency key is required.", code="missing_idempotency_key")
    key = key.strip()
    if len(key) > 200:
        raise InvalidInput(
            "The idempotency key is longer than 200 characters.", code="invalid_idempotency_key"
        )
    if _CONTROL_CHARACTERS.search(key):
        raise InvalidInput("The idempotency key has control characters.", code="invalid_idempotency_key")
    return key


def _check_reference(reference: Any) -> str:
    reference = (reference or "").strip() if isinstance(reference, str) or reference is None else None
    if reference is None or len(reference) > 100 or "\x00" in reference:
        raise InvalidInput(
            "reference must be a string of at most 100 characters, without NUL characters.",
            code="invalid_reference",
        )
    return reference


def _normalize_items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    normalized = []
    for item in items or []:
        if not isinstance(item, dict):
            raise InvalidInput("Every item must be an object.", code="invalid_item")
        try:
            quantity = Decimal(str(item.get("quantity", 1)))
        except Exception as exc:
            raise InvalidInput("An item's quantity is not a number.", code="invalid_item") from exc
        if not quantity.is_finite() or not 0 < quantity <= MAX_ITEM_QUANTITY:
            raise InvalidInput(
                f"An item's quantity must be greater than zero and at most {MAX_ITEM_QUANTITY}.",
                code="invalid_item",
            )
        normalized.append(
            {
                "sku": str(item.get("sku") or "").strip(),
                "category": str(item.get("category") or "").strip(),
                "quantity": str(quantity.normalize()),
            }
        )
    return normalized


def _tenant(customer: Customer) -> Tenant:
    return Tenant.objects.get(slug=customer.tenant_id)


def _tenant_currency(customer: Customer) -> str:
    """The tenant's currency. Plain SQL: on the hot paths (earn, redeem) the ORM costs more than the statement."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT currency FROM core_tenant WHERE slug = %s", [customer.tenant_id])
        row = cursor.fetchone()
    if row is None:
        raise Tenant.DoesNotExist(customer.tenant_id)
    return str(row[0])


# --- Idempotency ----------------------------------------------------------------------------------------------
IDEMPOTENCY_SCOPE = "loyalty"


def _run_idempotent(
    *,
    customer: Customer,
    kind: str,
    key: str,
    payload: dict[str, Any],
    work: Callable[[IdempotencyRecord], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Run `work` once per key (core's mechanism, in the loyalty key space): a replay returns the stored result;
    another payload is `idempotency_key_reused`."""
    return idempotent(
        tenant_id=customer.tenant_id,
        scope=IDEMPOTENCY_SCOPE,
        key=key,
        operation=kind,
        payload={"kind": kind, "customer_id": str(customer.pk), **payload},
        work=work,
        now=clock.now(),
        duplicate_constraints=("loyalty_txn_key_unique_per_tenant",),
    )


# --- Program --------------------------------------------------------------------------------------------------
def program_ensure(tenant_id: str) -> LoyaltyProgram:
    """The tenant's program, created with the contract's defaults the first time points move."""
    program = LoyaltyProgram.objects.filter(tenant_id=tenant_id).first()
    if program is not None:
        return program
    try:
        with transaction.atomic():
            program = LoyaltyProgram.objects.create(tenant_id=tenant_id)
            LoyaltyTier.objects.bulk_create(default_tiers(program))
            return program
    except IntegrityError:
        return LoyaltyProgram.objects.get(tenant_id=tenant_id)


PROGRAM_FIELDS = (
    "name",
    "earn_rate",
    "earn_rounding",
    "redemption_points_per_unit",
    "min_redemption_points",
    "max_redemption_share",
    "pending_days",
    "expiry_months",
    "qualifying_window_months",
    "review_period_months",
    "downgrade_policy",
    "negative_balance_policy",
    "bonus_points_qualify",
)


def validate_program(values: dict[str, Any]) -> None:
    """Refuse settings the program cannot run with (the database checks most of them again)."""

    def bad(field_name: str, message: str) -> InvalidProgram:
        return InvalidProgram(f"{field_name}: {message}", field=field_name)

    if Decimal(values["earn_rate"]) <= 0:
        raise bad("earn_rate", "must be greater than zero")
    if values["earn_rounding"] not in EarnRounding.values:
        raise bad("earn_rounding", f"must be one of {', '.join(EarnRounding.values)}")
    if not 1 <= int(values["redemption_points_per_unit"]) <= MAX_REDEMPTION_POINTS_PER_UNIT:
        raise bad("redemption_points_per_unit", f"must be between 1 and {MAX_REDEMPTION_POINTS_PER_UNIT}")
    if not 0 <= int(values["min_redemption_points"]) <= MAX_MIN_REDEMPTION_POINTS:
        raise bad("min_redemption_points", f"must be between 0 and {MAX_MIN_REDEMPTION_POINTS}")
    share = Decimal(values["max_redemption_share"])
    if not Decimal("0") < share <= Decimal("1"):
        raise bad("max_redemption_share", "must be greater than 0 and at most 1")
    if int(values["pending_days"]) < 0 or int(values["pending_days"]) > 365:
        raise bad("pending_days", "must be between 0 and 365")
    if values["expiry_months"] is not None and not 1 <= int(values["expiry_months"]) <= 120:
        raise bad("expiry_months", "must be between 1 and 120, or empty for never")
    for name in ("qualifying_window_months", "review_period_months"):
        if not 1 <= int(values[name]) <= 120:
            raise bad(name, "must be between 1 and 120")
    if values["downgrade_policy"] not in DowngradePolicy.values:
        raise bad("downgrade_policy", f"must be one of {', '.join(DowngradePolicy.values)}")
    if values["negative_balance_policy"] not in NegativeBalancePolicy.values:
        raise bad("negative_balance_policy", f"must be one of {', '.join(NegativeBalancePolicy.values)}")


def validate_tiers(tiers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """All four tiers, Bronze at 0, thresholds strictly rising with the rank, multipliers of at least 1."""
    by_code = {t["code"]: t for t in tiers}
    if set(by_code) != set(TIER_ORDER):
        raise InvalidProgram(f"tiers: give exactly {', '.join(TIER_ORDER)}", field="tiers")
    ordered = [by_code[code] for code in TIER_ORDER]
    if int(ordered[0]["threshold"]) != 0:
        raise InvalidProgram(f"tiers: {TIER_ORDER[0]} must have threshold 0", field="tiers")
    if any(int(t["threshold"]) > MAX_POINTS for t in ordered):
        raise InvalidProgram(f"tiers: a threshold may be at most {MAX_POINTS}", field="tiers")
    for lower, higher in itertools.pairwise(ordered):
        if int(higher["threshold"]) <= int(lower["threshold"]):
            raise InvalidProgram("tiers: thresholds must rise with the tier", field="tiers")
    for tier in ordered:
        if Decimal(str(tier["earn_multiplier"])) < 1:
            raise InvalidProgram("tiers: earn_multiplier must be at least 1", field="tiers")
    return ordered


@transaction.atomic
def program_update(
    *, tenant_id: str, data: dict[str, Any], tiers: list[dict[str, Any]] | None = None, actor: str = ""
) -> LoyaltyProgram:
    """Change the program (and its tiers); accounts follow a change of the negative-balance policy."""
    program = program_ensure(tenant_id)
    program = LoyaltyProgram.objects.select_for_update().get(pk=program.pk)
    unknown = set(data) - set(PROGRAM_FIELDS)
    if unknown:
        raise InvalidProgram(f"Unknown fields: {', '.join(sorted(unknown))}", fields=sorted(unknown))
    values = {name: data.get(name, getattr(program, name)) for name in PROGRAM_FIELDS}
    validate_program(values)
    old_policy = program.negative_balance_policy
    for name, value in values.items():
        setattr(program, name, value)
    program.save()
    if tiers is not None:
        current = {t.code: t for t in program.tiers.all()}
        merged = [
            {
                "code": code,
                "name": tier.name,
                "threshold": tier.threshold,
                "earn_multiplier": tier.earn_multiplier,
                "benefits": tier.benefits,
            }
            for code, tier in current.items()
        ]
        by_code = {t["code"]: t for t in merged}
        for change in tiers:
            if change.get("code") not in TIER_ORDER:
                raise InvalidProgram(f"tiers: unknown tier {change.get('code')!r}", field="tiers")
            by_code.setdefault(change["code"], {"code": change["code"], "name": change["code"].title()})
            by_code[change["code"]].update({k: v for k, v in change.items() if v is not None})
        for tier_values in validate_tiers(by_code.values()):
            LoyaltyTier.objects.update_or_create(
                program=program,
                code=tier_values["code"],
                defaults={
                    "tenant_id": tenant_id,
                    "name": tier_values.get("name") or tier_values["code"].title(),
                    "threshold": int(tier_values["threshold"]),
                    "earn_multiplier": Decimal(str(tier_values["earn_multiplier"])),
                    "benefits": tier_values.get("benefits") or "",
                },
            )
    if program.negative_balance_policy != old_policy:
        account_sync_negative_policy(program=program)
    return program


def account_sync_negative_policy(*, program: LoyaltyProgram) -> int:
    """Copy the policy into every account (so the database can check it); a negative account keeps the flag."""
    ids = list(
        LoyaltyAccount.objects.select_for_update()
        .filter(tenant_id=program.tenant_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    qs = LoyaltyAccount.objects.filter(pk__in=ids)
    if program.allows_negative:
        return qs.update(allow_negative=True)
    return qs.filter(available__gte=0).update(allow_negative=False)


# --- Program snapshots ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ProgramSnapshot:
    """A tenant's program and tiers as read at `version` (program id, updated_at). Read-only: shared by threads."""

    version: tuple[UUID, datetime]
    program: LoyaltyProgram
    tiers: tuple[LoyaltyTier, ...]


# Per process: the last program and tiers read per tenant. Used only after checking, under the account lock, that
# the program row still has this version (`program_update` saves the program, so a change of the tiers moves
# `updated_at` too), so a change is seen by the very next operation, in this process or any other.
_program_snapshots: dict[str, _ProgramSnapshot] = {}
_PROGRAM_SNAPSHOTS_MAX = 10_000
_program_snapshots_lock = threading.Lock()


def _program_snapshot_cached(tenant_id: str) -> _ProgramSnapshot | None:
    """The snapshot read last (possibly out of date: the caller checks its version under the account lock)."""
    return _program_snapshots.get(tenant_id)


def _program_current(tenant_id: str, cached: _ProgramSnapshot | None) -> _ProgramSnapshot:
    """The program and tiers as they are now: `cached` when the program row still has its version (one indexed
    read of two columns), else read again (and created with the defaults the first time points move)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, updated_at FROM loyalty_loyaltyprogram WHERE tenant_id = %s", [tenant_id])
        version = cursor.fetchone()
    if version is None:
        program_ensure(tenant_id)
    elif cached is not None and cached.version == tuple(version):
        return cached
    program = LoyaltyProgram.objects.get(tenant_id=tenant_id)
    snapshot = _ProgramSnapshot(
        version=(program.pk, program.updated_at), program=program, tiers=tuple(program_tiers(program))
    )
    with _program_snapshots_lock:
        if len(_program_snapshots) >= _PROGRAM_SNAPSHOTS_MAX:
            _program_snapshots.clear()
        _program_snapshots[tenant_id] = snapshot
    return snapshot


# --- Accounts -------------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    """What one locked operation works with."""

    customer: Customer
    program: LoyaltyProgram
    tiers: Sequence[LoyaltyTier]
    account: LoyaltyAccount
    now: datetime
    actor: str
    source: str
    operation: IdempotencyRecord | None = None
    tier_changes: list[TierChange] = field(default_factory=list)
    starting_tier: str = ""
    currency: str = ""  # the tenant's, when the caller already read it

    def tier(self, code: str) -> LoyaltyTier:
        return next(t for t in self.tiers if t.code == code)


_ACCOUNT_FIELDS = list(LoyaltyAccount._meta.concrete_fields)
_ACCOUNT_COLUMNS = ", ".join(connection.ops.quote_name(f.column) for f in _ACCOUNT_FIELDS)
# The column list comes from the model, never from input.
_LOCK_ACCOUNT_SQL = (
    "SELECT " + _ACCOUNT_COLUMNS + " FROM loyalty_loyaltyaccount WHERE customer_id = %s FOR UPDATE"  # noqa: S608
)


def _lock_account(customer: Customer) -> LoyaltyAccount | None:
    """`select_for_update()` of the customer's account (None when it has none yet), in plain SQL: on the hot path
    the ORM costs more than the statement. Row-level security keeps it to the current tenant."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ACCOUNT_SQL, [customer.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return LoyaltyAccount.from_db(connection.alias, [f.attname for f in _ACCOUNT_FIELDS], row)


def _lock(
    customer: Customer,
    *,
    actor: str,
    source: str,
    operation: IdempotencyRecord | None = None,
    mature: bool = True,
) -> _Ctx:
    """Lock the customer's account (creating it the first time) and bring it up to date with the clock."""
    cached = _program_snapshot_cached(customer.tenant_id)
    account = _lock_account(customer)
    if account is None:
        program = cached.program if cached is not None else program_ensure(customer.tenant_id)
        LoyaltyAccount.objects.bulk_create(
            [
                LoyaltyAccount(
                    tenant_id=customer.tenant_id,
                    customer=customer,
                    allow_negative=program.allows_negative,
                    tier=TIER_ORDER[0],
                    earned_tier=TIER_ORDER[0],
                )
            ],
            ignore_conflicts=True,
        )
        account = LoyaltyAccount.objects.select_for_update().get(customer_id=customer.pk)
    # Check the program under the lock, in a statement of its own (a fresh snapshot): a change of its
    # negative-balance policy either committed before (and is seen now) or waits for this lock (and then syncs
    # this account); never a stale policy or stale tiers.
    snapshot = _program_current(customer.tenant_id, cached)
    ctx = _Ctx(
        customer=customer,
        program=snapshot.program,
        tiers=snapshot.tiers,
        account=account,
        now=clock.now(),
        actor=actor,
        source=source,
        operation=operation,
        starting_tier=account.tier,
    )
    if mature:
        _mature(ctx)
    return ctx


def _save_account(ctx: _Ctx) -> None:
    account = ctx.account
    # In a program without negative balances the flag can only stay on for an account still negative from
    # before a policy change, so the database keeps refusing every new negative balance.
    account.allow_negative = ctx.program.allows_negative or (account.allow_negative and account.available < 0)
    account.save(
        update_fields=[
            "available",
            "allow_negative",
            "pending",
            "lifetime_earned",
            "redeemed",
            "expired",
            "adjusted",
            "unrecovered",
            "qualifying_points",
            "qualifying_as_of",
            "tier",
            "earned_tier",
            "tier_override",
            "tier_override_expires_at",
            "tier_review_at",
            "tier_changed_at",
            "next_release_at",
            "next_expiry_at",
            "updated_at",
        ]
    )


def _earlier(bound: datetime | None, moment: datetime | None) -> datetime | None:
    """The earlier of a next-due bound and a new date (None stands for "never")."""
    if moment is None:
        return bound
    return moment if bound is None or moment < bound else bound


def _note_expiry(ctx: _Ctx, award: PointsAward) -> None:
    """An available award holds points (again): its expiry date bounds the account's next expiry."""
    if award.status == AwardStatus.AVAILABLE and award.remaining > 0:
        ctx.account.next_expiry_at = _earlier(ctx.account.next_expiry_at, award.expires_at)


def _new_txn(ctx: _Ctx, type_: str, points: int, **fields: Any) -> LoyaltyTransaction:
    fields.setdefault("effective_at", ctx.now)
    return LoyaltyTransaction(
        tenant_id=ctx.account.tenant_id,
        account=ctx.account,
        customer_id=ctx.account.customer_id,
        operation=ctx.operation,
        type=type_,
        points=points,
        source=ctx.source,
        actor=ctx.actor[:200],
        created_at=ctx.now,
        **fields,
    )


def _save_txn(ctx: _Ctx, txn: LoyaltyTransaction) -> LoyaltyTransaction:
    txn.balance_after = ctx.account.available
    txn.pending_after = ctx.account.pending
    txn.tier_after = ctx.account.tier
    txn.save(force_insert=True)
    return txn


def _allocate(ctx: _Ctx, txn: LoyaltyTransaction, award: PointsAward, points: int) -> None:
    """Move `points` out of (> 0) or back into (< 0) an award, recording the allocation."""
    award.remaining -= points
    award.save(update_fields=["remaining"])
    AwardAllocation.objects.create(tenant_id=award.tenant_id, transaction=txn, award=award, points=points)
    if points < 0:
        _note_expiry(ctx, award)


def _credit(ctx: _Ctx, points: int) -> int:
    """Add points to the available balance; returns how many of them first pay back a negative balance (which
    the program allowed), for the caller to draw from the award they came in."""
    debt = max(0, -ctx.account.available)
    ctx.account.available += points
    return min(points, debt)


def _spendable_awards(ctx: _Ctx) -> list[PointsAward]:
    """Available awards with points left, soonest-expiring first (never-expiring last)."""
    return list(
        PointsAward.objects.filter(
            account=ctx.account, status=AwardStatus.AVAILABLE, remaining__gt=0
        ).order_by(F("expires_at").asc(nulls_last=True), "transaction__seq")
    )


def _draw(ctx: _Ctx, txn: LoyaltyTransaction, points: int, *, first: PointsAward | None = None) -> int:
    """Take up to `points` from available awards, soonest-expiring first; returns how many were there."""
    awards = _spendable_awards(ctx)
    if first is not None and first.status == AwardStatus.AVAILABLE:
        awards = [a for a in awards if a.pk == first.pk] + [a for a in awards if a.pk != first.pk]
    taken = 0
    allocations = []
    for award in awards:
        if taken >= points:
            break
        n = min(award.remaining, points - taken)
        award.remaining -= n
        award.save(update_fields=["remaining"])
        allocations.append(AwardAllocation(tenant_id=award.tenant_id, transaction=txn, award=award, points=n))
        taken += n
    AwardAllocation.objects.bulk_create(allocations)  # what `_allocate` records, in one statement
    return taken


def _new_award(
    ctx: _Ctx, txn: LoyaltyTransaction, points: int, *, pending: bool, qualifying: int
) -> PointsAward:
    """Create the award; the caller saves the account (whose next-due dates it moves)."""
    award = PointsAward.objects.create(
        tenant_id=ctx.account.tenant_id,
        account=ctx.account,
        transaction=txn,
        points=points,
        remaining=points,
        qualifying_points=qualifying,
        status=AwardStatus.PENDING if pending else AwardStatus.AVAILABLE,
        release_at=ctx.now + timedelta(days=ctx.program.pending_days) if pending else None,
        expires_at=txn.expires_at,
        created_at=ctx.now,
    )
    if pending:
        ctx.account.next_release_at = _earlier(ctx.account.next_release_at, award.release_at)
    _note_expiry(ctx, award)
    return award


def _award_expiry(ctx: _Ctx) -> datetime | None:
    months = ctx.program.expiry_months
    return add_months(ctx.now, months) if months else None


# --- Maturing: release pending, expire ------------------------------------------------------------------------
def _mature(ctx: _Ctx) -> tuple[int, int]:
    """Bring the account up to the clock: release, expire, and apply the tier the released points reach (or the
    end of an override). Returns (points released, points expired); the caller's `_finish` records the events."""
    released = _release_due(ctx)
    expired = _expire_due(ctx)
    account = ctx.account
    override_ended = (
        account.tier_override_expires_at is not None and account.tier_override_expires_at <= ctx.now
    )
    if released or override_ended:
        _refresh_qualifying(ctx)
        _evaluate_tier(ctx, review=False)
        _save_account(ctx)
    return released, expired


def _release_due(ctx: _Ctx) -> int:
    """Pending awards whose return window has passed become spendable (and start counting toward the tier)."""
    account = ctx.account
    if account.next_release_at is None or account.next_release_at > ctx.now:
        return 0  # the common case: no query
    due = list(
        PointsAward.objects.filter(
            account=ctx.account, status=AwardStatus.PENDING, release_at__lte=ctx.now
        ).order_by("release_at", "transaction__seq")
    )
    total = 0
    for award in due:
        points = award.remaining
        award.status = AwardStatus.AVAILABLE
        award.save(update_fields=["status"])
        _note_expiry(ctx, award)
        txn = _new_txn(
            ctx,
            TransactionType.RELEASE,
            points,
            pending_delta=-points,
            available_delta=points,
            qualifying_delta=award.qualifying_points,
            qualifying_points=award.qualifying_points,
            effective_at=award.created_at,
            reference=award.transaction.reference,
            expires_at=award.expires_at,
            reverses=None,
        )
        ctx.account.pending -= points
        repay = _credit(ctx, points)
        _save_txn(ctx, txn)
        if repay:
            _allocate(ctx, txn, award, repay)
        total += points
    found = PointsAward.objects.filter(account=account, status=AwardStatus.PENDING).aggregate(
        next=Min("release_at")
    )["next"]
    if due or found != account.next_release_at:
        account.next_release_at = found
        _save_account(ctx)
    return total


def _expire_due(ctx: _Ctx) -> int:
    """Awards past their date lose what is left of them, in one expire transaction."""
    account = ctx.account
    if account.next_expiry_at is None or account.next_expiry_at > ctx.now:
        return 0  # the common case: no query
    spendable = PointsAward.objects.filter(account=account, status=AwardStatus.AVAILABLE, remaining__gt=0)
    due = list(spendable.filter(expires_at__lte=ctx.now).order_by("expires_at", "transaction__seq"))
    if not due:
        found = spendable.aggregate(next=Min("expires_at"))["next"]
        if found != account.next_expiry_at:
            account.next_expiry_at = found
            _save_account(ctx)
        return 0
    total = sum(a.remaining for a in due)
    ctx.account.available -= total
    ctx.account.expired += total
    txn = _save_txn(ctx, _new_txn(ctx, TransactionType.EXPIRE, total, available_delta=-total))
    for award in due:
        _allocate(ctx, txn, award, award.remaining)
    account.next_expiry_at = spendable.aggregate(next=Min("expires_at"))["next"]
    _save_account(ctx)
    customer_cache_invalidate(tenant_id=ctx.account.tenant_id, customer_id=ctx.account.customer_id)
    return total


# --- Tiers ----------------------------------------------------------------------------------------------------
def _window_start(ctx: _Ctx) -> datetime:
    return add_months(ctx.now, -ctx.program.qualifying_window_months)


def _refresh_qualifying(ctx: _Ctx, *, unsaved_delta: int = 0) -> None:
    """Recount the qualifying points in the rolling window (plus a transaction not yet saved)."""
    ctx.account.qualifying_points = (
        qualifying_points_in_window(ctx.account, start=_window_start(ctx), end=ctx.now) + unsaved_delta
    )
    ctx.account.qualifying_as_of = ctx.now


def _evaluate_tier(
    ctx: _Ctx,
    *,
    review: bool,
    returned_earn: LoyaltyTransaction | None = None,
    override_rule: str | None = None,
    reason: str = "",
) -> TierChange | None:
    """Apply the program's tier rules to the account (caller refreshed the qualifying points and saves).

    Upgrades happen as soon as qualifying points reach a threshold. Downgrades happen only at a review (per the
    downgrade policy) or when a return takes back the points that earned the tier. The earned tier is kept apart
    from a manual override, so an override never becomes a floor: when it ends, the earned tier shows again.
    """
    account = ctx.account
    tiers = ctx.tiers
    qualifying = account.qualifying_points
    qualified = qualified_tier(tiers, qualifying)
    earned = ctx.tier(account.earned_tier)
    new_earned = earned
    rule = override_rule or ""
    policy = ctx.program.downgrade_policy
    review_due = account.tier_review_at is not None and account.tier_review_at <= ctx.now
    next_review = add_months(ctx.now, ctx.program.review_period_months)

    if tier_rank(qualified.code) > tier_rank(earned.code):
        new_earned = qualified
        rule = rule or TierRule.THRESHOLD_REACHED
        account.tier_review_at = next_review
    elif returned_earn is not None and tier_rank(qualified.code) < tier_rank(earned.code):
        first_upgrade = (
            TierChange.objects.filter(
                account=account, rule=TierRule.THRESHOLD_REACHED, created_at__gte=returned_earn.created_at
            )
            .order_by("created_at", "id")
            .first()
        )
        if first_upgrade is not None:
            floor = first_upgrade.old_earned_tier
            new_earned = ctx.tier(floor if tier_rank(floor) > tier_rank(qualified.code) else qualified.code)
            rule = TierRule.PURCHASE_RETURNED
    elif review and review_due:
        if tier_rank(qualified.code) >= tier_rank(earned.code) or policy == DowngradePolicy.NEVER:
            account.tier_review_at = next_review
        elif policy == DowngradePolicy.ONE_TIER:
            new_earned = tiers[max(tier_rank(earned.code) - 1, tier_rank(qualified.code))]
            rule = TierRule.REVIEW_ONE_TIER_DOWN
            account.tier_review_at = next_review
        else:
            new_earned = qualified
            rule = TierRule.REVIEW_RECALCULATED
            account.tier_review_at = next_review
    if tier_rank(new_earned.code) == 0:
        account.tier_review_at = None

    if (
        not override_rule
        and account.tier_override
        and account.tier_override_expires_at is not None
        and account.tier_override_expires_at <= ctx.now
    ):
        account.tier_override = ""
        account.tier_override_expires_at = None
        if not rule or new_earned.code == earned.code:
            rule = TierRule.OVERRIDE_EXPIRED
    old_tier, old_earned = account.tier, account.earned_tier
    account.earned_tier = new_earned.code
    account.tier = account.tier_override or new_earned.code
    if account.tier == old_tier and account.earned_tier == old_earned and not override_rule:
        return None
    shown = ctx.tier(account.tier)
    window_start = _window_start(ctx)
    text = reason or (
        f"{qualifying} qualifying points from {window_start:%Y-%m-%d} to {ctx.now:%Y-%m-%d}; "
        f"{shown.name} needs {shown.threshold}; downgrade policy {policy}"
    )
    change = TierChange.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        customer_id=account.customer_id,
        old_tier=old_tier,
        new_tier=account.tier,
        old_earned_tier=old_earned,
        new_earned_tier=account.earned_tier,
        rule=rule or TierRule.THRESHOLD_REACHED,
        qualifying_points=qualifying,
        window_start=window_start,
        window_end=ctx.now,
        threshold=shown.threshold,
        reason=text[:500],
        actor=ctx.actor[:200],
        created_at=ctx.now,
    )
    if account.tier != old_tier:
        account.tier_changed_at = ctx.now
        ctx.tier_changes.append(change)
    return change


def _finish(ctx: _Ctx) -> None:
    """Record the tier events and drop the customer cache once the operation's changes are made."""
    for change in ctx.tier_changes:
        upgraded = tier_rank(change.new_tier) > tier_rank(change.old_tier)
        outbox_record(
            tenant_id=ctx.account.tenant_id,
            event_type="loyalty.tier.upgraded" if upgraded else "loyalty.tier.downgraded",
            data={
                "customer_id": str(ctx.account.customer_id),
                "previous_tier": change.old_tier,
                "tier": change.new_tier,
                "rule": change.rule,
                "qualifying_points": change.qualifying_points,
                "window_start": change.window_start,
                "window_end": change.window_end,
                "reason": change.reason,
            },
            aggregate_id=str(ctx.account.customer_id),
        )
    ctx.tier_changes.clear()
    customer_cache_invalidate(tenant_id=ctx.account.tenant_id, customer_id=ctx.account.customer_id)


def _result(
    ctx: _Ctx, txn: LoyaltyTransaction | None, *, points: int, discount: Decimal, **extra: Any
) -> dict:
    return LoyaltyResult(
        transaction_id=txn.pk if txn is not None else None,
        points=points,
        points_balance=ctx.account.available,
        discount_amount=discount,
        currency=ctx.currency or _tenant(ctx.customer).currency,
        tier=ctx.account.tier,
        previous_tier=ctx.starting_tier,
        tier_changed=ctx.account.tier != ctx.starting_tier,
        pending_balance=ctx.account.pending,
        **extra,
    ).as_json()


# --- Earn -----------------------------------------------------------------------------------------------------
@_atomic
def points_earn(
    *,
    customer: Customer,
    idempotency_key: str,
    purchase_amount: Decimal | None = None,
    points: int | None = None,
    currency: str | None = None,
    reference: str = "",
    items: list[dict] | None = None,
    source: str = "api",
    actor: str = "",
    qualifying: bool | None = None,
) -> LoyaltyResult:
    """Award points for a purchase (rate x tier multiplier, floored) or explicit bonus points, once per key."""
    if (purchase_amount is None) == (points is None):
        raise InvalidEarnRequest()
    key = _check_key(idempotency_key)
    amount = parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    bonus = _check_points(points) if points is not None else None
    tenant_currency = _tenant_currency(customer)
    currency = check_currency(currency, tenant_currency=tenant_currency)
    reference = _check_reference(reference)
    normalized_items = _normalize_items(items)
    # The fingerprint covers what is earned, not how the sale is described: a point-of-sale call (no items) and the
    # sale's event (with items) share the key `pos:<transaction id>` and must be the same request.
    payload = {
        "purchase_amount": str(amount) if amount is not None else None,
        "points": bonus,
        "currency": currency,
        "qualifying": qualifying,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        ctx.currency = tenant_currency
        program = ctx.program
        if amount is not None:
            multiplier = ctx.tier(ctx.account.tier).earn_multiplier
            earned = earn_points(
                amount, rate=program.earn_rate, multiplier=multiplier, rounding=program.earn_rounding
            )
            # Tier thresholds count spend, not the tier's own bonus.
            qualifying_points = earn_points(
                amount, rate=program.earn_rate, multiplier=Decimal(1), rounding=program.earn_rounding
            )
        else:
            multiplier = None
            earned = int(bonus or 0)
            counts = program.bonus_points_qualify if qualifying is None else qualifying
            qualifying_points = earned if counts else 0
        if earned > MAX_POINTS:
            raise InvalidAmount(
                f"purchase_amount would earn more than {MAX_POINTS} points at once.", field="purchase_amount"
            )
        pending = program.pending_days > 0 and earned > 0
        txn = _new_txn(
            ctx,
            TransactionType.EARN,
            earned,
            available_delta=0 if pending else earned,
            pending_delta=earned if pending else 0,
            qualifying_delta=0 if pending else qualifying_points,
            qualifying_points=qualifying_points,
            purchase_amount=amount,
            currency=currency,
            multiplier=multiplier,
            expires_at=_award_expiry(ctx) if earned else None,
            reference=reference,
            idempotency_key=key,
        )
        ctx.account.lifetime_earned += earned
        repay = 0
        if pending:
            ctx.account.pending += earned
        else:
            repay = _credit(ctx, earned)
        if txn.qualifying_delta:
            _refresh_qualifying(ctx, unsaved_delta=txn.qualifying_delta)
            _evaluate_tier(ctx, review=False)
        _save_txn(ctx, txn)
        if earned:
            award = _new_award(ctx, txn, earned, pending=pending, qualifying=qualifying_points)
            if repay:
                _allocate(ctx, txn, award, repay)
        _save_account(ctx)
        rewards = _stamps_from_items(ctx, normalized_items, reference=reference) if normalized_items else 0
        if earned:
            outbox_record(
                tenant_id=customer.tenant_id,
                event_type="loyalty.points.earned",
                data={
                    "customer_id": str(customer.pk),
                    "transaction_id": str(txn.pk),
                    "points": earned,
                    "pending": pending,
                    "points_balance": ctx.account.available,
                    "pending_balance": ctx.account.pending,
                    "purchase_amount": amount,
                    "currency": currency,
                    "reference": reference,
                    "source": source,
                    "tier": ctx.account.tier,
                    "expires_at": txn.expires_at,
                },
                aggregate_id=str(customer.pk),
            )
        _finish(ctx)
        return _result(ctx, txn, points=earned, discount=Decimal("0.00"), stamp_rewards_issued=rewards)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.EARN, key=key, payload=payload, work=work
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Redeem ---------------------------------------------------------------------------------------------------
def _check_redemption(program: LoyaltyProgram, points: int, available: int, amount: Decimal | None) -> None:
    if discount_for(points, points_per_unit=program.redemption_points_per_unit) > MAX_AMOUNT:
        raise InvalidPoints("points are worth more than one discount may be.", field="points")
    if points < program.min_redemption_points:
        raise BelowMinimumRedemption(minimum=program.min_redemption_points, requested=points)
    if amount is not None:
        most = max_points_for_purchase(
            amount, share=program.max_redemption_share, points_per_unit=program.redemption_points_per_unit
        )
        if points > most:
            raise RedemptionExceedsPurchaseShare(
                maximum_points=most, requested=points, max_share=str(program.max_redemption_share)
            )
    if points > available:
        raise InsufficientPoints(available=max(available, 0), requested=points)


@_atomic
def points_redeem(
    *,
    customer: Customer,
    idempotency_key: str,
    points: int,
    reference: str = "",
    dry_run: bool = False,
    actor: str = "",
    purchase_amount: Decimal | None = None,
    source: str = "api",
) -> LoyaltyResult:
    """Spend points for a discount, drawing on the soonest-expiring awards; `dry_run` quotes and writes nothing."""
    points = _check_points(points)
    reference = _check_reference(reference)
    amount = parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    tenant_currency = _tenant_currency(customer)
    if dry_run:
        program = program_get(customer.tenant_id)
        account = LoyaltyAccount.objects.filter(customer_id=customer.pk).first()
        available = spendable_points(account, now=clock.now()) if account else 0
        _check_redemption(program, points, available, amount)
        tier = account.tier if account else program_tiers(program)[0].code
        return LoyaltyResult(
            transaction_id=None,
            points=points,
            points_balance=available - points,
            discount_amount=discount_for(points, points_per_unit=program.redemption_points_per_unit),
            currency=tenant_currency,
            tier=tier,
            previous_tier=tier,
            tier_changed=False,
            pending_balance=account.pending if account else 0,
        )
    key = _check_key(idempotency_key)
    payload = {
        "points": points,
        "reference": reference,
        "purchase_amount": str(amount) if amount is not None else None,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        ctx.currency = tenant_currency
        _check_redemption(ctx.program, points, ctx.account.available, amount)
        discount = discount_for(points, points_per_unit=ctx.program.redemption_points_per_unit)
        txn = _new_txn(
            ctx,
            TransactionType.REDEEM,
            points,
            available_delta=-points,
            discount_amount=discount,
            purchase_amount=amount,
            currency=tenant_currency,
            reference=reference,
            idempotency_key=key,
        )
        ctx.account.available -= points
        ctx.account.redeemed += points
        _save_txn(ctx, txn)
        drawn = _draw(ctx, txn, points)
        if drawn != points:  # pragma: no cover - the awards always hold the available balance
            raise RuntimeError(f"Awards held {drawn} points, the account {points + ctx.account.available}")
        _save_account(ctx)
        outbox_record(
            tenant_id=customer.tenant_id,
            event_type="loyalty.points.redeemed",
            data={
                "customer_id": str(customer.pk),
                "transaction_id": str(txn.pk),
                "points": points,
                "discount_amount": discount,
                "currency": tenant_currency,
                "points_balance": ctx.account.available,
                "reference": reference,
                "source": source,
            },
            aggregate_id=str(customer.pk),
        )
        _finish(ctx)
        return _result(ctx, txn, points=points, discount=discount)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.REDEEM, key=key, payload=payload, work=work
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Reverse (returns and refunds) ----------------------------------------------------------------------------
@transaction.atomic
def points_reverse(
    *,
    customer: Customer,
    idempotency_key: str,
    reference: str,
    amount: Decimal | None = None,
    purchase_amount: Decimal | None = None,
    reason: str = "",
    source: str = "api",
    actor: str = "",
) -> ReversalResult:
    """Reverse a purchase fully (no amount) or partly: take back earned points in proportion, give back points
    it was paid with, take back its stamps. Cumulative, so the same purchase is never reversed twice."""
    key = _check_key(idempotency_key)
    reference = _check_reference(reference)
    if not reference:
        raise InvalidInput("A reversal needs the purchase's reference.", code="invalid_reference")
    returned = parse_amount(amount, field="amount") if amount is not None else None
    base_given = (
        parse_amount(purchase_amount, field="purchase_amount") if purchase_amount is not None else None
    )
    payload = {
        "reference": reference,
        "amount": str(returned) if returned is not None else None,
        "purchase_amount": str(base_given) if base_given is not None else None,
    }

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        return _reverse(ctx, reference=reference, returned=returned, base_given=base_given, reason=reason)

    result, replayed = _run_idempotent(
        customer=customer, kind=OperationKind.REVERSE, key=key, payload=payload, work=work
    )
    return ReversalResult.from_json(result, replayed=replayed)


def _reverse(
    ctx: _Ctx, *, reference: str, returned: Decimal | None, base_given: Decimal | None, reason: str
) -> dict[str, Any]:
    account = ctx.account
    txns = LoyaltyTransaction.objects.filter(account=account, reference=reference)
    earns = list(txns.filter(type=TransactionType.EARN).order_by("seq"))
    redeems = list(txns.filter(type=TransactionType.REDEEM).order_by("seq"))
    stamp_cards = _stamp_cards_for_reference(ctx, reference)
    if not earns and not redeems and not stamp_cards:
        raise NothingToReverse(
            f"Nothing was earned or redeemed with reference {reference!r}.", reference=reference
        )
    earn_amounts = [e.purchase_amount for e in earns if e.purchase_amount is not None]
    redeem_amounts = [r.purchase_amount for r in redeems if r.purchase_amount is not None]
    base = base_given or (sum(earn_amounts, Decimal(0)) if earn_amounts else None)
    base = base or (sum(redeem_amounts, Decimal(0)) if redeem_amounts else None)
    prior = list(PurchaseReversal.objects.filter(account=account, reference=reference))
    if any(p.full for p in prior):
        raise NothingToReverse(f"The purchase {reference!r} was already reversed.", reference=reference)
    returned_before = sum((p.amount or Decimal(0) for p in prior), Decimal(0))
    if returned is None:
        full = True
        returned_total = base if base is not None else Decimal(0)
    else:
        if base is None:
            raise PurchaseAmountUnknown(reference=reference)
        returned_total = returned_before + returned
        if returned_total > base:
            raise ReversalExceedsPurchase(
                purchase_amount=str(base), already_returned=str(returned_before), requested=str(returned)
            )
        full = returned_total == base

    def target(total: int) -> int:
        if full or base is None:
            return total
        return proportional_take(total, base=base, returned=returned_total)

    txn_ids: list[str] = []
    taken = unrecovered = given_back = 0
    first_returned_earn: LoyaltyTransaction | None = None
    qualifying_changed = False
    for earn in earns:
        already = list(earn.reversals.all())
        take = target(earn.points) - sum(r.points for r in already)
        take_q = target(earn.qualifying_points) - sum(r.qualifying_points for r in already)
        if take <= 0 and take_q <= 0:
            continue
        txn, missing = _reverse_earn(ctx, earn, max(take, 0), max(take_q, 0), reason=reason)
        txn_ids.append(str(txn.pk))
        taken += txn.points
        unrecovered += missing
        qualifying_changed = qualifying_changed or txn.qualifying_delta != 0
        first_returned_earn = first_returned_earn or earn
    for redeem in redeems:
        give = target(redeem.points) - sum(r.points for r in redeem.reversals.all())
        if give <= 0:
            continue
        txn = _reverse_redeem(ctx, redeem, give, reason=reason)
        txn_ids.append(str(txn.pk))
        given_back += give
    stamps = 0
    for card in stamp_cards:
        stamps += _reverse_stamps(ctx, card, reference=reference, target=target)
    assert ctx.operation is not None
    PurchaseReversal.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        operation=ctx.operation,
        reference=reference,
        full=full,
        amount=returned if returned is not None else (base - returned_before if base is not None else None),
        base_amount=base,
        reason=reason[:500],
        created_at=ctx.now,
    )
    if qualifying_changed:
        _refresh_qualifying(ctx)
        _evaluate_tier(ctx, review=False, returned_earn=first_returned_earn)
    # Points given back to awards whose date has passed expire now, as those awards' other points did.
    _expire_due(ctx)
    _save_account(ctx)
    _finish(ctx)
    return ReversalResult(
        reference=reference,
        points_reversed=taken,
        points_unrecovered=unrecovered,
        points_returned=given_back,
        stamps_reversed=stamps,
        points_balance=account.available,
        pending_balance=account.pending,
        tier=account.tier,
        previous_tier=ctx.starting_tier,
        tier_changed=account.tier != ctx.starting_tier,
        transaction_ids=txn_ids,
    ).as_json()


def _reverse_earn(
    ctx: _Ctx, earn: LoyaltyTransaction, take: int, take_q: int, *, reason: str
) -> tuple[LoyaltyTransaction, int]:
    """Take back `take` points of an earn: from its own award first, then other points; the program's
    negative-balance policy decides about points already spent. Points of the award that already expired are
    never charged again: they are recorded as unrecovered."""
    account = ctx.account
    award = PointsAward.objects.filter(transaction=earn).first()
    reversed_before = earn.reversals.aggregate(s=Sum("points"))["s"] or 0
    is_pending = award is not None and award.status == AwardStatus.PENDING
    counted = not is_pending
    txn = _new_txn(
        ctx,
        TransactionType.REVERSE_EARN,
        take,
        reverses=earn,
        reference=earn.reference,
        reason=reason[:500],
        qualifying_points=take_q,
        qualifying_delta=-take_q if counted else 0,
        effective_at=earn.effective_at,
        purchase_amount=None,
        currency=earn.currency,
    )
    account.lifetime_earned -= take
    missing = 0
    if is_pending:
        assert award is not None
        txn.pending_delta = -take
        account.pending -= take
        _save_txn(ctx, txn)
        if take:
            _allocate(ctx, txn, award, take)
    else:
        expired = _expired_from(award) if award is not None else 0
        chargeable = min(take, max(earn.points - expired - reversed_before, 0))
        # The available awards hold exactly the available balance (nothing when it is negative).
        taken = min(chargeable, max(account.available, 0))
        shortfall = chargeable - taken
        if shortfall and ctx.program.allows_negative:
            delta = -chargeable
            missing = take - chargeable
        else:
            delta = -taken
            missing = take - taken
        account.available += delta
        account.unrecovered += missing
        txn.available_delta = delta
        txn.unrecovered_points = missing
        _save_txn(ctx, txn)
        if taken:
            _redraw(ctx, txn, taken, first=award)
    if award is not None and take_q:
        award.refresh_from_db(fields=["remaining"])
        award.qualifying_points = max(award.qualifying_points - take_q, 0)
        award.save(update_fields=["qualifying_points"])
    return txn, missing


def _expired_from(award: PointsAward) -> int:
    """How many of the award's points expired."""
    expired = AwardAllocation.objects.filter(award=award, transaction__type=TransactionType.EXPIRE).aggregate(
        s=Sum("points")
    )["s"]
    return int(expired or 0)


def _redraw(ctx: _Ctx, txn: LoyaltyTransaction, points: int, *, first: PointsAward | None) -> None:
    drawn = _draw(ctx, txn, points, first=first)
    if drawn != points:  # pragma: no cover
        raise RuntimeError("The awards changed under the account lock")


def _reverse_redeem(ctx: _Ctx, redeem: LoyaltyTransaction, give: int, *, reason: str) -> LoyaltyTransaction:
    """Give `give` points of a redemption back to exactly the awards it drew from (latest-expiring first)."""
    account = ctx.account
    txn = _new_txn(
        ctx,
        TransactionType.REVERSE_REDEEM,
        give,
        available_delta=give,
        reverses=redeem,
        reference=redeem.reference,
        reason=reason[:500],
        discount_amount=discount_for(give, points_per_unit=ctx.program.redemption_points_per_unit),
        currency=redeem.currency,
    )
    account.redeemed -= give
    repay = _credit(ctx, give)
    _save_txn(ctx, txn)
    drawn = list(redeem.allocations.select_related("award").order_by("id"))
    given: dict[Any, int] = {}
    for reversal in redeem.reversals.exclude(pk=txn.pk):
        for alloc in reversal.allocations.all():
            if alloc.points < 0:
                given[alloc.award_id] = given.get(alloc.award_id, 0) - alloc.points
    left = give
    credited: list[PointsAward] = []
    for alloc in reversed(drawn):
        if left == 0:
            break
        room = alloc.points - given.get(alloc.award_id, 0)
        n = min(room, left)
        if n <= 0:
            continue
        given[alloc.award_id] = given.get(alloc.award_id, 0) + n
        award = PointsAward.objects.get(pk=alloc.award_id)
        _allocate(ctx, txn, award, -n)
        credited.append(award)
        left -= n
    # A negative balance (allowed by the program) is paid back first from what came back.
    for award in credited:
        if repay == 0:
            break
        n = min(award.remaining, repay)
        _allocate(ctx, txn, award, n)
        repay -= n
    return txn


# --- Adjust ---------------------------------------------------------------------------------------------------
@transaction.atomic
def points_adjust(
    *, customer: Customer, idempotency_key: str, points: int, reason: str, actor: str, source: str = "admin"
) -> LoyaltyResult:
    """A staff correction, positive or negative, with its reason on the ledger (the door checks permission).
    It never counts toward a tier."""
    key = _check_key(idempotency_key)
    points = _check_points(points, allow_negative=True)
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(field="reason")

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        ctx = _lock(customer, actor=actor, source=source, operation=operation)
        account = ctx.account
        if points < 0 and -points > account.available:
            raise InsufficientPoints(available=max(account.available, 0), requested=-points)
        txn = _new_txn(
            ctx,
            TransactionType.ADJUST,
            abs(points),
            available_delta=points,
            reason=reason[:500],
            idempotency_key=key,
            expires_at=_award_expiry(ctx) if points > 0 else None,
        )
        account.adjusted += points
        if points > 0:
            repay = _credit(ctx, points)
            _save_txn(ctx, txn)
            award = _new_award(ctx, txn, points, pending=False, qualifying=0)
            if repay:
                _allocate(ctx, txn, award, repay)
        else:
            account.available += points
            _save_txn(ctx, txn)
            _redraw(ctx, txn, -points, first=None)
        _save_account(ctx)
        _finish(ctx)
        return _result(ctx, txn, points=points, discount=Decimal("0.00"))

    result, replayed = _run_idempotent(
        customer=customer,
        kind=OperationKind.ADJUST,
        key=key,
        payload={"points": points, "reason": reason},
        work=work,
    )
    return LoyaltyResult.from_json(result, replayed=replayed)


# --- Jobs: release, expire, review ----------------------------------------------------------------------------
@transaction.atomic
def points_release_pending(*, customer: Customer, actor: str = "system") -> int:
    """Release the customer's pending points whose return window has passed (and everything else due, so the
    account never half-matures); returns how many points were released."""
    ctx = _lock(customer, actor=actor, source="system", mature=False)
    released, _ = _mature(ctx)
    _finish(ctx)
    return released


@transaction.atomic
def points_expire(*, customer: Customer, actor: str = "system") -> int:
    """Expire what is left of the customer's awards past their date (releasing due pending points first, with
    the tier they reach); returns how many points expired."""
    ctx = _lock(customer, actor=actor, source="system", mature=False)
    _, expired = _mature(ctx)
    _finish(ctx)
    return expired


@transaction.atomic
def tier_review(*, customer: Customer, actor: str = "system") -> LoyaltyAccount:
    """The periodic review: recount the window, apply the downgrade policy if due, end expired overrides."""
    ctx = _lock(customer, actor=actor, source="system")
    _refresh_qualifying(ctx)
    _evaluate_tier(ctx, review=True)
    _save_account(ctx)
    _finish(ctx)
    return ctx.account


@transaction.atomic
def tier_override_set(
    *, customer: Customer, tier: str, expires_at: datetime | None, reason: str, actor: str
) -> LoyaltyAccount:
    """Show `tier` regardless of the rules until `expires_at` (or until cleared); the earned tier keeps moving."""
    if tier not in TIER_ORDER:
        raise InvalidTier(f"tier must be one of {', '.join(TIER_ORDER)}", field="tier")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A tier override needs a reason.", field="reason")
    ctx = _lock(customer, actor=actor, source="admin")
    if expires_at is not None and expires_at <= ctx.now:
        raise InvalidInput("expires_at must be in the future.", code="invalid_expiry", field="expires_at")
    ctx.account.tier_override = tier
    ctx.account.tier_override_expires_at = expires_at
    _refresh_qualifying(ctx)
    _evaluate_tier(ctx, review=False, override_rule=TierRule.OVERRIDE_SET, reason=f"Override: {reason}")
    _save_account(ctx)
    _finish(ctx)
    return ctx.account


@transaction.atomic
def tier_override_clear(*, customer: Customer, reason: str, actor: str) -> LoyaltyAccount:
    """End an override now; the tier the rules give shows again."""
    ctx = _lock(customer, actor=actor, source="admin")
    if not ctx.account.tier_override:
        _finish(ctx)  # maturing may have changed the tier
        return ctx.account
    ctx.account.tier_override = ""
    ctx.account.tier_override_expires_at = None
    _refresh_qualifying(ctx)
    _evaluate_tier(
        ctx,
        review=False,
        override_rule=TierRule.OVERRIDE_CLEARED,
        reason=f"Override removed: {(reason or '').strip()}",
    )
    _save_account(ctx)
    _finish(ctx)
    return ctx.account


# --- Stamp cards ----------------------------------------------------------------------------------------------
def _lock_card(customer: Customer, rule: StampRule) -> StampCard:
    StampCard.objects.bulk_create(
        [StampCard(tenant_id=customer.tenant_id, customer=customer, rule=rule)], ignore_conflicts=True
    )
    return StampCard.objects.select_for_update().get(customer_id=customer.pk, rule=rule)


def _stamp_entry(
    card: StampCard,
    *,
    kind: str,
    delta: int,
    reference: str,
    actor: str,
    now: datetime,
    operation: IdempotencyRecord | None,
    unrecovered: int = 0,
) -> StampEntry:
    return StampEntry(
        tenant_id=card.tenant_id,
        card=card,
        customer_id=card.customer_id,
        operation=operation,
        kind=kind,
        delta=delta,
        unrecovered=unrecovered,
        reference=reference,
        actor=actor[:200],
        created_at=now,
    )


def _add_stamps(
    card: StampCard,
    stamps: int,
    *,
    kind: str,
    reference: str,
    actor: str,
    now: datetime,
    operation: IdempotencyRecord | None,
) -> list[StampReward]:
    """Add stamps; each full card becomes one reward."""
    rule = card.rule
    full_cards, left = divmod(card.stamps + stamps, rule.stamps_per_card)
    entry: dict[str, Any] = {"reference": reference, "actor": actor, "now": now, "operation": operation}
    StampEntry.objects.bulk_create(
        [
            _stamp_entry(card, kind=kind, delta=stamps, **entry),
            *(
                _stamp_entry(card, kind=StampEntryKind.CARD_COMPLETED, delta=-rule.stamps_per_card, **entry)
                for _ in range(full_cards)
            ),
        ]
    )
    rewards = StampReward.objects.bulk_create(
        StampReward(
            tenant_id=card.tenant_id, card=card, customer_id=card.customer_id, rule=rule, issued_at=now
        )
        for _ in range(full_cards)
    )
    card.stamps = left
    card.lifetime_stamps += stamps
    card.cards_completed += len(rewards)
    card.save(update_fields=["stamps", "lifetime_stamps", "cards_completed", "updated_at"])
    return rewards


def _qualifying_quantity(rule: StampRule, items: list[dict[str, Any]]) -> int:
    skus = {s.strip().lower() for s in rule.skus}
    categories = {c.strip().lower() for c in rule.categories}
    quantity = Decimal(0)
    for item in items:
        if item["sku"].lower() in skus or (item["category"] and item["category"].lower() in categories):
            quantity += Decimal(item["quantity"])
    return int(quantity)  # whole items only: half a coffee earns no stamp


def _stamps_from_items(ctx: _Ctx, items: list[dict[str, Any]], *, reference: str) -> int:
    rules = StampRule.objects.filter(tenant_id=ctx.account.tenant_id, active=True).order_by("pk")
    issued = 0
    for rule in rules:
        quantity = _qualifying_quantity(rule, items)
        if quantity <= 0:
            continue
        if quantity > MAX_STAMPS:
            raise InvalidStamps(
                f"One purchase may add at most {MAX_STAMPS} stamps to a card ({rule.name}: {quantity}).",
                field="items",
            )
        card = _lock_card(ctx.customer, rule)
        issued += len(
            _add_stamps(
                card,
                quantity,
                kind=StampEntryKind.PURCHASE,
                reference=reference,
                actor=ctx.actor,
                now=ctx.now,
                operation=ctx.operation,
            )
        )
    return issued


def _stamp_cards_for_reference(ctx: _Ctx, reference: str) -> list[StampCard]:
    card_ids = (
        StampEntry.objects.filter(
            customer_id=ctx.account.customer_id,
            reference=reference,
            kind__in=[StampEntryKind.PURCHASE, StampEntryKind.MANUAL],
        )
        .values_list("card_id", flat=True)
        .distinct()
    )
    return list(StampCard.objects.select_for_update().filter(pk__in=list(card_ids)).order_by("pk"))


def _reverse_stamps(ctx: _Ctx, card: StampCard, *, reference: str, target: Callable[[int], int]) -> int:
    """Take back a returned purchase's stamps; a reward not yet redeemed is revoked if the stamps are needed."""
    entries = StampEntry.objects.filter(card=card, reference=reference)
    given = (
        entries.filter(kind__in=[StampEntryKind.PURCHASE, StampEntryKind.MANUAL]).aggregate(s=Sum("delta"))[
            "s"
        ]
        or 0
    )
    returns = list(entries.filter(kind=StampEntryKind.RETURN))
    already = sum(-e.delta + e.unrecovered for e in returns)
    need = target(given) - already
    if need <= 0:
        return 0
    rule = card.rule
    entry: dict[str, Any] = {
        "reference": reference,
        "actor": ctx.actor,
        "now": ctx.now,
        "operation": ctx.operation,
    }
    if card.stamps < need:
        rewards = list(
            StampReward.objects.select_for_update()
            .filter(card=card, status=StampRewardStatus.ISSUED)
            .order_by("-issued_at", "-pk")
        )
        for reward in rewards:
            if card.stamps >= need:
                break
            reward.status = StampRewardStatus.REVOKED
            reward.revoked_at = ctx.now
            reward.save(update_fields=["status", "revoked_at"])
            _stamp_entry(card, kind=StampEntryKind.REWARD_REVOKED, delta=rule.stamps_per_card, **entry).save()
            card.stamps += rule.stamps_per_card
            card.cards_completed -= 1
    taken = min(card.stamps, need)
    _stamp_entry(card, kind=StampEntryKind.RETURN, delta=-taken, unrecovered=need - taken, **entry).save()
    card.stamps -= taken
    card.lifetime_stamps -= need
    card.save(update_fields=["stamps", "lifetime_stamps", "cards_completed", "updated_at"])
    return need


@transaction.atomic
def stamps_add(
    *,
    customer: Customer,
    rule_id: Any,
    stamps: int,
    idempotency_key: str,
    reference: str = "",
    actor: str = "",
    source: str = "api",
) -> StampResult:
    """Add explicit stamps to a card (a full card issues its reward), once per key."""
    key = _check_key(idempotency_key)
    if isinstance(stamps, bool) or not isinstance(stamps, int) or not 0 < stamps <= MAX_STAMPS:
        raise InvalidStamps(field="stamps")
    reference = _check_reference(reference)
    rule = stamp_rule_get(rule_id)
    if rule.tenant_id != customer.tenant_id or not rule.active:
        raise StampRuleNotFound(rule_id=str(rule_id))

    def work(operation: IdempotencyRecord) -> dict[str, Any]:
        card = _lock_card(customer, rule)
        rewards = _add_stamps(
            card,
            stamps,
            kind=StampEntryKind.MANUAL,
            reference=reference,
            actor=actor,
            now=clock.now(),
            operation=operation,
        )
        return StampResult(
            rule_id=str(rule.pk),
            stamps_added=stamps,
            stamps=card.stamps,
            stamps_per_card=rule.stamps_per_card,
            rewards_issued=[str(r.pk) for r in rewards],
        ).as_json()

    result, replayed = _run_idempotent(
        customer=customer,
        kind=OperationKind.STAMPS,
        key=key,
        payload={"rule_id": str(rule.pk), "stamps": stamps, "reference": reference},
        work=work,
    )
    return StampResult.from_json(result, replayed=replayed)


@transaction.atomic
def stamp_reward_redeem(
    *, customer: Customer, reward_id: Any, reference: str = "", actor: str = "", source: str = "api"
) -> StampReward:
    """Use a reward; a reward is redeemable once (a second attempt is `reward_already_redeemed`)."""
    reference = _check_reference(reference)
    try:
        reward = StampReward.objects.get(pk=UUID(str(reward_id)), customer_id=customer.pk)
    except (StampReward.DoesNotExist, ValueError, TypeError) as exc:
        raise StampRewardNotFound(reward_id=str(reward_id)) from exc
    StampCard.objects.select_for_update().get(pk=reward.card_id)
    reward = StampReward.objects.select_for_update().get(pk=reward.pk)
    if reward.status == StampRewardStatus.REDEEMED:
        raise RewardAlreadyRedeemed(reward_id=str(reward.pk), redeemed_at=reward.redeemed_at)
    if reward.status == StampRewardStatus.REVOKED:
        raise RewardRevoked(reward_id=str(reward.pk))
    reward.status = StampRewardStatus.REDEEMED
    reward.redeemed_at = clock.now()
    reward.redeemed_reference = reference
    reward.save(update_fields=["status", "redeemed_at", "redeemed_reference"])
    return reward


@transaction.atomic
def stamp_rule_save(
    *,
    tenant_id: str,
    name: str,
    stamps_per_card: int,
    reward_description: str,
    skus: list[str] | None = None,
    categories: list[str] | None = None,
    reward_sku: str = "",
    active: bool = True,
) -> StampRule:
    """Create or update the tenant's stamp rule of that name."""
    if not skus and not categories:
        raise InvalidInput("A stamp rule needs qualifying SKUs or categories.", code="invalid_stamp_rule")
    if stamps_per_card < 1:
        raise InvalidInput("stamps_per_card must be at least 1.", code="invalid_stamp_rule")
    rule, _ = StampRule.objects.update_or_create(
        tenant_id=tenant_id,
        name=name,
        defaults={
            "stamps_per_card": stamps_per_card,
            "reward_description": reward_description,
            "skus": [s.strip() for s in skus or [] if s.strip()],
            "categories": [c.strip() for c in categories or [] if c.strip()],
            "reward_sku": reward_sku,
            "active": active,
        },
    )
    return rule
