"""One idempotency mechanism for every door: claim the key first, do the work in the same transaction, replay the
first result on a repeat.

`idempotent()` inserts the key's `IdempotencyRecord` (`INSERT ... ON CONFLICT DO NOTHING`) before any work, in a
savepoint when it runs nested inside another block (see `_needs_savepoint`). A concurrent duplicate blocks on the unique index until the first transaction ends, then either replays
its committed result or (the first one rolled back) claims the key itself: two requests with one key never both do
the work, whichever customer, line or account they touch. A refusal (`DomainError`) raised by the work rolls the
savepoint back with the claim, so a refused request does not spend its key; directly in the outermost transaction
(a door's `tenant_context`) the refusal rolls the whole transaction back, the claim with it, so no savepoint is
needed there. The same key with another payload is
`IdempotencyKeyReused` (422 / ALREADY_EXISTS).

The replay convention of the doors: REST answers a replay with the status code of the first answer and the header
`Idempotent-Replayed: true`; gRPC answers with the first message; an event consumer acks a duplicate delivery
without applying it again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import IdempotencyKeyReused
from core.models import IdempotencyRecord

REPLAYED_HEADER = "Idempotent-Replayed"
EVENTS_SCOPE = "events"  # the key space of consumed events: their event ids
KEY_CONSTRAINT = "idempotency_key_unique"


def fingerprint_of(payload: dict[str, Any]) -> str:
    """sha256 of the payload's canonical JSON (sorted keys, no spaces; decimals and dates as their text)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _claim(record: IdempotencyRecord) -> bool:
    """Insert the record unless its key is taken (then False); a concurrent claim of the key makes this wait."""
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, id, scope, key, operation, fingerprint, result, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, '{}'::jsonb, %s) "
            "ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING id",
            [
                record.tenant_id,
                record.pk,
                record.scope,
                record.key,
                record.operation,
                record.fingerprint,
                record.created_at,
            ],
        )
        claimed = cursor.fetchone() is not None
    record._state.adding = False
    record._state.db = connection.alias
    return claimed


def _needs_savepoint() -> bool:
    """A savepoint around the claim and the work, unless they run directly in the outermost transaction.

    Directly in the outermost block (a door's `tenant_context`: gRPC, REST, a consumed event's own claim) an error
    out of the work ends the whole transaction, so a savepoint would protect nothing and cost two statements. Nested
    in another block (an event handler's earn, which may catch a refusal and go on; a caller's own
    `transaction.atomic()`), the savepoint lets the caller go on without the refused work and its claim. Code that
    catches an error directly in the outermost block and goes on must give the call a savepoint of its own.
    """
    connection_ = transaction.get_connection()
    return not connection_.in_atomic_block or bool(connection_.savepoint_ids)


def _is_key_violation(exc: IntegrityError, constraints: tuple[str, ...]) -> bool:
    constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
    return constraint in (KEY_CONSTRAINT, *constraints)


def idempotent(
    *,
    tenant_id: str,
    scope: str,
    key: str,
    operation: str,
    payload: dict[str, Any],
    work: Callable[[IdempotencyRecord], dict[str, Any]],
    now: datetime | None = None,
    duplicate_constraints: tuple[str, ...] = (),
) -> tuple[dict[str, Any], bool]:
    """Run `work` once per `(tenant, scope, key)`; returns its JSON result and whether this call was a replay.

    `work` gets the claimed record (rows it writes may point at it) and returns what a repeat must answer. A repeat
    with the same payload gets that stored result back; with another payload, `IdempotencyKeyReused`.
    `duplicate_constraints` names other unique constraints whose violation by `work` means the same request won a
    race elsewhere (then the stored result is replayed, not the error raised).
    """
    fingerprint = fingerprint_of(payload)
    savepoint = _needs_savepoint()
    try:
        with transaction.atomic(savepoint=savepoint):
            record = IdempotencyRecord(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                scope=scope,
                key=key,
                operation=operation,
                fingerprint=fingerprint,
                created_at=now or timezone.now(),
            )
            if _claim(record):
                result = work(record)
                record.result = result
                record.save(update_fields=["result"])
                return result, False
    except IntegrityError as exc:
        # without a savepoint the transaction is aborted: the error ends it (the claim comes first, so a duplicate
        # constraint of the work cannot be lost to the same key there; only a nested call replays after it)
        if not savepoint or not _is_key_violation(exc, duplicate_constraints):
            raise
    found = IdempotencyRecord.objects.filter(tenant_id=tenant_id, scope=scope, key=key).first()
    if found is None:  # pragma: no cover - the conflicting row committed, so it is visible now
        raise RuntimeError(f"Idempotency key {key!r} conflicted but no record was found")
    if found.operation != operation or (found.fingerprint and found.fingerprint != fingerprint):
        raise IdempotencyKeyReused(field="idempotency_key", idempotency_key=key, operation=found.operation)
    return dict(found.result), True


# --- Migrations -----------------------------------------------------------------------------------------------
def copy_keys_into_records(select_sql: str) -> Any:
    """A migration step that copies an app's former idempotency rows into `IdempotencyRecord`, keeping every key.

    `select_sql` selects `(tenant_id, id, scope, key, operation, fingerprint, result, created_at)`. It runs once
    per tenant with that tenant's claim set, so it works under Row-Level Security (the owner is subject to it too).
    """
    from django.db import migrations

    columns = "tenant_id, id, scope, key, operation, fingerprint, result, created_at"
    # select_sql is the migration's own constant, never input
    insert = f"INSERT INTO core_idempotencyrecord ({columns}) SELECT * FROM ({select_sql}) AS old "  # noqa: S608
    insert += "WHERE old.tenant_id = %s ON CONFLICT (tenant_id, scope, key) DO NOTHING"

    def forwards(apps: Any, schema_editor: Any) -> None:
        from core.tenancy import scope_claim

        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT slug FROM core_tenant ORDER BY slug")
            slugs = [row[0] for row in cursor.fetchall()]
            for slug in slugs:
                cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [scope_claim(slug)])
                cursor.execute(insert, [slug])
            cursor.execute("SELECT set_config('app.tenant_id', '', true)")

    return migrations.RunPython(forwards, migrations.RunPython.noop)
