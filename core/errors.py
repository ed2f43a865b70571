"""The domain error hierarchy and the one table that maps each category to HTTP and gRPC.

Apps subclass a category (never `DomainError` itself) and give the subclass a stable snake_case `code`. The DRF
exception handler and the gRPC interceptor both read `ERROR_MAP`, so a category has the same meaning at every door.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from django.utils.translation import gettext_noop


class DomainError(Exception):
    code: str = "error"
    message: str = gettext_noop("The request failed.")

    def __init__(self, message: str | None = None, *, code: str | None = None, **details: Any) -> None:
        self.message = message or self.message
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, details={self.details!r})"
        )


class InvalidInput(DomainError):
    code = "invalid_input"
    message = gettext_noop("The request is not valid.")


class Unauthenticated(DomainError):
    code = "invalid_token"
    message = gettext_noop("The bearer token is missing or not valid.")


class PermissionDenied(DomainError):
    code = "permission_denied"
    message = gettext_noop("The caller may not do this.")


class NotFound(DomainError):
    code = "not_found"
    message = gettext_noop("Not found.")


class Conflict(DomainError):
    """A business rule refused the request (insufficient points, credit limit exceeded, ...)."""

    code = "conflict"
    message = gettext_noop("A business rule refused the request.")


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    message = gettext_noop("This idempotency key was already used with another payload.")


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    message = gettext_noop("A service this request depends on is unavailable.")


class ServerBusy(DomainError):
    """The server is at capacity (every worker and queue slot taken): retry shortly, with the same key."""

    code = "server_busy"
    message = gettext_noop("The server is at capacity; retry shortly.")


class RequestTooLarge(DomainError):
    code = "request_too_large"
    message = gettext_noop("The request body is larger than this service accepts.")


# Errors shared by every app -----------------------------------------------------------------------------------
class MissingToken(Unauthenticated):
    code = "missing_token"
    message = gettext_noop("The request has no bearer token.")


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    message = gettext_noop("The bearer token is not valid.")


class MissingScope(PermissionDenied):
    code = "missing_scope"
    message = gettext_noop("The token lacks a scope this operation needs.")


class UnknownTenant(PermissionDenied):
    code = "unknown_tenant"
    message = gettext_noop("The token's tenant is not known to this service.")


class InvalidAmount(InvalidInput):
    code = "invalid_amount"
    message = gettext_noop("The amount must be a positive decimal string.")


class InvalidCurrency(InvalidInput):
    code = "invalid_currency"
    message = gettext_noop("The currency is not the tenant's currency.")


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    message = gettext_noop("The pagination cursor is not valid; start again from the first page.")


class ValidationFailed(InvalidInput):
    code = "validation_error"
    message = gettext_noop("Some fields are not valid.")


class MalformedRequest(InvalidInput):
    code = "malformed_request"
    message = gettext_noop("The request body is not valid JSON.")


class JSONTooDeep(MalformedRequest):
    message = gettext_noop("The JSON body nests too deeply.")


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    message = gettext_noop("The database is unavailable; try again shortly.")


@dataclass(frozen=True)
class ErrorMapping:
    http_status: int
    grpc_status: grpc.StatusCode


ERROR_MAP: dict[type[DomainError], ErrorMapping] = {
    InvalidInput: ErrorMapping(400, grpc.StatusCode.INVALID_ARGUMENT),
    Unauthenticated: ErrorMapping(401, grpc.StatusCode.UNAUTHENTICATED),
    PermissionDenied: ErrorMapping(403, grpc.StatusCode.PERMISSION_DENIED),
    NotFound: ErrorMapping(404, grpc.StatusCode.NOT_FOUND),
    Conflict: ErrorMapping(409, grpc.StatusCode.FAILED_PRECONDITION),
    IdempotencyKeyReused: ErrorMapping(422, grpc.StatusCode.ALREADY_EXISTS),
    RequestTooLarge: ErrorMapping(413, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ServerBusy: ErrorMapping(503, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ServiceUnavailable: ErrorMapping(503, grpc.StatusCode.UNAVAILABLE),
}


def mapping_for(error: DomainError | type[DomainError]) -> ErrorMapping:
    """The mapping of the error's category; raises LookupError for an error outside every category."""
    cls = error if isinstance(error, type) else type(error)
    for base in cls.__mro__:
        if base in ERROR_MAP:
            return ERROR_MAP[base]  # type: ignore[index]
    raise LookupError(f"{cls.__name__} has no category in core.errors.ERROR_MAP")


def error_body(error: DomainError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "details": error.details}
