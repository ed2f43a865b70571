"""Periodic tasks of credit (merged into CELERY_BEAT_SCHEDULE by the settings; no Django imports here)."""

from typing import Any

from celery.schedules import crontab


def beat_schedule(settings: dict[str, Any]) -> dict[str, Any]:
    interval = settings["CREDIT_HOLD_EXPIRY_INTERVAL_SECONDS"]
    return {
        # Nightly: charges past due become overdue; lines overdue past the grace period go on hold.
        "credit.overdue": {"task": "credit.overdue_process", "schedule": crontab(hour=2, minute=30)},
        # Checkout holds whose time is up give their amount back.
        "credit.holds-expire": {
            "task": "credit.holds_expire",
            "schedule": interval,
            "options": {"expires": interval},
        },
    }
