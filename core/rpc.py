"""What every gRPC method shares: the bearer token, scopes, the tenant transaction, the error map and metrics.

A servicer method is written as `def Method(self, request, call: RpcCall) -> Response` and decorated with
`@rpc_method(scopes=[...])`. The decorator, around each call:

- closes stale database connections before and after (each server thread holds its own connection);
- verifies `authorization: Bearer <token>` with the same verifier as REST (`UNAUTHENTICATED`), refuses a token of
  an unknown tenant and a token without the method's scopes (`PERMISSION_DENIED`);
- runs the method inside `tenant_context` of the caller's tenant (one transaction, RLS-scoped), unless the method
  opens it itself (`tenant_transaction=False`, for answers served from the cache without touching the database);
- maps a `DomainError` through `core.errors.mapping_for` (status, message, trailing metadata `error-code`); a lost
  database connection is `UNAVAILABLE` (`database_unavailable`: retry); any other exception is logged with its
  traceback and answered `INTERNAL` with no internals;
- counts calls, their outcome and latency per method in Prometheus metrics (see `start_metrics_server`).

Input checks shared by the servicers (`uuid_field`, `text_field`, `amount_field`, `points_field`) turn malformed
input into `INVALID_ARGUMENT` before it reaches a service or the database.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import grpc
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, close_old_connections
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram

from core.auth import Identity, authenticate
from core.errors import DomainError, InvalidInput, ServiceUnavailable, mapping_for
from core.logs import new_request_id, request_id_var
from core.money import parse_amount
from core.tenancy import tenant_cached, tenant_context

if TYPE_CHECKING:
    from core.models import Tenant

logger = logging.getLogger(__name__)

# --- Metrics (names as in go-grpc-prometheus, so existing dashboards work) --------------------------------------
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method"]
)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code (every code but OK is an error).",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_ERRORS = Counter(
    "grpc_server_errors_total",
    "RPCs that failed, by status code and the stable error code sent in `error-code`.",
    ["grpc_service", "grpc_method", "grpc_code", "error_code"],
)
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC on the server, until the response or error is ready.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from outside
    """Serve this process's Prometheus registry over HTTP (the gRPC process has no web server of its own)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr)


# --- The caller -------------------------------------------------------------------------------------------------
@dataclass
class RpcCall:
    """What a servicer method knows about its call besides the request message."""

    identity: Identity
    method: str
    context: grpc.ServicerContext

    @property
    def tenant_slug(self) -> str:
        return self.identity.tenant

    @property
    def tenant(self) -> Tenant:
        return tenant_cached(self.identity.tenant)

    @property
    def actor(self) -> str:
        return f"grpc:{self.identity.user_id}"[:200]


