"""gRPC door of loyalty: `AddLoyaltyPoints`, `RedeemLoyaltyPoints` and the redemption holds (`HoldLoyaltyPoints`,
`CommitLoyaltyPointsHold`, `ReleaseLoyaltyPointsHold`). Proto -> kwargs -> service -> proto."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.money import money_str
from core.rpc import RpcCall, amount_field, points_field, rpc_method, text_field, uuid_field
from customers.selectors import customer_get
from loyalty.errors import InvalidEarnRequest
from loyalty.services import (
    HoldResult,
    LoyaltyResult,
    points_earn,
    points_hold_commit,
    points_hold_place,
    points_hold_release,
    points_redeem,
)
from zenlogic.customer.v1 import customer_service_pb2 as pb

MAX_KEY_LENGTH = 200
MAX_REFERENCE_LENGTH = 100
MAX_ITEMS = 500


def loyalty_result_message(result: LoyaltyResult) -> pb.LoyaltyPointsResult:
    return pb.LoyaltyPointsResult(
        transaction_id=str(result.transaction_id) if result.transaction_id else "",
        points=result.points,
        points_balance=result.points_balance,
        discount_amount=money_str(result.discount_amount),
        currency=result.currency,
        tier=str(result.tier),
        previous_tier=str(result.previous_tier),
        tier_changed=result.tier_changed,
    )


def hold_message(result: HoldResult) -> pb.LoyaltyPointsHold:
    return pb.LoyaltyPointsHold(
        hold_id=str(result.hold_id),
        status=result.status,
        points=result.points,
        reference=result.reference,
        discount_amount=money_str(result.discount_amount),
        currency=result.currency,
        expires_at=result.expires_at.isoformat().replace("+00:00", "Z"),
        points_balance=result.points_balance,
        held_points=result.held_points,
        available_points=result.available_points,
        purchase_amount=money_str(result.purchase_amount) if result.purchase_amount is not None else "",
    )


def _items(request: pb.AddLoyaltyPointsRequest) -> list[dict[str, Any]] | None:
    if not request.items:
        return None
    if len(request.items) > MAX_ITEMS:
        raise InvalidInput(f"At most {MAX_ITEMS} items.", code="invalid_items", field="items")
    return [
        {
            "sku": text_field(item.sku, field="sku", max_length=64, required=True),
            "category": text_field(item.category, field="category", max_length=64),
            "quantity": amount_field(item.quantity, field="quantity"),
            "unit_price": amount_field(item.unit_price, field="unit_price"),
        }
        for item in request.items
    ]


class LoyaltyRpc:
    @rpc_method(scopes=["loyalty:write"])
    def AddLoyaltyPoints(self, request: pb.AddLoyaltyPointsRequest, call: RpcCall) -> pb.LoyaltyPointsResult:
        customer_id = uuid_field(request.customer_id)
        key = text_field(
            request.idempotency_key, field="idempotency_key", max_length=MAX_KEY_LENGTH, required=True
        )
        has_amount = bool(request.purchase_amount.strip())
        if has_amount == request.HasField("points"):
            raise InvalidEarnRequest("Give exactly one of purchase_amount and points.")
        result = points_earn(
            customer=customer_get(customer_id),
            idempotency_key=key,
            purchase_amount=amount_field(request.purchase_amount, field="purchase_amount")
            if has_amount
            else None,
            points=None if has_amount else points_field(request.points),
            currency=text_field(request.currency, field="currency", max_length=3) or None,
            reference=text_field(request.reference, field="reference", max_length=MAX_REFERENCE_LENGTH),
            items=_items(request),
            source="grpc",
            actor=call.actor,
        )
        return loyalty_result_message(result)

    @rpc_method(scopes=["loyalty:write"])
    def RedeemLoyaltyPoints(
        self, request: pb.RedeemLoyaltyPointsRequest, call: RpcCall
    ) -> pb.LoyaltyPointsResult:
        customer_id = uuid_field(request.customer_id)
        key = text_field(
            request.idempotency_key,
            field="idempotency_key",
            max_length=MAX_KEY_LENGTH,
            required=not request.dry_run,
        )
        result = points_redeem(
            customer=customer_get(customer_id),
            idempotency_key=key,
            points=points_field(request.points),
            reference=text_field(request.reference, field="reference", max_length=MAX_REFERENCE_LENGTH),
            dry_run=request.dry_run,
            actor=call.actor,
            purchase_amount=amount_field(request.purchase_amount, field="purchase_amount")
            if request.purchase_amount.strip()
            else None,
            source="grpc",
        )
        return loyalty_result_message(result)

    @rpc_method(scopes=["loyalty:write"])
    def HoldLoyaltyPoints(self, request: pb.HoldLoyaltyPointsRequest, call: RpcCall) -> pb.LoyaltyPointsHold:
        customer_id = uuid_field(request.customer_id)
        key = text_field(
            request.idempotency_key, field="idempotency_key", max_length=MAX_KEY_LENGTH, required=True
        )
        result = points_hold_place(
            customer=customer_get(customer_id),
            idempotency_key=key,
            points=points_field(request.points),
            reference=text_field(request.reference, field="reference", max_length=MAX_REFERENCE_LENGTH),
            purchase_amount=amount_field(request.purchase_amount, field="purchase_amount")
            if request.purchase_amount.strip()
            else None,
            ttl_seconds=request.ttl_seconds if request.HasField("ttl_seconds") else None,
            source="grpc",
            actor=call.actor,
        )
        return hold_message(result)

    @rpc_method(scopes=["loyalty:write"])
    def CommitLoyaltyPointsHold(
        self, request: pb.CommitLoyaltyPointsHoldRequest, call: RpcCall
    ) -> pb.LoyaltyPointsResult:
        customer_id = uuid_field(request.customer_id)
        hold_id = uuid_field(request.hold_id, field="hold_id")
        result = points_hold_commit(
            customer=customer_get(customer_id), hold_id=hold_id, source="grpc", actor=call.actor
        )
        assert result.redemption is not None  # a commit always answers its redemption
        message = loyalty_result_message(result.redemption)
        message.hold_id = str(result.hold_id)
        return message

    @rpc_method(scopes=["loyalty:write"])
    def ReleaseLoyaltyPointsHold(
        self, request: pb.ReleaseLoyaltyPointsHoldRequest, call: RpcCall
    ) -> pb.LoyaltyPointsHold:
        customer_id = uuid_field(request.customer_id)
        hold_id = uuid_field(request.hold_id, field="hold_id")
        result = points_hold_release(
            customer=customer_get(customer_id), hold_id=hold_id, source="grpc", actor=call.actor
        )
        return hold_message(result)
