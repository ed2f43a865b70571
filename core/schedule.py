"""Periodic tasks of core (merged into CELERY_BEAT_SCHEDULE by the settings; no Django imports here)."""

import os

from celery.schedules import crontab

RELAY_INTERVAL_SECONDS = float(os.environ.get("OUTBOX_RELAY_INTERVAL_SECONDS") or 5)

BEAT_SCHEDULE = {
    "core.outbox-relay": {
        "task": "core.outbox_relay",
        "schedule": RELAY_INTERVAL_SECONDS,
        # a relay run that waited longer than its interval in the queue is superseded by the next one
        "options": {"expires": RELAY_INTERVAL_SECONDS * 2},
    },
    "core.outbox-prune": {"task": "core.outbox_prune", "schedule": crontab(hour=3, minute=17)},
}
