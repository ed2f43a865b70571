"""Celery tasks of the event plumbing: relay the outbox, prune what was published or consumed long ago."""

from __future__ import annotations

from celery import shared_task

from core.relay import outbox_prune, outbox_relay, processed_events_prune


@shared_task(name="core.outbox_relay", ignore_result=True)
def outbox_relay_task() -> int:
    """Publish due outbox rows (beat every few seconds, and kicked after each commit that recorded events)."""
    return outbox_relay().published


@shared_task(name="core.outbox_prune", ignore_result=True)
def outbox_prune_task() -> dict[str, int]:
    """Daily: drop published outbox rows past OUTBOX_RETENTION_DAYS and old dedupe records of consumed events."""
    return {"outbox": outbox_prune(), "processed_events": processed_events_prune()}