class MalformedRequest:
    """Stands in for a request message that could not be parsed (answered INVALID_ARGUMENT, not INTERNAL)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def request_deserializer(message_class: Any) -> Callable[[bytes], Any]:
    """grpcio answers INTERNAL when parsing fails; this keeps the failure for the method to answer properly."""

    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return MalformedRequest(str(exc))

    return deserialize


# --- The decorator ----------------------------------------------------------------------------------------------
# grpcio runs every call in a fresh, empty `contextvars.Context`. Django keeps its cache connections in an asgiref
# Local that lives in the context, so each call would build a new cache client and open a new connection to Redis.
# Each worker thread therefore runs its calls in a context of its own that lasts as long as the thread.
_thread_context = threading.local()


def _run_in_thread_context(function: Callable[[], Any]) -> Any:
    context = getattr(_thread_context, "context", None)
    if context is None:
        context = _thread_context.context = contextvars.Context()
    return context.run(function)


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Any, Req, RpcCall], Resp]
Handler = Callable[[Any, Req, grpc.ServicerContext], Resp]

INTERNAL_MESSAGE = "An unexpected error occurred."
DATABASE_UNAVAILABLE = ServiceUnavailable(
    "The database is unavailable; retry shortly (with the same idempotency key).", code="database_unavailable"
)
_MAX_DETAILS_LENGTH = 4000


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found.setdefault(key.lower(), value)
    return found


def _error_trailers(error: DomainError) -> list[tuple[str, str]]:
    trailers = [("error-code", error.code)]
    if error.details:
        details = json.dumps(error.details, cls=DjangoJSONEncoder, ensure_ascii=True, default=str)
        if len(details) <= _MAX_DETAILS_LENGTH:
            trailers.append(("error-details", details))
    return trailers


def rpc_method(
    *, scopes: Sequence[str], tenant_transaction: bool = True
) -> Callable[[Method[Req, Resp]], Handler[Req, Resp]]:
    """Turn `method(self, request, call)` into a gRPC handler `(self, request, context)` (see the module doc)."""
    required = tuple(scopes)

    def decorate(method: Method[Req, Resp]) -> Handler[Req, Resp]:
        name = method.__name__

        @functools.wraps(method)
        def handler(self: Any, request: Req, context: grpc.ServicerContext) -> Resp:
            return _run_in_thread_context(lambda: call_method(self, request, context))  # type: ignore[no-any-return]

        def call_method(self: Any, request: Req, context: grpc.ServicerContext) -> Resp:
            service = getattr(self, "rpc_service_name", type(self).__name__)
            started = time.perf_counter()
            RPC_STARTED.labels(service, name).inc()
            metadata = _metadata(context)
            request_id = new_request_id(metadata.get("x-request-id"))
            token = request_id_var.set(request_id)
            error: DomainError | None = None
            status = grpc.StatusCode.OK
            response: Any = None
            try:
                close_old_connections()
                identity = authenticate(metadata.get("authorization"))
                tenant_cached(identity.tenant)
                identity.require(*required)
                if isinstance(request, MalformedRequest):
                    raise InvalidInput(
                        "The request message could not be parsed.",
                        code="malformed_request",
                        reason=request.reason,
                    )
                call = RpcCall(identity=identity, method=name, context=context)
                if tenant_transaction:
                    with tenant_context(identity.tenant):
                        response = method(self, request, call)
                else:
                    response = method(self, request, call)
            except DomainError as exc:
                try:
                    status = mapping_for(exc).grpc_status
                    error = exc
                except LookupError:
                    logger.exception("gRPC %s/%s raised an error outside every category", service, name)
                    status, error = grpc.StatusCode.INTERNAL, None
            except (OperationalError, InterfaceError):
                # the database is down or dropped the connection: transient, the caller may retry (same key)
                logger.exception("Database unavailable in gRPC %s/%s", service, name)
                status, error = grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE
            except Exception:
                logger.exception("Unhandled error in gRPC %s/%s", service, name)
                status = grpc.StatusCode.INTERNAL
            finally:
                close_old_connections()
                request_id_var.reset(token)
                RPC_LATENCY.labels(service, name).observe(time.perf_counter() - started)
                RPC_HANDLED.labels(service, name, status.name).inc()

            trailers: list[tuple[str, str]] = [("x-request-id", request_id)]
            if status is grpc.StatusCode.OK:
                context.set_trailing_metadata(trailers)
                return response
            if error is not None:
                RPC_ERRORS.labels(service, name, status.name, error.code).inc()
                context.set_trailing_metadata([*trailers, *_error_trailers(error)])
                context.abort(status, error.message)
            RPC_ERRORS.labels(service, name, status.name, "internal_error").inc()
            context.set_trailing_metadata([*trailers, ("error-code", "internal_error")])
            context.abort(status, INTERNAL_MESSAGE)
            raise AssertionError("grpc.ServicerContext.abort always raises")  # pragma: no cover

        handler.rpc_scopes = required  # type: ignore[attr-defined]
        return handler

    return decorate


def is_rpc_method(handler: Any) -> bool:
    """Whether a servicer attribute went through `rpc_method` (the server refuses to expose one that did not)."""
    return isinstance(getattr(handler, "rpc_scopes", None), tuple)


# --- Input checks -----------------------------------------------------------------------------------------------
MAX_POINTS = 10**12  # as loyalty.services: far beyond any real balance, well within int64


def text_field(value: str, *, field: str, max_length: int, required: bool = False) -> str:
    """A stripped string of at most `max_length` characters, without control characters (NUL breaks SQL)."""
    text = value.strip()
    if not text:
        if required:
            raise InvalidInput(f"{field} is required.", code=f"missing_{field}", field=field)
        return ""
    if len(text) > max_length:
        raise InvalidInput(
            f"{field} is longer than {max_length} characters.",
            code=f"invalid_{field}",
            field=field,
            max_length=max_length,
        )
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise InvalidInput(f"{field} contains control characters.", code=f"invalid_{field}", field=field)
    return text


def uuid_field(value: str, *, field: str = "customer_id") -> UUID:
    text = value.strip()
    if not text:
        raise InvalidInput(f"{field} is required.", code=f"missing_{field}", field=field)
    try:
        if len(text) > 36:
            raise ValueError(text)
        return UUID(text)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a UUID.", code=f"invalid_{field}", field=field) from exc


def amount_field(value: str, *, field: str = "amount") -> Decimal:
    """A positive decimal string with at most two decimals (`invalid_amount` otherwise)."""
    return parse_amount(value, field=field)


def points_field(value: int, *, field: str = "points") -> int:
    if value <= 0 or value > MAX_POINTS:
        raise InvalidInput(
            f"{field} must be a whole number between 1 and {MAX_POINTS}.",
            code="invalid_points",
            field=field,
        )
    return int(value)
