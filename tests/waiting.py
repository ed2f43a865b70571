"""Waiting for something another process does (a worker, a server, the supervisor), with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    """The first truthy value of `predicate()`, polled every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def stop_process_group(process: subprocess.Popen[Any], *, grace: float) -> None:
    """SIGTERM the process's group (it was started with `start_new_session=True`), SIGKILL it after `grace` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
