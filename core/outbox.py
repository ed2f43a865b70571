"""Recording events in the transactional outbox (publishing them is the relay's job)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from core.models import OutboxEvent
from core.writes import Statement, insert_statement

EVENT_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Decimals, UUIDs and datetimes as strings, the way they travel on the wire."""
    import json

    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def outbox_event(
    *, tenant_id: str, event_type: str, data: dict[str, Any], aggregate_id: str = ""
) -> OutboxEvent:
    """The event in the contract's envelope, not saved yet: for a caller that inserts it together with its own
    writes (`core.writes`), in its transaction."""
    event_id = uuid.uuid4()
    occurred_at = timezone.now()
    envelope = {
        "event_id": str(event_id),
        "event_type": event_type,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "tenant_id": tenant_id,
        "version": EVENT_VERSION,
        "data": _jsonable(data),
    }
    return OutboxEvent(
        event_id=event_id,
        tenant_id=tenant_id,
        event_type=event_type,
        occurred_at=occurred_at,
        aggregate_id=str(aggregate_id),
        payload=envelope,
    )


def outbox_statement(event: OutboxEvent) -> Statement:
    """The INSERT of an `outbox_event()` for `core.writes.write_together`; the relay is kicked after the commit,
    as for `outbox_record` (the post_save signal does not fire for it)."""
    from core.relay import relay_kick_after_commit

    relay_kick_after_commit()
    return insert_statement([event])


@transaction.atomic(savepoint=False)  # one insert: a failure aborts the caller's transaction anyway
def outbox_record(
    *, tenant_id: str, event_type: str, data: dict[str, Any], aggregate_id: str = ""
) -> OutboxEvent:
    """Record an event in the caller's transaction, in the contract's envelope."""
    event = outbox_event(tenant_id=tenant_id, event_type=event_type, data=data, aggregate_id=aggregate_id)
    event.save(force_insert=True)
    return event
