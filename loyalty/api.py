"""REST views of loyalty: validate, call a service or selector, serialize.

Amounts and points are passed to the services as they arrived (decimal strings, integers), so that the same
checks (and error codes: invalid_amount, invalid_points, ...) apply at every door.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import (
    AMOUNT_SCHEMA,
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_SCHEMA,
    DefaultCursorPagination,
    StrictFieldsMixin,
    StrictInput,
    TenantAPIView,
    actor_of,
    idempotency_key_from,
    replayable_response,
)
from core.filters import IsoDateTimeFilter
from core.tenancy import tenant_cached
from customers.selectors import customer_get
from loyalty import selectors, services
from loyalty.models import (
    DowngradePolicy,
    EarnRounding,
    LoyaltyTransaction,
    NegativeBalancePolicy,
    StampReward,
    StampRule,
    TierChange,
    TierCode,
    TransactionType,
)
from loyalty.services.inputs import MAX_POINTS, MAX_STAMPS

READ = ["loyalty:read"]
WRITE = ["loyalty:write"]
ADMIN = ["loyalty:admin"]
MAX_ITEMS = 500


@extend_schema_field(OpenApiTypes.STR)
class DecimalStringField(serializers.Field):
    """A decimal string ("125.50") handed to the service untouched (which refuses floats and bad values)."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return None if value is None else str(value)


@extend_schema_field(AMOUNT_SCHEMA)
class AmountStringField(DecimalStringField):
    """A money amount, handed to the service untouched (which parses it with `core.money.parse_amount`)."""


