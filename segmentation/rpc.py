"""gRPC door of segmentation: `GetCustomerSegment`. Proto -> selector -> proto."""

from __future__ import annotations

from core.rpc import RpcCall, rpc_method, uuid_field
from customers.selectors import customer_get
from segmentation.selectors import segment_for_customer
from zenlogic.customer.v1 import customer_service_pb2 as pb


class SegmentationRpc:
    @rpc_method(scopes=["segments:read"])
    def GetCustomerSegment(self, request: pb.GetCustomerSegmentRequest, call: RpcCall) -> pb.CustomerSegment:
        customer = customer_get(uuid_field(request.customer_id))
        view = segment_for_customer(customer)
        computed_at = view.computed_at.isoformat().replace("+00:00", "Z") if view.computed_at else ""
        return pb.CustomerSegment(
            customer_id=str(customer.id),
            segment=view.segment,
            recency_score=view.recency_score,
            frequency_score=view.frequency_score,
            monetary_score=view.monetary_score,
            is_vip=view.is_vip,
            churn_risk=str(view.churn_risk or ""),
            computed_at=computed_at,
        )
