"""Stamp cards: stamps from purchase items or explicit stamps, rewards redeemable once, returns take stamps back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Sum

from core import clock
from core.errors import InvalidInput
from core.models import IdempotencyRecord
from core.outbox import outbox_record
from customers.models import Customer
from loyalty.errors import (
    InvalidStamps,
    RewardAlreadyRedeemed,
    RewardRevoked,
    StampRewardNotFound,
    StampRuleNotFound,
)
from loyalty.models import (
    OperationKind,
    StampCard,
    StampEntry,
    StampEntryKind,
    StampReward,
    StampRewardStatus,
    StampRule,
)
from loyalty.selectors import (
    stamp_rule_get,
)
from loyalty.services.inputs import MAX_STAMPS, _check_key, _check_reference, _refuse_blocked
from loyalty.services.ledger import _Ctx, _run_idempotent
from loyalty.services.results import StampResult


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
    for reward in rewards:
        _reward_event(reward, "loyalty.stamp_reward.issued", reference=reference, stamps_on_card=card.stamps)
    return rewards


def _reward_event(reward: StampReward, event_type: str, *, reference: str, **extra: Any) -> None:
    rule = reward.rule
    outbox_record(
        tenant_id=reward.tenant_id,
        event_type=event_type,
        data={
            "customer_id": str(reward.customer_id),
            "reward_id": str(reward.pk),
            "rule_id": str(rule.pk),
            "rule_name": rule.name,
            "reward_description": rule.reward_description,
            "reward_sku": rule.reward_sku,
            "stamps_per_card": rule.stamps_per_card,
            "status": reward.status,
            "issued_at": reward.issued_at,
            "reference": reference,
            **extra,
        },
        aggregate_id=str(reward.customer_id),
    )


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
        _refuse_blocked(customer)
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
    _refuse_blocked(customer)
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
    _reward_event(
        reward, "loyalty.stamp_reward.redeemed", reference=reference, redeemed_at=reward.redeemed_at
    )
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
