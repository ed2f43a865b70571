"""The server's plumbing: health, reflection, authentication and scopes on every method, error mapping (including
unexpected errors and unparseable requests), request ids and metrics."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client import REGISTRY

from config.grpc_server import SERVICE_NAME, CustomerService, method_handlers, worker_count
from tests.grpc.conftest import Client, by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

ANY_ID = str(uuid.uuid4())

# Every method of the contract, with a well-formed request and the scope it needs.
METHODS = [
    ("GetCustomer", pb.GetCustomerRequest(customer_id=ANY_ID), "customers:read"),
    (
        "AddLoyaltyPoints",
        pb.AddLoyaltyPointsRequest(customer_id=ANY_ID, idempotency_key="k", purchase_amount="10"),
        "loyalty:write",
    ),
    (
        "RedeemLoyaltyPoints",
        pb.RedeemLoyaltyPointsRequest(customer_id=ANY_ID, idempotency_key="k", points=1),
        "loyalty:write",
    ),
    (
        "HoldLoyaltyPoints",
        pb.HoldLoyaltyPointsRequest(customer_id=ANY_ID, idempotency_key="k", points=1),
        "loyalty:write",
    ),
    (
        "CommitLoyaltyPointsHold",
        pb.CommitLoyaltyPointsHoldRequest(customer_id=ANY_ID, hold_id=ANY_ID),
        "loyalty:write",
    ),
    (
        "ReleaseLoyaltyPointsHold",
        pb.ReleaseLoyaltyPointsHoldRequest(customer_id=ANY_ID, hold_id=ANY_ID),
        "loyalty:write",
    ),
    (
        "CheckCreditAvailability",
        pb.CheckCreditAvailabilityRequest(customer_id=ANY_ID, amount="10"),
        "credit:read",
    ),
    (
        "UseCreditLimit",
        pb.UseCreditLimitRequest(customer_id=ANY_ID, amount="10", order_id="o-1", idempotency_key="k"),
        "credit:write",
    ),
    ("GetCustomerSegment", pb.GetCustomerSegmentRequest(customer_id=ANY_ID), "segments:read"),
]


def test_health_needs_no_token_and_reports_serving(grpc_channel):
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", SERVICE_NAME):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service_health_and_reflection(grpc_channel):
    database = ProtoReflectionDescriptorDatabase(grpc_channel)
    services = set(database.get_services())
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    methods = {m.name for m in database.FindFileContainingSymbol(SERVICE_NAME).service[0].method}
    assert methods == {m[0] for m in METHODS}


def test_reflection_also_speaks_v1_for_clients_that_know_only_v1(grpc_channel):
    """A client that speaks only `grpc.reflection.v1` (grpcurl, newer grpc-js tools) lists the services and reads
    the service's descriptor, without a token, as v1alpha clients do."""
    from google.protobuf import descriptor_pb2

    from core.rpc_reflection import V1_SERVICE_NAME, v1_message_class

    request_class = v1_message_class("ServerReflectionRequest")
    response_class = v1_message_class("ServerReflectionResponse")
    call = grpc_channel.stream_stream(
        f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    requests = [
        request_class(list_services=""),
        request_class(file_containing_symbol=SERVICE_NAME),
        request_class(file_containing_symbol=V1_SERVICE_NAME),
    ]
    listed, described, reflected = list(call(iter(requests), timeout=10))
    services = {service.name for service in listed.list_services_response.service}
    assert {
        SERVICE_NAME,
        "grpc.health.v1.Health",
        V1_SERVICE_NAME,
        "grpc.reflection.v1alpha.ServerReflection",
    } <= (services)
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    service = next(s for f in files for s in f.service if f.package == "zenlogic.customer.v1")
    assert {m.name for m in service.method} == {m[0] for m in METHODS}
    reflection_files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reflected.file_descriptor_response.file_descriptor_proto
    ]
    assert any(
        f.package == "grpc.reflection.v1" and f.service[0].name == "ServerReflection"
        for f in reflection_files
    )


def test_every_contract_method_is_served_and_authenticated():
    assert set(method_handlers(CustomerService())) == {m[0] for m in METHODS}


