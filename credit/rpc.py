"""gRPC door of credit: `CheckCreditAvailability` and `UseCreditLimit`. Proto -> kwargs -> service -> proto."""

from __future__ import annotations

from core.money import money_str
from core.rpc import RpcCall, amount_field, rpc_method, text_field, uuid_field
from credit.services import credit_check, credit_use
from customers.selectors import customer_get
from zenlogic.customer.v1 import customer_service_pb2 as pb

MAX_KEY_LENGTH = 200
MAX_ORDER_ID_LENGTH = 100


class CreditRpc:
    @rpc_method(scopes=["credit:read"])
    def CheckCreditAvailability(
        self, request: pb.CheckCreditAvailabilityRequest, call: RpcCall
    ) -> pb.CreditAvailability:
        customer_id = uuid_field(request.customer_id)
        amount = amount_field(request.amount)
        result = credit_check(customer=customer_get(customer_id), amount=amount)
        return pb.CreditAvailability(
            available=result.available,
            credit_limit=money_str(result.credit_limit),
            used=money_str(result.used),
            available_amount=money_str(result.available_amount),
            currency=result.currency,
            status=str(result.status),
            payment_terms_days=result.payment_terms_days,
            reason=result.reason,
        )

    @rpc_method(scopes=["credit:write"])
    def UseCreditLimit(self, request: pb.UseCreditLimitRequest, call: RpcCall) -> pb.CreditUsage:
        customer_id = uuid_field(request.customer_id)
        amount = amount_field(request.amount)
        order_id = text_field(
            request.order_id, field="order_id", max_length=MAX_ORDER_ID_LENGTH, required=True
        )
        key = text_field(request.idempotency_key, field="idempotency_key", max_length=MAX_KEY_LENGTH)
        result = credit_use(
            customer=customer_get(customer_id),
            amount=amount,
            order_id=order_id,
            idempotency_key=key or None,
            currency=text_field(request.currency, field="currency", max_length=3) or None,
            actor=call.actor,
        )
        return pb.CreditUsage(
            usage_id=str(result.usage_id),
            amount=money_str(result.amount),
            available_amount=money_str(result.available_amount),
            due_date=result.due_date.isoformat(),
            currency=result.currency,
        )
