"""The Celery application: workers consume other services' events and run the nightly jobs.

The worker also runs the event consumer (`core.consumers.EventConsumerStep`, only with an AMQP broker) and the
outbox relay (`core.tasks`, every few seconds from beat and kicked after each commit that recorded events).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("zenlogic_customer")
app.config_from_object("django.conf:settings", namespace="CELERY")
if os.environ.get("CELERY_TASK_DEFAULT_QUEUE"):
    # a deployment (or a test run) of its own on a shared broker: its tasks never reach another's workers
    app.conf.task_default_queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
app.autodiscover_tasks()
# a string: loaded when the worker starts, after Django is set up
app.steps["worker"].add("core.consumers:EventConsumerStep")