def test_the_server_refuses_an_undecorated_method():
    class Careless(CustomerService):
        def GetCustomerSegment(self, request, context):  # no rpc_method: no token check
            return pb.CustomerSegment()

    with pytest.raises(TypeError, match="GetCustomerSegment"):
        method_handlers(Careless())


@pytest.mark.django_db(transaction=True)
def test_every_method_refuses_a_missing_token(anonymous):
    for method, request_message, _ in METHODS:
        failure = anonymous.fails(method, request_message)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.UNAUTHENTICATED, "missing_token"), (
            method
        )


@pytest.mark.django_db(transaction=True)
def test_every_method_refuses_a_token_without_its_scope(grpc_for, tenant_a):
    from core.auth import SCOPES

    for method, request_message, scope in METHODS:
        client = grpc_for(tenant_a, scopes=[s for s in SCOPES if s != scope])
        failure = client.fails(method, request_message)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.PERMISSION_DENIED, "missing_scope"), (
            method
        )
        assert scope in failure.message


@pytest.mark.django_db(transaction=True)
def test_a_malformed_authorization_is_unauthenticated(grpc_channel, customer_a):
    for authorization in ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer ", "bearer", ""]:
        client = Client(grpc_channel, None, authorization=authorization)
        failure = client.fails("GetCustomer", by_id(customer_a))
        assert failure.code == grpc.StatusCode.UNAUTHENTICATED, authorization
        assert failure.error_code in {"invalid_token", "missing_token"}


@pytest.mark.django_db(transaction=True)
def test_an_expired_or_foreign_signed_token_is_unauthenticated(grpc_channel, customer_a):
    import time

    import jwt

    expired = jwt.encode(
        {"sub": "u", "tenant": "tenant-a", "scope": "customers:read", "exp": time.time() - 5},
        "dev-only-jwt-secret-not-for-production-use",
    )
    forged = jwt.encode(
        {"sub": "u", "tenant": "tenant-a", "scope": "customers:read", "exp": time.time() + 60},
        "someone-elses-secret-of-the-same-length-xxxxxx",
    )
    for token in (expired, forged):
        failure = Client(grpc_channel, token).fails("GetCustomer", by_id(customer_a))
        assert (failure.code, failure.error_code) == (grpc.StatusCode.UNAUTHENTICATED, "invalid_token")


@pytest.mark.django_db(transaction=True)
def test_a_token_of_an_unknown_tenant_is_refused(grpc_for, customer_a):
    failure = grpc_for("no-such-tenant").fails("GetCustomer", by_id(customer_a))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.PERMISSION_DENIED, "unknown_tenant")


