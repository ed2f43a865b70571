"""What every hold shares (credit reserved for a checkout, points reserved for a sale): when it ends.

A hold reserves part of a balance for a short while; the app keeps the held total on the locked balance row, so
availability stays one row read. Both kinds end the same way: by the caller's expiry, or the default one, never in
the past and never beyond a bound, and the same refusal (`invalid_hold_expiry`) at every door.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.errors import InvalidInput


def _refused(longest: timedelta, field: str) -> InvalidInput:
    return InvalidInput(
        f"{field} must be in the future and within {_spoken(longest)}.",
        code="invalid_hold_expiry",
        field=field,
    )


def _spoken(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} days"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def hold_expiry(
    *,
    now: datetime,
    default: timedelta,
    longest: timedelta,
    expires_at: datetime | None = None,
    ttl_seconds: Any = None,
) -> datetime:
    """When a hold placed `now` ends: `expires_at`, or `now + ttl_seconds`, or `now + default`; at most `longest`
    from now. A bad value is `invalid_hold_expiry` (400 / INVALID_ARGUMENT), never a 500."""
    if expires_at is not None and ttl_seconds is not None:
        raise InvalidInput(
            "Give at most one of expires_at and ttl_seconds.", code="invalid_hold_expiry", field="ttl_seconds"
        )
    field = "expires_at"
    if ttl_seconds is not None:
        field = "ttl_seconds"
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
            raise _refused(longest, field)
        if ttl_seconds > longest.total_seconds():
            raise _refused(longest, field)
        expires_at = now + timedelta(seconds=ttl_seconds)
    expires = expires_at or now + default
    if expires <= now or expires > now + longest:
        raise _refused(longest, field)
    return expires
