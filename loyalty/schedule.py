"""Periodic tasks of loyalty (merged into CELERY_BEAT_SCHEDULE by the settings; no Django imports here)."""

from typing import Any

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Hourly: pending points whose return window has passed become spendable.
    "loyalty.release-pending": {"task": "loyalty.release_pending_points", "schedule": crontab(minute=7)},
    # Nightly: awards past their date expire; then tiers due for review follow the downgrade policy and manual
    # overrides past their date end. (Every service also matures the account it touches, so the results do not
    # depend on when these last ran.)
    "loyalty.expire-points": {"task": "loyalty.expire_points", "schedule": crontab(hour=3, minute=5)},
    "loyalty.review-tiers": {"task": "loyalty.review_tiers", "schedule": crontab(hour=3, minute=35)},
}


def beat_schedule(settings: dict[str, Any]) -> dict[str, Any]:
    """The jobs above, and holds past their time releasing their points every LOYALTY_HOLD_EXPIRY_INTERVAL_SECONDS
    (every operation on an account releases its own first, so availability does not wait for this job)."""
    interval = settings["LOYALTY_HOLD_EXPIRY_INTERVAL_SECONDS"]
    return {
        **BEAT_SCHEDULE,
        "loyalty.holds-expire": {
            "task": "loyalty.expire_holds",
            "schedule": interval,
            "options": {"expires": interval},
        },
    }
