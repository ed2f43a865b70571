"""Bearer tokens: the jwt verifier, the grpc verifier against a real fake Auth Service, scopes, issue_token."""

from __future__ import annotations

import time
from concurrent import futures
from io import StringIO

import grpc
import jwt
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core.auth import GrpcAuthVerifier, JWTVerifier, bearer_token, reset_verifier
from core.errors import InvalidToken, MissingToken, ServiceUnavailable

SECRET = "dev-only-jwt-secret-not-for-production-use"


def test_jwt_verifier_reads_sub_tenant_and_scopes():
    token = jwt.encode(
        {"sub": "u1", "tenant": "t1", "scope": "customers:read loyalty:write", "exp": time.time() + 86400},
        SECRET,
    )
    identity = JWTVerifier(key=SECRET, algorithms=["HS256"]).verify(token)
    assert (identity.user_id, identity.tenant) == ("u1", "t1")
    assert identity.scopes == {"customers:read", "loyalty:write"}


@pytest.mark.parametrize(
    "claims,key,message",
    [
        ({"sub": "u", "tenant": "t", "exp": time.time() - 10}, SECRET, "expired"),
        (
            {"sub": "u", "tenant": "t", "exp": time.time() + 86400},
            "another-secret-of-enough-length-xxxx",
            "not valid",
        ),
        ({"sub": "u", "exp": time.time() + 86400}, SECRET, "tenant"),
        ({"tenant": "t", "exp": time.time() + 86400}, SECRET, "not valid"),
    ],
)
def test_jwt_verifier_refuses_bad_tokens(claims, key, message):
    token = jwt.encode(claims, key)
    with pytest.raises(InvalidToken, match=message):
        JWTVerifier(key=SECRET, algorithms=["HS256"]).verify(token)


def test_bearer_header_parsing():
    with pytest.raises(MissingToken):
        bearer_token(None)
    with pytest.raises(InvalidToken):
        bearer_token("Basic abc")
    assert bearer_token("Bearer abc ") == "abc"


class FakeAuthService:
    """A real gRPC Auth Service: 'good' is valid for tenant-a, anything else is refused."""

    def __init__(self) -> None:
        self.calls = 0

    def VerifyToken(self, request, context):
        from zenlogic.auth.v1 import auth_service_pb2

        self.calls += 1
        if request.token == "good":
            return auth_service_pb2.VerifyTokenResponse(
                valid=True,
                user_id="u9",
                tenant="tenant-a",
                scopes=["customers:read"],
                expires_at=int(time.time()) + 600,
            )
        return auth_service_pb2.VerifyTokenResponse(valid=False, reason="revoked")


@pytest.fixture
def fake_auth_server():
    from zenlogic.auth.v1 import auth_service_pb2_grpc

    service = FakeAuthService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", service
    server.stop(0)


def test_grpc_verifier_against_a_real_auth_service_caches_valid_answers(fake_auth_server):
    address, service = fake_auth_server
    verifier = GrpcAuthVerifier(address=address, timeout=2, cache_ttl=30)
    try:
        identity = verifier.verify("good")
        assert (identity.user_id, identity.tenant, identity.scopes) == ("u9", "tenant-a", {"customers:read"})
        verifier.verify("good")
        assert service.calls == 1, "the second verification must come from the cache"
        with pytest.raises(InvalidToken, match="revoked"):
            verifier.verify("bad")
    finally:
        verifier.close()


def test_grpc_verifier_fails_fast_when_the_auth_service_is_down():
    verifier = GrpcAuthVerifier(address="127.0.0.1:1", timeout=0.3, cache_ttl=30)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable):
            verifier.verify("anything")
    finally:
        verifier.close()
    assert time.monotonic() - started < 5


@pytest.mark.django_db
def test_rest_with_the_grpc_verifier(fake_auth_server, tenant_a, customer_a):
    from rest_framework.test import APIClient

    address, _ = fake_auth_server
    with override_settings(AUTH_VERIFIER="grpc", AUTH_GRPC_ADDRESS=address):
        reset_verifier()
        try:
            client = APIClient()
            ok = client.get(f"/api/v1/customers/{customer_a.id}/", HTTP_AUTHORIZATION="Bearer good")
            assert ok.status_code == 200, ok.content
            denied = client.get(f"/api/v1/customers/{customer_a.id}/", HTTP_AUTHORIZATION="Bearer bad")
            assert denied.status_code == 401 and denied.json()["code"] == "invalid_token"
            forbidden = client.post("/api/v1/customers/", {}, format="json", HTTP_AUTHORIZATION="Bearer good")
            assert forbidden.status_code == 403 and forbidden.json()["code"] == "missing_scope"
        finally:
            reset_verifier()


@pytest.mark.django_db
def test_rest_without_token_and_with_missing_scope(api_client_for, tenant_a, customer_a):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/customers/")
    assert response.status_code == 401 and response.json()["code"] == "missing_token"
    reader = api_client_for(tenant_a, scopes=["customers:read"])
    assert reader.get("/api/v1/customers/").status_code == 200
    response = reader.patch(f"/api/v1/customers/{customer_a.id}/", {"notes": "x"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "missing_scope"


@pytest.mark.django_db
def test_token_for_an_unknown_tenant_is_refused(api_client_for):
    response = api_client_for("nobody-knows").get("/api/v1/customers/")
    assert response.status_code == 403 and response.json()["code"] == "unknown_tenant"


def test_issue_token_prints_a_token_the_verifier_accepts():
    out = StringIO()
    call_command(
        "issue_token",
        "--tenant",
        "acme",
        "--scopes",
        "customers:read",
        "loyalty:write",
        "--ttl",
        "60",
        stdout=out,
    )
    identity = JWTVerifier(key=SECRET, algorithms=["HS256"]).verify(out.getvalue().strip())
    assert identity.tenant == "acme" and identity.scopes == {"customers:read", "loyalty:write"}


def test_issue_token_refuses_without_the_jwt_verifier():
    with override_settings(AUTH_VERIFIER="grpc"), pytest.raises(CommandError, match="jwt"):
        call_command("issue_token", "--tenant", "acme")


def test_public_endpoints_need_no_token(client, db):
    assert client.get("/metrics").status_code == 200
    assert client.get("/health").status_code in (200, 503)
    futures  # noqa: B018 - keep the import used for the fake server
