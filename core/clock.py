"""The one clock every service reads (loyalty, credit, idempotency records), so that tests (and replays of old
events) can move time.

Pending release, expiry, the tier window, due dates, overdue runs and hold expiry all take "now" from `now()`. Tests freeze or
advance it with `frozen_at(...)` / `advance(...)` instead of sleeping. The setting is process-wide on purpose:
threads started by a concurrency test see the same time as the test itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

_lock = threading.Lock()
_frozen: datetime | None = None


def now() -> datetime:
    """The current time (timezone-aware), or the time a test froze."""
    frozen = _frozen
    return frozen if frozen is not None else timezone.now()


def today(tz: str | None = None) -> date:
    """Today's date in `tz` (a tenant's time zone), or in the project's time zone."""
    zone = ZoneInfo(tz) if tz else timezone.get_default_timezone()
    return now().astimezone(zone).date()


def freeze(at: datetime) -> None:
    """Stop the clock at `at` (aware) until `unfreeze()`; `frozen_at()` does the same for a block."""
    global _frozen
    if timezone.is_naive(at):
        raise ValueError("freeze() needs a timezone-aware datetime")
    with _lock:
        _frozen = at


def unfreeze() -> None:
    global _frozen
    with _lock:
        _frozen = None


def advance(delta: timedelta) -> datetime:
    """Move a frozen clock forward (freezing it at the real time first when it is not frozen)."""
    global _frozen
    with _lock:
        _frozen = (_frozen if _frozen is not None else timezone.now()) + delta
        return _frozen


@contextmanager
def frozen_at(at: datetime) -> Iterator[None]:
    """Freeze the clock at `at` for the block, then restore what it was."""
    global _frozen
    with _lock:
        previous = _frozen
    freeze(at)
    try:
        yield
    finally:
        with _lock:
            _frozen = previous
