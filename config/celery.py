"""The Celery application: workers consume other services' events and run the nightly jobs."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("zenlogic_customer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
