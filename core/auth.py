"""Token verification. The Auth Service owns authentication; this service only verifies bearer tokens.

Two verifiers behind one interface, chosen by `AUTH_VERIFIER`:
- `jwt`: checks a signed JWT locally (claims `sub`, `tenant`, `scope`);
- `grpc`: asks the Auth Service's `VerifyToken` over gRPC, with a short deadline, and caches answers briefly.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import jwt
from django.conf import settings

from core.errors import InvalidToken, MissingScope, MissingToken, ServiceUnavailable
from core.ttl_cache import TtlCache

SCOPES = (
    "customers:read",
    "customers:write",
    "loyalty:read",
    "loyalty:write",
    "loyalty:admin",
    "credit:read",
    "credit:write",
    "credit:approve",
    "segments:read",
    "analytics:read",
)


@dataclass(frozen=True)
class Identity:
    user_id: str
    tenant: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    expires_at: float | None = None

    def require(self, *scopes: str) -> None:
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise MissingScope(f"Missing scope: {' '.join(missing)}", missing=missing)


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Identity: ...


def bearer_token(header: str | None) -> str:
    """Extract the token from an `authorization` value; raises MissingToken / InvalidToken."""
    if not header:
        raise MissingToken()
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("The authorization header must be 'Bearer <token>'.")
    return token.strip()


class JWTVerifier:
    def __init__(
        self,
        *,
        key: str,
        algorithms: list[str],
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if not key:
            raise ValueError("The jwt verifier needs AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY")
        self.key = key
        self.algorithms = algorithms
        self.issuer = issuer or None
        self.audience = audience or None

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"The token is not valid: {exc}") from exc
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise InvalidToken("The token has no tenant claim.")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("The scope claim must be a space-separated string.")
        return Identity(
            user_id=str(claims["sub"]),
            tenant=tenant,
            scopes=frozenset(scope.split()),
            expires_at=float(claims["exp"]),
        )


class GrpcAuthVerifier:
    """Calls the Auth Service; valid answers are cached for `cache_ttl` seconds (never past the token's expiry)."""

    def __init__(self, *, address: str, timeout: float, cache_ttl: int) -> None:
        import grpc

        from zenlogic.auth.v1 import auth_service_pb2_grpc

        self.address = address
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self._channel = grpc.insecure_channel(address)
        self._stub = auth_service_pb2_grpc.AuthServiceStub(self._channel)
        self._cache: TtlCache[Identity] = TtlCache()

    def close(self) -> None:
        self._channel.close()

    def verify(self, token: str) -> Identity:
        import grpc

        from zenlogic.auth.v1 import auth_service_pb2

        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            answer = self._stub.VerifyToken(
                auth_service_pb2.VerifyTokenRequest(token=token), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise ServiceUnavailable(
                "The Auth Service could not verify the token.",
                code="auth_unavailable",
                status=str(exc.code()),
            ) from exc
        if not answer.valid:
            raise InvalidToken(answer.reason or "The token is not valid.")
        if not answer.tenant:
            raise InvalidToken("The token has no tenant.")
        expires_at = float(answer.expires_at) if answer.expires_at else None
        identity = Identity(
            user_id=answer.user_id,
            tenant=answer.tenant,
            scopes=frozenset(answer.scopes),
            expires_at=expires_at,
        )
        self._cache.set(key, identity, valid_until=_valid_until(identity, self.cache_ttl))
        return identity


def _valid_until(identity: Identity, ttl: float) -> float:
    """How long a verified identity may be remembered: `ttl` seconds, never past the token's expiry."""
    until = time.time() + ttl
    return min(until, identity.expires_at) if identity.expires_at is not None else until


_verifier: TokenVerifier | None = None
_verifier_lock = threading.Lock()


def build_verifier() -> TokenVerifier:
    if settings.AUTH_VERIFIER == "jwt":
        return JWTVerifier(
            key=settings.AUTH_JWT_PUBLIC_KEY or settings.AUTH_JWT_SECRET,
            algorithms=settings.AUTH_JWT_ALGORITHMS,
            issuer=settings.AUTH_JWT_ISSUER,
            audience=settings.AUTH_JWT_AUDIENCE,
        )
    if settings.AUTH_VERIFIER == "grpc":
        return GrpcAuthVerifier(
            address=settings.AUTH_GRPC_ADDRESS,
            timeout=settings.AUTH_GRPC_TIMEOUT,
            cache_ttl=settings.AUTH_CACHE_TTL,
        )
    raise ValueError(f"Unknown AUTH_VERIFIER {settings.AUTH_VERIFIER!r} (expected 'jwt' or 'grpc')")


def get_verifier() -> TokenVerifier:
    global _verifier
    if _verifier is None:
        with _verifier_lock:
            if _verifier is None:
                _verifier = build_verifier()
    return _verifier


def reset_verifier() -> None:
    """Forget the configured verifier (settings changed, e.g. in tests)."""
    global _verifier
    _identities.clear()
    with _verifier_lock:
        old, _verifier = _verifier, None
    if isinstance(old, GrpcAuthVerifier):
        old.close()


# Every door sends the same token again and again (a terminal, a service): a verified one is remembered briefly.
IDENTITY_TTL = 30.0
_identities: TtlCache[Identity] = TtlCache()


def authenticate(authorization: str | None) -> Identity:
    """The verified identity of an `authorization` value, remembered for 30 s (never past the token's expiry)."""
    token = bearer_token(authorization)
    key = hashlib.sha256(token.encode()).hexdigest()
    identity = _identities.get(key)
    if identity is None:
        identity = get_verifier().verify(token)
        _identities.set(key, identity, valid_until=_valid_until(identity, IDENTITY_TTL))
    return identity


def issue_dev_token(*, tenant: str, user_id: str, scopes: list[str], ttl_seconds: int) -> str:
    """A token for the `jwt` verifier (development and tests). Production never mints: its tokens come from the
    Auth Service, and a process that could mint them could impersonate any tenant."""
    if settings.PRODUCTION:
        raise RuntimeError(
            "Tokens are not issued in production (APP_ENV=production); the Auth Service issues them."
        )
    if settings.AUTH_VERIFIER != "jwt":
        raise RuntimeError("Tokens can only be issued for the jwt verifier (AUTH_VERIFIER=jwt).")
    if not settings.AUTH_JWT_SECRET:
        raise RuntimeError("Issuing tokens needs the shared secret AUTH_JWT_SECRET.")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "tenant": tenant,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if settings.AUTH_JWT_ISSUER:
        claims["iss"] = settings.AUTH_JWT_ISSUER
    if settings.AUTH_JWT_AUDIENCE:
        claims["aud"] = settings.AUTH_JWT_AUDIENCE
    return jwt.encode(claims, settings.AUTH_JWT_SECRET, algorithm=settings.AUTH_JWT_ALGORITHMS[0])
