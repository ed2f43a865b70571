"""Periodic tasks of core (merged into CELERY_BEAT_SCHEDULE by the settings; no Django imports here)."""

from typing import Any

from celery.schedules import crontab


def beat_schedule(settings: dict[str, Any]) -> dict[str, Any]:
    interval = settings["OUTBOX_RELAY_INTERVAL_SECONDS"]
    return {
        "core.outbox-relay": {
            "task": "core.outbox_relay",
            "schedule": interval,
            # a relay run that waited longer than its interval in the queue is superseded by the next one
            "options": {"expires": interval * 2},
        },
        "core.outbox-prune": {"task": "core.outbox_prune", "schedule": crontab(hour=3, minute=17)},
    }
