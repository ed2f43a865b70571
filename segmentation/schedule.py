"""Periodic tasks of the segmentation app (merged into CELERY_BEAT_SCHEDULE by the settings)."""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Hourly: each tenant is recomputed once a night, at SEGMENTATION_LOCAL_HOUR in its own time zone (or at the
    # first tick after it, should the workers have been down then).
    "segmentation-rfm-nightly": {"task": "segmentation.rfm_dispatch", "schedule": crontab(minute=15)},
}
