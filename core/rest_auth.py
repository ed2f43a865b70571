"""REST authentication and scopes. Kept apart from core.api: DRF imports these classes while it is itself being
imported, so this module must not import rest_framework.views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.auth import Identity, authenticate
from core.tenancy import tenant_cached

if TYPE_CHECKING:
    from rest_framework.views import APIView


class Principal:
    """The caller of a REST request: the verified identity, shaped like a user for DRF."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    @property
    def pk(self) -> str:
        return self.identity.user_id

    def __str__(self) -> str:
        return f"{self.identity.user_id}@{self.identity.tenant}"


def ensure_tenant_exists(slug: str) -> None:
    """A token for a tenant this service does not know is refused."""
    tenant_cached(slug)


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, Identity]:
        identity = authenticate(request.META.get("HTTP_AUTHORIZATION"))
        ensure_tenant_exists(identity.tenant)
        return Principal(identity), identity

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class HasRequiredScopes(BasePermission):
    """Checks the view's `required_scopes`: a dict from HTTP method (or '*') to the scopes it needs."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        identity = request.auth
        if not isinstance(identity, Identity):
            return False
        required: dict[str, list[str]] = getattr(view, "required_scopes", {})
        scopes = required.get(request.method or "GET", required.get("*", []))
        identity.require(*scopes)
        return True
