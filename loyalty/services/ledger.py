"""The account and its ledger: idempotent runs, the locked account, transactions, awards and their
allocations. Only the services of this package write these rows."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.db import connection, transaction
from django.db.models import F

from core import clock
from core.idempotency import idempotent
from core.models import IdempotencyRecord
from core.writes import Statement, insert_statement, update_statement, write_together
from customers.models import Customer
from loyalty.calculations import (
    add_months,
)
from loyalty.models import (
    AwardAllocation,
    AwardStatus,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTransaction,
    PointsAward,
    TierChange,
)

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


# The column list comes from the model, never from input. The program's version comes in the same row (the
# per-process program snapshot is checked against it, see `maturing._lock`).
_LOCK_ACCOUNT_SQL = (
    "SELECT "  # noqa: S608
    + ", ".join(f"a.{connection.ops.quote_name(f.column)}" for f in _ACCOUNT_FIELDS)
    + ", p.id, p.updated_at FROM loyalty_loyaltyaccount a "
    "LEFT JOIN loyalty_loyaltyprogram p ON p.tenant_id = a.tenant_id WHERE a.customer_id = %s FOR UPDATE OF a"
)


def _lock_account(customer: Customer) -> tuple[LoyaltyAccount | None, tuple[Any, Any] | None]:
    """`select_for_update()` of the customer's account (None when it has none yet) and the program's version
    (id, updated_at; None without a program), in plain SQL: on the hot path the ORM costs more than the
    statement. Row-level security keeps it to the current tenant."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ACCOUNT_SQL, [customer.pk])
        row = cursor.fetchone()
    if row is None:
        return None, None
    n = len(_ACCOUNT_FIELDS)
    account = LoyaltyAccount.from_db(connection.alias, [f.attname for f in _ACCOUNT_FIELDS], row[:n])
    return account, (None if row[n] is None else (row[n], row[n + 1]))


_ACCOUNT_SAVED_FIELDS = (
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
    "qualifying_counted_from",
    "qualifying_oldest_at",
    "tier",
    "earned_tier",
    "tier_override",
    "tier_override_expires_at",
    "tier_review_at",
    "tier_changed_at",
    "next_release_at",
    "next_expiry_at",
    "updated_at",
)


def _account_ready(ctx: _Ctx) -> LoyaltyAccount:
    account = ctx.account
    # In a program without negative balances the flag can only stay on for an account still negative from
    # before a policy change, so the database keeps refusing every new negative balance.
    account.allow_negative = ctx.program.allows_negative or (account.allow_negative and account.available < 0)
    return account


def _save_account(ctx: _Ctx) -> None:
    _account_ready(ctx).save(update_fields=list(_ACCOUNT_SAVED_FIELDS))


def _account_statement(ctx: _Ctx) -> Statement:
    """The UPDATE `_save_account` sends, to be sent with other writes (`_write_with_txn`)."""
    return update_statement(_account_ready(ctx), _ACCOUNT_SAVED_FIELDS)


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


def _txn_ready(ctx: _Ctx, txn: LoyaltyTransaction) -> LoyaltyTransaction:
    txn.balance_after = ctx.account.available
    txn.pending_after = ctx.account.pending
    txn.tier_after = ctx.account.tier
    return txn


def _save_txn(ctx: _Ctx, txn: LoyaltyTransaction) -> LoyaltyTransaction:
    _txn_ready(ctx, txn).save(force_insert=True)
    return txn


def _write_with_txn(ctx: _Ctx, txn: LoyaltyTransaction, writes: Sequence[Statement]) -> LoyaltyTransaction:
    """Insert the ledger row (balances after as the account has them now) together with `writes` (rows that
    point at it, the account update) in one statement."""
    row = write_together([*writes, insert_statement([_txn_ready(ctx, txn)], returning=("seq",))])
    assert row is not None
    txn.seq = row[0]
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


def _draw(
    ctx: _Ctx,
    txn: LoyaltyTransaction,
    points: int,
    *,
    first: PointsAward | None = None,
    writes: list[Statement] | None = None,
) -> int:
    """Take up to `points` from available awards, soonest-expiring first; returns how many were there.

    With `writes`, the award updates and the allocations are added to it (for `_write_with_txn`) instead of
    being sent now."""
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
        if writes is None:
            award.save(update_fields=["remaining"])
        else:
            writes.append(update_statement(award, ["remaining"]))
        allocations.append(AwardAllocation(tenant_id=award.tenant_id, transaction=txn, award=award, points=n))
        taken += n
    if writes is None:
        AwardAllocation.objects.bulk_create(allocations)  # what `_allocate` records, in one statement
    elif allocations:
        writes.append(insert_statement(allocations))
    return taken


def _new_award(
    ctx: _Ctx, txn: LoyaltyTransaction, points: int, *, pending: bool, qualifying: int, save: bool = True
) -> PointsAward:
    """Create the award (with `save=False` the caller inserts it); the caller saves the account (whose next-due
    dates it moves)."""
    award = PointsAward(
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
    if save:
        award.save(force_insert=True)
    if pending:
        ctx.account.next_release_at = _earlier(ctx.account.next_release_at, award.release_at)
    _note_expiry(ctx, award)
    return award


def _award_expiry(ctx: _Ctx) -> datetime | None:
    months = ctx.program.expiry_months
    return add_months(ctx.now, months) if months else None


def _redraw(ctx: _Ctx, txn: LoyaltyTransaction, points: int, *, first: PointsAward | None) -> None:
    drawn = _draw(ctx, txn, points, first=first)
    if drawn != points:  # pragma: no cover
        raise RuntimeError("The awards changed under the account lock")
