"""GetCustomerSegment over gRPC: unclassified until computed, then the latest run's segment and scores."""

from __future__ import annotations

from datetime import datetime

import grpc
import pytest

from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

pytestmark = pytest.mark.django_db(transaction=True)


def segment_request(customer) -> pb.GetCustomerSegmentRequest:
    return pb.GetCustomerSegmentRequest(customer_id=str(customer.id))


def test_a_customer_never_segmented_is_unclassified_with_zero_scores(grpc_a, customer_a):
    answer = grpc_a.GetCustomerSegment(segment_request(customer_a))
    assert answer == pb.CustomerSegment(customer_id=str(customer_a.id), segment="unclassified")
    assert grpc_a.GetCustomer(by_id(customer_a)).segment == "unclassified"


def test_after_a_segmentation_run_the_segment_and_its_time_are_answered(grpc_a, tenant_a, customer_a):
    from core.tenancy import tenant_context
    from segmentation.selectors import segment_for_customer
    from segmentation.services import rfm_recompute

    grpc_a.GetCustomer(by_id(customer_a))  # cached before the run
    with tenant_context(tenant_a):
        rfm_recompute(tenant=tenant_a, triggered_by="test")
    with tenant_context(tenant_a):
        view = segment_for_customer(customer_a)
    answer = grpc_a.GetCustomerSegment(segment_request(customer_a))
    assert answer.segment == view.segment != "unclassified"
    assert (answer.recency_score, answer.frequency_score, answer.monetary_score) == (
        view.recency_score,
        view.frequency_score,
        view.monetary_score,
    )
    assert (answer.is_vip, answer.churn_risk) == (view.is_vip, view.churn_risk)
    assert datetime.fromisoformat(answer.computed_at.replace("Z", "+00:00")) == view.computed_at
    assert grpc_a.GetCustomer(by_id(customer_a)).segment == view.segment


def test_another_tenants_customer_is_not_found(grpc_b, customer_a):
    failure = grpc_b.fails("GetCustomerSegment", segment_request(customer_a))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")


def test_malformed_ids_are_invalid_argument(grpc_a):
    for customer_id, code in [
        ("", "missing_customer_id"),
        ("nope", "invalid_customer_id"),
        ("x" * 10_000, "invalid_customer_id"),
    ]:
        failure = grpc_a.fails("GetCustomerSegment", pb.GetCustomerSegmentRequest(customer_id=customer_id))
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, code), customer_id
