"""The tenant's loyalty program and tiers: defaults, validation, changes, and the per-process snapshot
checked under the account lock."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction

from loyalty.errors import (
    InvalidProgram,
)
from loyalty.models import (
    TIER_ORDER,
    DowngradePolicy,
    EarnRounding,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    NegativeBalancePolicy,
)
from loyalty.selectors import (
    default_tiers,
    program_tiers,
)
from loyalty.services.inputs import MAX_MIN_REDEMPTION_POINTS, MAX_POINTS, MAX_REDEMPTION_POINTS_PER_UNIT


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


def program_snapshot_cached(tenant_id: str) -> _ProgramSnapshot | None:
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


def program_snapshot_at(tenant_id: str, version: tuple[Any, Any]) -> _ProgramSnapshot:
    """The program and tiers at `version` (program id, updated_at), read by the caller in its own statement (a
    reader that joined the program row): the process's copy when it has that version, else read again."""
    cached = _program_snapshots.get(tenant_id)
    if cached is not None and cached.version == tuple(version):
        return cached
    return _program_current(tenant_id, cached)
