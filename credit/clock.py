"""The one clock credit reads (due dates, overdue, hold expiry), so tests can move time instead of sleeping.

`now()` is the wall clock unless `freeze()` / `set_now()` put a fixed instant in place; the override is
process-wide (not per thread) because the concurrency tests and the live server run services on other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

_lock = threading.Lock()
_fixed: datetime | None = None


def now() -> datetime:
    with _lock:
        fixed = _fixed
    return fixed if fixed is not None else timezone.now()


def today(tz: str | None = None) -> date:
    """Today's date in `tz` (a tenant's time zone), or in the project's time zone."""
    zone = ZoneInfo(tz) if tz else timezone.get_default_timezone()
    return now().astimezone(zone).date()


def set_now(value: datetime | None) -> None:
    """Fix the clock at `value` (aware datetime); None goes back to the wall clock."""
    global _fixed
    if value is not None and timezone.is_naive(value):
        raise ValueError("The credit clock needs an aware datetime")
    with _lock:
        _fixed = value


def advance(delta: timedelta) -> datetime:
    """Move a fixed clock forward (fixing it at the wall clock first)."""
    global _fixed
    with _lock:
        _fixed = (_fixed or timezone.now()) + delta
        return _fixed


@contextmanager
def freeze(value: datetime) -> Iterator[None]:
    with _lock:
        previous = _fixed
    set_now(value)
    try:
        yield
    finally:
        set_now(previous)
