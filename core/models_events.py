"""The record of events consumed from other services, and the after-commit kick of the outbox relay.

Imported at the bottom of core/models.py so that Django sees the model and the signal is connected in every process.
"""

from __future__ import annotations

from django.db import models
from django.db.models.signals import post_save

from core.models import OutboxEvent, TenantOwned


class ProcessedEvent(TenantOwned):
    """An event of another service applied here, recorded in the same transaction as its effect.

    The unique (tenant, event_id) makes a redelivered or duplicated event a no-op: the consumer inserts this row
    first (`ON CONFLICT DO NOTHING`), so a second delivery either finds it or waits for the first to commit.
    """

    event_id = models.UUIDField()
    event_type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(
        max_length=200, blank=True, help_text="applied, or why part of the effect was skipped."
    )

    class Meta:
        app_label = "core"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="processed_event_unique_per_tenant"),
        ]
        indexes = [models.Index(fields=["processed_at"], name="processed_event_time_idx")]
        ordering = ["-processed_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


def _outbox_row_created(
    sender: type[OutboxEvent], instance: OutboxEvent, created: bool, **kwargs: object
) -> None:
    """Kick the relay once the transaction that recorded an event commits (beat is the safety net)."""
    if created and not kwargs.get("raw"):
        from core.relay import relay_kick_after_commit

        relay_kick_after_commit()


post_save.connect(_outbox_row_created, sender=OutboxEvent, dispatch_uid="core.outbox.relay_kick")
