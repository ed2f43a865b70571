"""The Celery application: workers consume other services' events and run the nightly jobs.

The worker also runs the event consumer (`core.consumers.EventConsumerStep`, only with an AMQP broker) and the
outbox relay (`core.tasks`, every few seconds from beat and kicked after each commit that recorded events).

Every worker gets a node name of its own (`worker_node_name`): RabbitMQ allows one consumer per node name on the
remote-control queue, so a second worker named like the first (Celery's default `celery@<host>`) dies at start.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from celery import Celery
from celery.apps.worker import Worker
from celery.utils.nodenames import default_nodename, host_format

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DEFAULT_WORKER_NAME = "customer-service-{pid}@%h"


def worker_node_name(requested: str | None) -> str:
    """The node name of this worker process.

    An explicit `-n/--hostname` wins, unless it is Celery's own default `celery@<host>`; then CELERY_WORKER_NAME
    (Celery's %h, %n and %d expand), else `customer-service-<pid>@<host>`: unique per process on one host.
    """
    if requested and requested != default_nodename(None):
        return requested
    from django.conf import settings

    template = getattr(settings, "CELERY_WORKER_NAME", "") or DEFAULT_WORKER_NAME.format(pid=os.getpid())
    return host_format(template)


class NamedWorker(Worker):
    def __init__(self, app: Any = None, hostname: str | None = None, **kwargs: Any) -> None:
        super().__init__(app, hostname=worker_node_name(hostname), **kwargs)


class CustomerServiceCelery(Celery):
    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self(NamedWorker)


app = CustomerServiceCelery("zenlogic_customer")
app.config_from_object("django.conf:settings", namespace="CELERY")
if os.environ.get("CELERY_TASK_DEFAULT_QUEUE"):
    # a deployment (or a test run) of its own on a shared broker: its tasks never reach another's workers
    app.conf.task_default_queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
app.autodiscover_tasks()
# a string: loaded when the worker starts, after Django is set up
app.steps["worker"].add("core.consumers:EventConsumerStep")
