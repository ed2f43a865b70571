# ruff: noqa: S603  (the test starts the project's own Celery workers)
"""Two Celery workers of this service on one host and one RabbitMQ: unique node names, both up, both consuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import PROJECT_ROOT, database_url_for_tests, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.processes, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_workers(broker: Any, django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    with django_db_blocker.unblock():
        database_url = database_url_for_tests()
    queue = f"zltest-names-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_WORKER_NAME", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    # as a process manager would start them: the same command twice, no -n, remote control on (its default)
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "--concurrency", "1"]
    logs = [tempfile.NamedTemporaryFile(prefix="zltest-names-", delete=False) for _ in range(2)]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        for log in logs
    ]
    try:
        yield {"queue": queue, "processes": processes, "logs": [Path(log.name) for log in logs]}
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            Path(log.name).unlink(missing_ok=True)


def test_two_workers_on_one_host_both_stay_up_and_both_consume(
    two_workers: dict[str, Any], broker: Any
) -> None:
    from config.celery import app
    from core.tasks import outbox_relay_task

    processes = two_workers["processes"]
    names = [f"customer-service-{p.pid}@{os.uname().nodename}" for p in processes]

    def consuming() -> bool:
        for process, log in zip(processes, two_workers["logs"], strict=True):
            if process.poll() is not None:
                raise AssertionError(f"a worker exited ({process.returncode}):\n{log.read_text()[-5000:]}")
        depth = broker.depth(two_workers["queue"])
        return depth is not None and depth[1] == 2

    wait_until(consuming, timeout=90, interval=0.5, what="both workers to consume the task queue")
    replies = wait_until(
        lambda: (
            {name for reply in app.control.ping(destination=names, timeout=2) for name in reply} == set(names)
        ),
        timeout=30,
        what="both workers to answer remote control under their own names",
    )
    assert replies
    for _ in range(20):
        outbox_relay_task.apply_async(queue=two_workers["queue"])

    def executed() -> dict[str, int]:
        stats = app.control.inspect(destination=names, timeout=2).stats() or {}
        counts = {name: sum(stats.get(name, {}).get("total", {}).values()) for name in names}
        return counts if sum(counts.values()) >= 20 else {}

    counts = wait_until(executed, timeout=60, interval=0.5, what="the 20 tasks to be executed")
    assert all(counts[name] > 0 for name in names), counts
    assert all(p.poll() is None for p in processes)


def test_the_node_name_is_unique_per_process_unless_set(settings: Any) -> None:
    from celery.utils.nodenames import default_nodename

    from config.celery import worker_node_name

    host = os.uname().nodename
    settings.CELERY_WORKER_NAME = ""
    assert worker_node_name(None) == f"customer-service-{os.getpid()}@{host}"
    assert (
        worker_node_name(default_nodename(None)) == f"customer-service-{os.getpid()}@{host}"
    )  # Celery's default
    assert worker_node_name("pos-sync@box") == "pos-sync@box"  # an explicit -n wins
    settings.CELERY_WORKER_NAME = "worker-3@%h"  # e.g. from a process manager's instance number
    assert worker_node_name(None) == f"worker-3@{host}"
