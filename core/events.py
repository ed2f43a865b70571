"""Events of other services as this service applies them: the envelope, the errors that decide a message's fate,
the field readers every handler shares, and the registry of handlers.

Core knows no app. Each app declares what it does with an event in its own `handlers.py`
(`@event_handler("order.completed", order=10)`), imported by its `AppConfig.ready()`. The consumer runs every handler
of an event, in their declared order, inside the one transaction that claims the event id, so an event applies all
of its effects or none.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime


# --- errors that decide a message's fate ------------------------------------------------------------------------
class PoisonMessage(Exception):
    """The message can never be applied as it is: dead-letter it with `reason` (a stable snake_case code)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CustomerNotYetKnown(Exception):
    """The event names a customer this tenant does not have (yet): park the message and try again later."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} not found")
        self.customer_id = customer_id


# --- the envelope -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    event_type: str
    tenant_id: str
    occurred_at: datetime | None
    version: int
    data: dict[str, Any]


def envelope_parse(body: bytes | str, *, expected_type: str) -> Envelope:
    """The contract's envelope, or PoisonMessage saying what is wrong with it."""
    try:
        payload = json.loads(body, parse_float=Decimal)  # decimals in JSON numbers are read exactly
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise PoisonMessage("malformed_json", str(exc)[:300]) from exc
    if not isinstance(payload, dict):
        raise PoisonMessage("invalid_envelope", "the body is not a JSON object")
    try:
        event_id = uuid.UUID(str(payload.get("event_id")))
    except ValueError as exc:
        raise PoisonMessage(
            "invalid_event_id", f"event_id {payload.get('event_id')!r} is not a UUID"
        ) from exc
    event_type = payload.get("event_type")
    if event_type != expected_type:
        raise PoisonMessage("unexpected_event_type", f"expected {expected_type!r}, got {event_type!r}")
    tenant_id = payload.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id.strip() or len(tenant_id) > 63:
        raise PoisonMessage("invalid_tenant_id", f"tenant_id {tenant_id!r} is not a tenant slug")
    version = payload.get("version", 1)
    if version != 1:
        raise PoisonMessage("unsupported_version", f"version {version!r}; this consumer reads version 1")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PoisonMessage("invalid_data", "data is missing or not an object")
    occurred_at = payload.get("occurred_at")
    return Envelope(
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant_id.strip(),
        occurred_at=optional_timestamp(occurred_at),
        version=1,
        data=data,
    )


def optional_timestamp(value: Any) -> datetime | None:
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and not timezone.is_naive(moment) else None


def required_str(data: dict[str, Any], name: str, *, max_length: int = 100) -> str:
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PoisonMessage("invalid_data", f"data.{name} is required")
    if len(value.strip()) > max_length:
        raise PoisonMessage("invalid_data", f"data.{name} is longer than {max_length} characters")
    return value.strip()


def timestamp(data: dict[str, Any], name: str) -> datetime:
    value = data.get(name)
    moment = optional_timestamp(value)
    if moment is None:
        raise PoisonMessage("invalid_timestamp", f"data.{name} {value!r} is not an RFC 3339 time with offset")
    return moment


def customer_uuid(value: Any) -> uuid.UUID | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return uuid.UUID(str(value).strip())
    except ValueError as exc:
        raise PoisonMessage("invalid_customer_id", f"customer_id {value!r} is not a UUID") from exc


# --- the registry ----------------------------------------------------------------------------------------------
@dataclass
class EventContext:
    """What the handlers of one event share: the envelope, and the facts earlier handlers established for later
    ones (for example the purchase the customers app recorded, which loyalty earns points on)."""

    envelope: Envelope
    facts: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[EventContext], str]


@dataclass(frozen=True)
class RegisteredHandler:
    event_type: str
    order: int
    name: str
    handle: Handler = field(compare=False)


_handlers: dict[str, list[RegisteredHandler]] = {}


def event_handler(event_type: str, *, order: int) -> Callable[[Handler], Handler]:
    """Declare `handle(context) -> outcome` as a handler of `event_type`; handlers run in ascending `order`. An
    outcome is a short text recorded with the event (`applied`, `; points_skipped:insufficient_points`, ...)."""

    def register(handle: Handler) -> Handler:
        name = f"{handle.__module__}.{handle.__qualname__}"
        registered = _handlers.setdefault(event_type, [])
        if any(h.name == name for h in registered):  # imported twice (tests, autoreload): registered once
            return handle
        registered.append(RegisteredHandler(event_type, order, name, handle))
        registered.sort(key=lambda h: (h.order, h.name))
        return handle

    return register


def event_handlers(event_type: str) -> list[RegisteredHandler]:
    return list(_handlers.get(event_type, ()))


def event_handle(envelope: Envelope) -> str:
    """Run every handler of the envelope's type in order (in the caller's transaction); the joined outcomes."""
    handlers = event_handlers(envelope.event_type)
    if not handlers:
        raise PoisonMessage("unhandled_event_type", f"no handler of {envelope.event_type!r} is registered")
    context = EventContext(envelope)
    return "".join(handler.handle(context) for handler in handlers)
