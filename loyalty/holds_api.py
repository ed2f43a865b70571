"""REST views of redemption holds: place (`POST .../loyalty/holds`), commit and release. Validate, call the
service, serialize (the services are in `loyalty.services.holds`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import (
    IDEMPOTENCY_KEY,
    StrictInput,
    TenantAPIView,
    actor_of,
    idempotency_key_from,
    replayable_response,
)
from customers.selectors import customer_get
from loyalty import services
from loyalty.api import WRITE, AmountStringField, LoyaltyResultOutput, PointsField, PositivePointsField
from loyalty.models import HoldStatus


@extend_schema_field({"type": "integer", "format": "int32", "minimum": 1})
class TtlSecondsField(PointsField):
    """Seconds the hold lives, handed to the service untouched (which answers `invalid_hold_expiry`)."""


class PointsHoldInput(StrictInput):
    points = PositivePointsField()
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    purchase_amount = AmountStringField(required=False, allow_null=True)
    ttl_seconds = TtlSecondsField(required=False, allow_null=True, help_text="Default 300 (five minutes).")


class PointsHoldOutput(serializers.Serializer):
    hold_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=HoldStatus.choices)
    points = serializers.IntegerField()
    reference = serializers.CharField()
    purchase_amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, coerce_to_string=True, allow_null=True
    )
    discount_amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField()
    expires_at = serializers.DateTimeField()
    points_balance = serializers.IntegerField(help_text="The account's balance, held points included.")
    held_points = serializers.IntegerField(help_text="All points held on the account now.")
    available_points = serializers.IntegerField(help_text="What other redemptions may spend.")
    transaction_id = serializers.UUIDField(allow_null=True, help_text="The commit's redemption.")
    redemption = LoyaltyResultOutput(allow_null=True, help_text="Commit: the redemption it wrote.")
    replayed = serializers.BooleanField()


def _body(result: services.HoldResult) -> dict[str, Any]:
    return dict(PointsHoldOutput(result).data)


class HoldListView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=PointsHoldInput,
        responses={201: PointsHoldOutput},
        description="Hold points for a sale until it is paid (commit) or abandoned (release), at most "
        "`ttl_seconds` (default 300); held points are not available to other redemptions. Refused as a "
        "redemption would be (409 insufficient_points, ...). Needs an Idempotency-Key header.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        data = PointsHoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = services.points_hold_place(
            customer=customer,
            idempotency_key=key or "",
            points=values["points"],
            reference=values.get("reference", ""),
            purchase_amount=values.get("purchase_amount"),
            ttl_seconds=values.get("ttl_seconds"),
            source="api",
            actor=actor_of(self),
        )
        return replayable_response(_body(result), status=status.HTTP_201_CREATED, replayed=result.replayed)


class HoldCommitView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        request=None,
        responses=PointsHoldOutput,
        description="Redeem exactly the held points (the sale is paid). Committing again answers the same "
        "redemption (`Idempotent-Replayed: true`). An expired hold commits while its points are still available, "
        "else 409 points_hold_expired; a released hold is 409 points_hold_not_active.",
    )
    def post(self, request: Request, customer_id: str, hold_id: str) -> Response:
        result = services.points_hold_commit(
            customer=customer_get(customer_id), hold_id=hold_id, source="api", actor=actor_of(self)
        )
        return replayable_response(_body(result), status=status.HTTP_200_OK, replayed=result.replayed)


class HoldReleaseView(TenantAPIView):
    required_scopes = {"POST": WRITE}

    @extend_schema(
        request=None,
        responses=PointsHoldOutput,
        description="Give the held points back (the sale was abandoned). Releasing a released or expired hold "
        "again changes nothing; a committed hold is 409 points_hold_not_active.",
    )
    def post(self, request: Request, customer_id: str, hold_id: str) -> Response:
        result = services.points_hold_release(
            customer=customer_get(customer_id), hold_id=hold_id, source="api", actor=actor_of(self)
        )
        return replayable_response(_body(result), status=status.HTTP_200_OK, replayed=result.replayed)
