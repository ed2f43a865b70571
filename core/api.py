"""What every REST view shares: bearer-token authentication, scopes, the tenant transaction, error bodies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.exceptions import ErrorDetail
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import Identity
from core.errors import (
    DatabaseUnavailable,
    DomainError,
    InvalidCursor,
    InvalidInput,
    MissingScope,
    RequestTooLarge,
    ValidationFailed,
    error_body,
    mapping_for,
)
from core.idempotency import REPLAYED_HEADER
from core.parsers import BoundedJSONParser
from core.rest_auth import BearerTokenAuthentication, HasRequiredScopes, Principal
from core.tenancy import tenant_context

# What the OpenAPI schema says of a money amount in a request: the exact syntax `core.money.parse_amount` takes
# (ASCII digits, at most two decimals, more than zero, at most 999999999999.99), so that generated clients and
# fuzzers send what the service accepts.
AMOUNT_PATTERN = r"^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,11}(\.[0-9]{1,2})?)$"
AMOUNT_OR_ZERO_PATTERN = r"^(0|0\.[0-9]{1,2}|[1-9][0-9]{0,11}(\.[0-9]{1,2})?)$"
AMOUNT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": AMOUNT_PATTERN, "example": "125.50"}
AMOUNT_OR_ZERO_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": AMOUNT_OR_ZERO_PATTERN,
    "example": "0.00",
}
# The Idempotency-Key header: 1 to 200 characters (the service strips blanks and refuses longer keys).
IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,200}$"}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", IDEMPOTENCY_KEY_SCHEMA, OpenApiParameter.HEADER, required=True
)

logger = logging.getLogger(__name__)


class TenantAPIView(APIView):
    """Runs the handler inside `tenant_context` of the caller's tenant (one transaction, RLS-scoped)."""

    required_scopes: dict[str, list[str]] = {}
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]

    @property
    def identity(self) -> Identity:
        assert isinstance(self.request.auth, Identity)
        return self.request.auth

    @property
    def tenant_slug(self) -> str:
        return self.identity.tenant

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # APIView.dispatch, with the handler run inside the caller's tenant transaction.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)
            method = (request.method or "").lower()
            if method in self.http_method_names:
                handler = getattr(self, method, self.http_method_not_allowed)
            else:
                handler = self.http_method_not_allowed
            with tenant_context(self.tenant_slug):
                response = handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response


class DefaultCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-created_at"

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        """A cursor the caller tampered with is invalid input (400), not a 404 or a 500."""
        try:
            return super().paginate_queryset(queryset, request, view)
        except (drf_exceptions.NotFound, DjangoValidationError, ValueError, TypeError) as exc:
            raise InvalidCursor(field="cursor") from exc


def replayable_response(data: Any, *, status: int, replayed: bool) -> Response:
    """The answer of an idempotent write: a replay has the first answer's status and `Idempotent-Replayed: true`."""
    response = Response(data, status=status)
    if replayed:
        response[REPLAYED_HEADER] = "true"
    return response


def idempotency_key_from(request: Request, *, required: bool = True) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        if required:
            raise InvalidInput(
                "This request needs an Idempotency-Key header.", code="missing_idempotency_key"
            )
        return None
    if len(key) > 200:
        raise InvalidInput(
            "The Idempotency-Key is longer than 200 characters.", code="invalid_idempotency_key"
        )
    return key


def _validation_details(detail: Any) -> Any:
    """DRF's nested ErrorDetail structure as {field: [{"code", "message"}]}."""
    if isinstance(detail, dict):
        return {key: _validation_details(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_validation_details(item) for item in detail]
    return {"code": getattr(detail, "code", "invalid"), "message": str(detail)}


# DRF's own per-field codes stay in `details`; the body's code is then the generic `validation_error`.
_DRF_GENERIC_CODES = {
    "invalid",
    "required",
    "null",
    "blank",
    "invalid_choice",
    "max_length",
    "min_length",
    "max_value",
    "min_value",
    "max_digits",
    "max_decimal_places",
    "max_whole_digits",
    "not_a_list",
    "empty",
    "not_a_dict",
    "date",
    "datetime",
    "time",
    "format",
    "unique",
    "does_not_exist",
    "incorrect_type",
    "no_match",
    "parse_error",
    "max_string_length",
    "overflow",
    "invalid_image",
    "no_name",
    "null_characters_not_allowed",
    "surrogate_characters_not_allowed",
}

_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.NotAuthenticated: "missing_token",
    drf_exceptions.AuthenticationFailed: "invalid_token",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.Throttled: "throttled",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The single REST error shape: {"code", "message", "details"}; never an HTML 500."""
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("Database unavailable: %s", exc)
        exc = DatabaseUnavailable()
    elif isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        exc = RequestTooLarge(limit_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, drf_exceptions.ValidationError):
        error: DomainError = ValidationFailed()
        error.details = {"fields": _validation_details(exc.detail)}
        first = _first_field_error(error.details["fields"])
        if first:
            field_name, code, message = first
            error.message = f"{field_name}: {message}" if field_name else message
            if code and code not in _DRF_GENERIC_CODES:
                # Custom validators carry a stable domain code (invalid_phone, invalid_document, ...).
                error.code = code
        return Response(error_body(error), status=400)

    if isinstance(exc, DomainError):
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if mapping_for(exc).http_status == 401 else None
        return Response(error_body(exc), status=mapping_for(exc).http_status, headers=headers)

    if isinstance(exc, drf_exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        body = error_body(DomainError(str(exc.detail), code=code))
        response = Response(body, status=exc.status_code)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait:
            response["Retry-After"] = str(int(wait))
        return response

    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        error_body(DomainError("An unexpected error occurred.", code="internal_error")),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _first_field_error(fields: Any, prefix: str = "") -> tuple[str, str, str] | None:
    if isinstance(fields, dict) and "code" in fields and "message" in fields and len(fields) == 2:
        return prefix, str(fields["code"]), str(fields["message"])
    if isinstance(fields, dict):
        for key, value in fields.items():
            name = key if key != "non_field_errors" else ""
            found = _first_field_error(value, f"{prefix}.{name}" if prefix and name else (name or prefix))
            if found:
                return found
    if isinstance(fields, list):
        for item in fields:
            found = _first_field_error(item, prefix)
            if found:
                return found
    return None


__all__ = [
    "BearerTokenAuthentication",
    "DefaultCursorPagination",
    "HasRequiredScopes",
    "MissingScope",
    "Principal",
    "TenantAPIView",
    "exception_handler",
    "idempotency_key_from",
]


# --- The doors' toolkit: who acts, strict input ---------------------------------------------------------------------
def actor_of(source: TenantAPIView | HttpRequest) -> str:
    """Who a call acts as, for the audit fields of what it writes: `api:<user id of the token>` for a REST view,
    `admin:<username>` for a request of the admin site."""
    if isinstance(source, HttpRequest):
        return f"admin:{source.user.get_username()}"
    return f"api:{source.identity.user_id}"


class StrictFieldsMixin:
    """Refuses fields the serializer does not know (`unknown_field`): a misspelt `dry_run` must never turn a
    quote into a redemption, nor a typo such as `curency` be ignored without a word."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in set(data) - set(self.fields))  # type: ignore[attr-defined]
            if unknown:
                raise drf_serializers.ValidationError(
                    {
                        name: [ErrorDetail("This field is not known.", code="unknown_field")]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictInput(StrictFieldsMixin, drf_serializers.Serializer):
    """An input body that refuses fields it does not know."""