@extend_schema_field(OpenApiTypes.INT64)
class PointsField(serializers.Field):
    """Whole points, handed to the service untouched (which answers `invalid_points`)."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_POINTS})
class PositivePointsField(PointsField):
    """Whole points above zero, at most MAX_POINTS (earned or redeemed)."""


@extend_schema_field(
    {
        "type": "integer",
        "format": "int64",
        "minimum": -MAX_POINTS,
        "maximum": MAX_POINTS,
        "not": {"enum": [0]},
    }
)
class SignedPointsField(PointsField):
    """Whole points other than zero, positive to add or negative to take away."""


@extend_schema_field({"type": "integer", "format": "int32", "minimum": 1, "maximum": MAX_STAMPS})
class StampCountField(PointsField):
    """A whole number of stamps above zero, at most MAX_STAMPS."""


def _created(body: dict[str, Any], *, replayed: bool) -> Response:
    return replayable_response(body, status=status.HTTP_201_CREATED, replayed=replayed)


# --- Output ---------------------------------------------------------------------------------------------------
class LoyaltyResultOutput(serializers.Serializer):
    transaction_id = serializers.UUIDField(allow_null=True)
    points = serializers.IntegerField()
    points_balance = serializers.IntegerField()
    pending_balance = serializers.IntegerField()
    discount_amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField()
    tier = serializers.CharField()
    previous_tier = serializers.CharField()
    tier_changed = serializers.BooleanField()
    stamp_rewards_issued = serializers.IntegerField()
    replayed = serializers.BooleanField()


class BucketsOutput(serializers.Serializer):
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    lifetime_earned = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    expired = serializers.IntegerField()
    adjusted = serializers.IntegerField()
    unrecovered = serializers.IntegerField()
    qualifying = serializers.IntegerField()


class SummaryOutput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    points_balance = serializers.IntegerField()
    points_value = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField()
    buckets = BucketsOutput()
    tier = serializers.CharField()
    tier_name = serializers.CharField()
    earned_tier = serializers.CharField()
    tier_override = serializers.CharField(allow_blank=True)
    tier_override_expires_at = serializers.DateTimeField(allow_null=True)
    tier_review_at = serializers.DateTimeField(allow_null=True)
    next_tier = serializers.CharField(allow_blank=True)
    points_to_next_tier = serializers.IntegerField()
    qualifying_window_months = serializers.IntegerField()
    points_expiring_soon = serializers.IntegerField()
    expiring_within_days = serializers.IntegerField()
    next_expiry_at = serializers.DateTimeField(allow_null=True)


def _summary_body(summary: selectors.LoyaltySummary) -> dict[str, Any]:
    data = dict(summary.__dict__)
    data["buckets"] = {
        "available": summary.points_balance,
        "pending": summary.pending,
        "lifetime_earned": summary.lifetime_earned,
        "redeemed": summary.redeemed,
        "expired": summary.expired,
        "adjusted": summary.adjusted,
        "unrecovered": summary.unrecovered,
        "qualifying": summary.qualifying_points,
    }
    return SummaryOutput(data).data


class TransactionOutput(serializers.ModelSerializer):
    reverses_id = serializers.UUIDField(read_only=True, allow_null=True)
    award_remaining = serializers.SerializerMethodField()
    award_status = serializers.SerializerMethodField()

    class Meta:
        model = LoyaltyTransaction
        fields = [
            "id",
            "type",
            "points",
            "available_delta",
            "pending_delta",
            "qualifying_delta",
            "unrecovered_points",
            "balance_after",
            "pending_after",
            "reference",
            "idempotency_key",
            "source",
            "actor",
            "reason",
            "purchase_amount",
            "discount_amount",
            "currency",
            "multiplier",
            "expires_at",
            "award_remaining",
            "award_status",
            "reverses_id",
            "tier_after",
            "created_at",
        ]

    def _award(self, obj: LoyaltyTransaction) -> Any:
        try:
            return obj.award
        except LoyaltyTransaction.award.RelatedObjectDoesNotExist:  # type: ignore[attr-defined]
            return None

    def get_award_remaining(self, obj: LoyaltyTransaction) -> int | None:
        award = self._award(obj)
        return award.remaining if award is not None else None

    def get_award_status(self, obj: LoyaltyTransaction) -> str | None:
        award = self._award(obj)
        return award.status if award is not None else None


class TierChangeOutput(serializers.ModelSerializer):
    class Meta:
        model = TierChange
        fields = [
            "old_tier",
            "new_tier",
            "old_earned_tier",
            "new_earned_tier",
            "rule",
            "qualifying_points",
            "window_start",
            "window_end",
            "threshold",
            "reason",
            "actor",
            "created_at",
        ]


class TierOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    threshold = serializers.IntegerField()
    earn_multiplier = serializers.DecimalField(max_digits=6, decimal_places=3, coerce_to_string=True)
    benefits = serializers.CharField(allow_blank=True)


class ProgramOutput(serializers.Serializer):
    name = serializers.CharField()
    currency = serializers.CharField()
    earn_rate = serializers.DecimalField(max_digits=10, decimal_places=4, coerce_to_string=True)
    earn_rounding = serializers.CharField()
    redemption_points_per_unit = serializers.IntegerField()
    min_redemption_points = serializers.IntegerField()
    max_redemption_share = serializers.DecimalField(max_digits=5, decimal_places=4, coerce_to_string=True)
    pending_days = serializers.IntegerField()
    expiry_months = serializers.IntegerField(allow_null=True)
    qualifying_window_months = serializers.IntegerField()
    review_period_months = serializers.IntegerField()
    downgrade_policy = serializers.CharField()
    negative_balance_policy = serializers.CharField()
    bonus_points_qualify = serializers.BooleanField()
    tiers = TierOutput(many=True)


def _program_body(tenant_slug: str) -> dict[str, Any]:
    program = selectors.program_get(tenant_slug)
    data = {name: getattr(program, name) for name in services.PROGRAM_FIELDS}
    data["currency"] = tenant_cached(tenant_slug).currency
    data["tiers"] = selectors.program_tiers(program)
    return ProgramOutput(data).data


class ReversalOutput(serializers.Serializer):
    reference = serializers.CharField()
    points_reversed = serializers.IntegerField()
    points_unrecovered = serializers.IntegerField()
    points_returned = serializers.IntegerField()
    stamps_reversed = serializers.IntegerField()
    points_balance = serializers.IntegerField()
    pending_balance = serializers.IntegerField()
    tier = serializers.CharField()
    previous_tier = serializers.CharField()
    tier_changed = serializers.BooleanField()
    transaction_ids = serializers.ListField(child=serializers.UUIDField())
    replayed = serializers.BooleanField()


class StampRewardOutput(serializers.ModelSerializer):
    class Meta:
        model = StampReward
        fields = ["id", "rule_id", "status", "issued_at", "redeemed_at", "redeemed_reference", "revoked_at"]


class StampCardOutput(serializers.Serializer):
    rule_id = serializers.UUIDField()
    rule_name = serializers.CharField()
    stamps = serializers.IntegerField()
    stamps_per_card = serializers.IntegerField()
    reward_description = serializers.CharField()
    cards_completed = serializers.IntegerField()
    rewards_available = StampRewardOutput(many=True)


class StampResultOutput(serializers.Serializer):
    rule_id = serializers.UUIDField()
    stamps_added = serializers.IntegerField()
    stamps = serializers.IntegerField()
    stamps_per_card = serializers.IntegerField()
    rewards_issued = serializers.ListField(child=serializers.UUIDField())
    replayed = serializers.BooleanField()


class StampRuleSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    # qualifying SKUs or categories, and at least one stamp per card (the service: invalid_stamp_rule)
    schema_any_of = [
        {"required": ["skus"], "properties": {"skus": {"minItems": 1}}},
        {"required": ["categories"], "properties": {"categories": {"minItems": 1}}},
    ]
    skus = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=500)
    categories = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )

    class Meta:
        model = StampRule
        fields = [
            "id",
            "name",
            "skus",
            "categories",
            "stamps_per_card",
            "reward_description",
            "reward_sku",
            "active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        # The name is unique per tenant; saving an existing name updates that rule (service decides).
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}


# --- Input ----------------------------------------------------------------------------------------------------
@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^(1000000|[1-9][0-9]{0,5}(\.[0-9]{1,3})?|0\.[0-9]{0,2}[1-9])$",
        "example": "2",
        "description": "Greater than zero, at most 1000000; default 1.",
    }
)
class QuantityStringField(DecimalStringField):
    """An item's quantity, handed to the service untouched (which checks 0 < quantity <= 1000000)."""


class ItemInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True)
    quantity = QuantityStringField(required=False)
    unit_price = DecimalStringField(required=False)


class EarnInput(StrictInput):
    # the service refuses both or neither (invalid_earn_request)
    schema_one_of = [{"required": ["purchase_amount"]}, {"required": ["points"]}]
    purchase_amount = AmountStringField(required=False, allow_null=True)
    points = PositivePointsField(required=False, allow_null=True)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    items = serializers.ListField(child=ItemInput(), required=False, max_length=MAX_ITEMS)


class RedeemInput(StrictInput):
    points = PositivePointsField()
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    purchase_amount = AmountStringField(required=False, allow_null=True)
    dry_run = serializers.BooleanField(required=False, default=False)


class ReverseInput(StrictInput):
    reference = serializers.CharField(max_length=100)
    amount = AmountStringField(required=False, allow_null=True, help_text="Omit for a full reversal.")
    purchase_amount = AmountStringField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"\S"})
class ReasonField(serializers.CharField):
    """A reason kept on the ledger: some text besides blanks (a blank one is refused as `reason_required`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=500, allow_blank=True, **kwargs)


class AdjustInput(StrictInput):
    points = SignedPointsField(help_text="Positive to add, negative to take away.")
    reason = ReasonField()


class TierOverrideInput(StrictInput):
    tier = serializers.ChoiceField(choices=TierCode.choices)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = ReasonField()


class StampsInput(StrictInput):
    rule_id = serializers.CharField(max_length=64)
    stamps = StampCountField()
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class StampRedeemInput(StrictInput):
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class TierInput(StrictInput):
    code = serializers.ChoiceField(choices=TierCode.choices)
    name = serializers.CharField(max_length=50, required=False)
    threshold = serializers.IntegerField(min_value=0, required=False)
    earn_multiplier = serializers.DecimalField(max_digits=6, decimal_places=3, required=False)
    benefits = serializers.CharField(required=False, allow_blank=True)


class ProgramInput(StrictInput):
    name = serializers.CharField(max_length=100, required=False)
    earn_rate = serializers.DecimalField(max_digits=10, decimal_places=4, required=False)
    earn_rounding = serializers.ChoiceField(choices=EarnRounding.choices, required=False)
    redemption_points_per_unit = serializers.IntegerField(min_value=1, required=False)
    min_redemption_points = serializers.IntegerField(min_value=0, required=False)
    max_redemption_share = serializers.DecimalField(max_digits=5, decimal_places=4, required=False)
    pending_days = serializers.IntegerField(min_value=0, max_value=365, required=False)
    expiry_months = serializers.IntegerField(min_value=1, max_value=120, required=False, allow_null=True)
    qualifying_window_months = serializers.IntegerField(min_value=1, max_value=120, required=False)
    review_period_months = serializers.IntegerField(min_value=1, max_value=120, required=False)
    downgrade_policy = serializers.ChoiceField(choices=DowngradePolicy.choices, required=False)
    negative_balance_policy = serializers.ChoiceField(choices=NegativeBalancePolicy.choices, required=False)
    bonus_points_qualify = serializers.BooleanField(required=False)
    tiers = TierInput(many=True, required=False)


# --- Views: customer account ----------------------------------------------------------------------------------
class SummaryView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        responses=SummaryOutput,
        description="Balances by bucket, tier, points to the next tier, points expiring in the next 30 days.",
    )
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(_summary_body(selectors.loyalty_summary(customer_get(customer_id))))


class TransactionFilter(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(choices=TransactionType.choices)
    reference = django_filters.CharFilter()
    source = django_filters.CharFilter()
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LoyaltyTransaction
        fields = ["type", "reference", "source"]


class LedgerCursorPagination(DefaultCursorPagination):
    # `seq` follows insertion order and is unique: a stable cursor even for rows written in the same instant.
    ordering = "-seq"


class TransactionListView(TenantAPIView, GenericAPIView):
    required_scopes = {"GET": READ}
    serializer_class = TransactionOutput
    pagination_class = LedgerCursorPagination
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    filterset_class = TransactionFilter

    def get_queryset(self) -> QuerySet[LoyaltyTransaction]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: documents the filters
            return LoyaltyTransaction.objects.none()
        return selectors.transactions_for(customer_get(self.kwargs["customer_id"]))

    @extend_schema(responses=TransactionOutput(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TransactionOutput(page, many=True).data)


class TierHistoryView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        responses=TierChangeOutput(many=True), description="Every tier change and why, newest first."
    )
    def get(self, request: Request, customer_id: str) -> Response:
        changes = selectors.tier_history_for(customer_get(customer_id))[:200]
        return Response(TierChangeOutput(changes, many=True).data)


class EarnView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=EarnInput,
        responses={201: LoyaltyResultOutput},
        description="Earn points for a purchase (purchase_amount) or explicit bonus points (points). "
        "Needs an Idempotency-Key header; a replay returns the first result.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        data = EarnInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.points_earn(
            customer=customer,
            idempotency_key=key or "",
            purchase_amount=values.get("purchase_amount"),
            points=values.get("points"),
            currency=values.get("currency") or None,
            reference=values.get("reference", ""),
            items=[dict(item) for item in values.get("items", [])],
            source="api",
            actor=actor_of(self),
        )
        return _created(LoyaltyResultOutput(result).data, replayed=result.replayed)


class RedeemView(TenantAPIView):
    required_scopes = {"POST": WRITE}
    quote_only = False

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                required=True,
                description="Not needed when the request only quotes (`dry_run: true`; or the /quote endpoint).",
            )
        ],
        request=RedeemInput,
        responses={201: LoyaltyResultOutput, 200: LoyaltyResultOutput},
        description="Redeem points for a discount. `dry_run: true` (or the /quote endpoint) only quotes.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        data = RedeemInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        dry_run = self.quote_only or values["dry_run"]
        key = idempotency_key_from(request, required=not dry_run)
        result = services.points_redeem(
            customer=customer,
            idempotency_key=key or "",
            points=values["points"],
            reference=values.get("reference", ""),
            dry_run=dry_run,
            purchase_amount=values.get("purchase_amount"),
            source="api",
            actor=actor_of(self),
        )
        if dry_run:
            return Response(LoyaltyResultOutput(result).data)
        return _created(LoyaltyResultOutput(result).data, replayed=result.replayed)


class QuoteView(RedeemView):
    required_scopes = {"POST": READ}
    quote_only = True

    @extend_schema(
        request=RedeemInput,
        responses=LoyaltyResultOutput,
        description="Quote a redemption: what the points would give, without redeeming (no Idempotency-Key).",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        return super().post(request, customer_id)


class ReverseView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=ReverseInput,
        responses={201: ReversalOutput},
        description="Return or refund a purchase by its reference: fully (no amount) or partly (amount). Earned "
        "points are taken back in proportion, points the purchase was paid with are given back once.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        data = ReverseInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.points_reverse(
            customer=customer,
            idempotency_key=key or "",
            reference=values["reference"],
            amount=values.get("amount"),
            purchase_amount=values.get("purchase_amount"),
            reason=values.get("reason", ""),
            source="api",
            actor=actor_of(self),
        )
        return _created(ReversalOutput(result).data, replayed=result.replayed)


class AdjustView(TenantAPIView):
    required_scopes = {"POST": ADMIN}

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=AdjustInput,
        responses={201: LoyaltyResultOutput},
        description="A manual correction (scope loyalty:admin); the reason is required and kept on the ledger.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        data = AdjustInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.points_adjust(
            customer=customer,
            idempotency_key=key or "",
            points=data.validated_data["points"],
            reason=data.validated_data["reason"],
            actor=actor_of(self),
            source="api",
        )
        return _created(LoyaltyResultOutput(result).data, replayed=result.replayed)


class TierOverrideView(TenantAPIView):
    required_scopes = {"POST": ADMIN, "DELETE": ADMIN}

    @extend_schema(request=TierOverrideInput, responses=SummaryOutput)
    def post(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        data = TierOverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.tier_override_set(
            customer=customer,
            tier=values["tier"],
            expires_at=values.get("expires_at"),
            reason=values["reason"],
            actor=actor_of(self),
        )
        return Response(_summary_body(selectors.loyalty_summary(customer)))

    @extend_schema(responses=SummaryOutput)
    def delete(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        services.tier_override_clear(
            customer=customer, reason="removed through the API", actor=actor_of(self)
        )
        return Response(_summary_body(selectors.loyalty_summary(customer)))


class StampsView(TenantAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(responses=StampCardOutput(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        cards = selectors.stamp_cards_for(customer_get(customer_id))
        return Response(StampCardOutput([card.__dict__ for card in cards], many=True).data)

    @extend_schema(parameters=[IDEMPOTENCY_KEY], request=StampsInput, responses={201: StampResultOutput})
    def post(self, request: Request, customer_id: str) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        data = StampsInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.stamps_add(
            customer=customer,
            rule_id=values["rule_id"],
            stamps=values["stamps"],
            idempotency_key=key or "",
            reference=values.get("reference", ""),
            actor=actor_of(self),
        )
        return _created(StampResultOutput(result).data, replayed=result.replayed)


class StampRewardRedeemView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        request=StampRedeemInput,
        responses=StampRewardOutput,
        description="Use a stamp reward; a second attempt answers 409 reward_already_redeemed.",
    )
    def post(self, request: Request, customer_id: str, reward_id: str) -> Response:
        customer = customer_get(customer_id)
        data = StampRedeemInput(data=request.data)
        data.is_valid(raise_exception=True)
        reward = services.stamp_reward_redeem(
            customer=customer,
            reward_id=reward_id,
            reference=data.validated_data.get("reference", ""),
            actor=actor_of(self),
        )
        return Response(StampRewardOutput(reward).data)


# --- Views: program -------------------------------------------------------------------------------------------
class ProgramView(TenantAPIView):
    required_scopes = {"GET": READ, "PATCH": ADMIN, "PUT": ADMIN}

    @extend_schema(responses=ProgramOutput)
    def get(self, request: Request) -> Response:
        return Response(_program_body(self.tenant_slug))

    @extend_schema(request=ProgramInput, responses=ProgramOutput, description="Needs scope loyalty:admin.")
    def patch(self, request: Request) -> Response:
        data = ProgramInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        tiers = values.pop("tiers", None)
        services.program_update(
            tenant_id=self.tenant_slug,
            data=values,
            tiers=[dict(t) for t in tiers] if tiers is not None else None,
            actor=actor_of(self),
        )
        return Response(_program_body(self.tenant_slug))

    put = patch


class StampRuleListView(TenantAPIView):
    required_scopes = {"GET": READ, "POST": ADMIN}

    @extend_schema(responses=StampRuleSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(StampRuleSerializer(selectors.stamp_rules(), many=True).data)

    @extend_schema(
        request=StampRuleSerializer,
        responses={201: StampRuleSerializer},
        description="Create or update by name.",
    )
    def post(self, request: Request) -> Response:
        data = StampRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        rule = services.stamp_rule_save(
            tenant_id=self.tenant_slug,
            name=values["name"],
            stamps_per_card=values.get("stamps_per_card", 10),
            reward_description=values["reward_description"],
            skus=values.get("skus"),
            categories=values.get("categories"),
            reward_sku=values.get("reward_sku", ""),
            active=values.get("active", True),
        )
        return Response(StampRuleSerializer(rule).data, status=status.HTTP_201_CREATED)