@pytest.mark.django_db(transaction=True)
def test_an_unparseable_request_is_invalid_argument(grpc_channel, grpc_a):
    for method, _, _ in METHODS:
        raw = grpc_channel.unary_unary(f"/{SERVICE_NAME}/{method}")  # bytes in, bytes out
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x02\xff\xfe"):  # corrupt wire format; bad UTF-8 string
            with pytest.raises(grpc.RpcError) as info:
                raw(garbage, metadata=grpc_a.metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert dict(info.value.trailing_metadata())["error-code"] == "malformed_request"


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_is_internal_without_internals_and_logged(
    grpc_a, customer_a, monkeypatch, caplog
):
    import segmentation.rpc

    def explode(customer):
        raise RuntimeError("password=hunter2 in a stack trace")

    monkeypatch.setattr(segmentation.rpc, "segment_for_customer", explode)
    with caplog.at_level(logging.ERROR, logger="core.rpc"):
        failure = grpc_a.fails(
            "GetCustomerSegment", pb.GetCustomerSegmentRequest(customer_id=str(customer_a.id))
        )
    assert failure.code == grpc.StatusCode.INTERNAL
    assert failure.error_code == "internal_error"
    assert "hunter2" not in failure.message and "RuntimeError" not in failure.message
    [record] = [r for r in caplog.records if r.name == "core.rpc"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_is_unavailable_so_callers_retry(grpc_a, customer_a, monkeypatch):
    from django.db import OperationalError

    import segmentation.rpc

    def lost(customer):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(segmentation.rpc, "segment_for_customer", lost)
    failure = grpc_a.fails("GetCustomerSegment", pb.GetCustomerSegmentRequest(customer_id=str(customer_a.id)))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.UNAVAILABLE, "database_unavailable")
    assert "server closed" not in failure.message


@pytest.mark.django_db(transaction=True)
def test_domain_errors_carry_their_code_and_details(grpc_a):
    failure = grpc_a.fails("GetCustomer", pb.GetCustomerRequest(customer_id=ANY_ID))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")
    assert ANY_ID in failure.trailers["error-details"]


@pytest.mark.django_db(transaction=True)
def test_the_request_id_is_taken_from_the_caller_and_returned(grpc_a, customer_a):
    _, call = grpc_a.stub.GetCustomer.with_call(
        by_id(customer_a), metadata=[*grpc_a.metadata, ("x-request-id", "pos-42.abc")], timeout=10
    )
    assert dict(call.trailing_metadata())["x-request-id"] == "pos-42.abc"


@pytest.mark.django_db(transaction=True)
def test_a_worker_thread_keeps_its_cache_client_across_calls(grpc_a, customer_a, monkeypatch):
    """grpcio runs each call in a fresh contextvars.Context; Django keeps cache clients in the context, so without
    the server's per-thread context every call would open a new connection to Redis."""
    import threading

    from django.core.cache import caches

    import customer360.rpc

    seen: dict[int, set[int]] = {}
    real = customer360.rpc.customer_snapshot_get

    def spy(*args, **kwargs):
        seen.setdefault(threading.get_ident(), set()).add(id(caches["default"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(customer360.rpc, "customer_snapshot_get", spy)
    for _ in range(40):
        grpc_a.GetCustomer(by_id(customer_a))
    assert sum(len(ids) for ids in seen.values()) == len(seen)  # one client per thread, whatever the calls


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"grpc_service": SERVICE_NAME, **labels}) or 0.0


@pytest.mark.django_db(transaction=True)
def test_metrics_count_calls_errors_and_latency_per_method(grpc_a, anonymous, customer_a):
    method = {"grpc_method": "GetCustomer"}
    before_ok = _sample("grpc_server_handled_total", grpc_code="OK", **method)
    before_unauth = _sample("grpc_server_handled_total", grpc_code="UNAUTHENTICATED", **method)
    before_missing = _sample(
        "grpc_server_errors_total", grpc_code="UNAUTHENTICATED", error_code="missing_token", **method
    )
    before_latency = _sample("grpc_server_handling_seconds_count", **method)
    grpc_a.GetCustomer(by_id(customer_a))
    anonymous.fails("GetCustomer", by_id(customer_a))
    assert _sample("grpc_server_handled_total", grpc_code="OK", **method) == before_ok + 1
    assert _sample("grpc_server_handled_total", grpc_code="UNAUTHENTICATED", **method) == before_unauth + 1
    assert (
        _sample("grpc_server_errors_total", grpc_code="UNAUTHENTICATED", error_code="missing_token", **method)
        == before_missing + 1
    )
    assert _sample("grpc_server_handling_seconds_count", **method) == before_latency + 2


@pytest.mark.django_db  # the registry also holds the outbox gauges, computed from the database when scraped
def test_metrics_are_served_over_http(anonymous):
    import socket
    import urllib.request

    from core.rpc import start_metrics_server

    anonymous.fails("GetCustomer", pb.GetCustomerRequest(customer_id=ANY_ID))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start_metrics_server(port, addr="127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'grpc_server_handled_total{grpc_code="UNAUTHENTICATED",grpc_method="GetCustomer"' in body
    assert 'grpc_server_handling_seconds_bucket{grpc_method="GetCustomer"' in body


@pytest.mark.django_db
def test_worker_threads_fit_within_postgresqls_free_connections(raw_sql):
    [(max_connections,)] = raw_sql("SELECT current_setting('max_connections')::int")
    assert worker_count(4) == 4
    assert worker_count(max_connections * 2) < max_connections
    assert worker_count(max_connections, processes=max_connections * 10) == 1
