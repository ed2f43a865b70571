"""Periodic tasks of credit (merged into CELERY_BEAT_SCHEDULE by the settings; no Django imports here)."""

import os

from celery.schedules import crontab

HOLD_EXPIRY_INTERVAL_SECONDS = float(os.environ.get("CREDIT_HOLD_EXPIRY_INTERVAL_SECONDS") or 300)

BEAT_SCHEDULE = {
    # Nightly: charges past due become overdue; lines overdue past the grace period go on hold.
    "credit.overdue": {"task": "credit.overdue_process", "schedule": crontab(hour=2, minute=30)},
    # Checkout holds whose time is up give their amount back.
    "credit.holds-expire": {
        "task": "credit.holds_expire",
        "schedule": HOLD_EXPIRY_INTERVAL_SECONDS,
        "options": {"expires": HOLD_EXPIRY_INTERVAL_SECONDS},
    },
}
