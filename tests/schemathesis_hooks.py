"""Schemathesis hooks for `tests/test_schemathesis.py` (loaded through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """A fresh Idempotency-Key (and payment id) for every request that carries one, as a client makes one per
    operation: the service refuses a key used again with another body (422 `idempotency_key_reused`), by
    design."""
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if isinstance(case.body, dict) and "payment_id" in case.body:  # a payment's own id is its idempotency key
        case.body["payment_id"] = uuid.uuid4().hex
