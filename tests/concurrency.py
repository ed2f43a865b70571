"""Racing real threads against real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

# At most this many threads hold a database connection at once (the server's max_connections is shared with other
# test runs); the rest wait at the semaphore, and all of them still race for the same rows.
MAX_CONNECTIONS = 20


def run_threads(
    count: int, work: Callable[[int], Any], *, max_connections: int = MAX_CONNECTIONS
) -> list[Any]:
    """Run `work(i)` on `count` threads released together; return each result or the exception it raised."""
    start = threading.Barrier(count)
    slots = threading.BoundedSemaphore(max_connections)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        start.wait(timeout=30)
        with slots:
            try:
                results[i] = work(i)
            except Exception as exc:
                results[i] = exc
            finally:
                connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results
