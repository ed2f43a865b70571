"""`GET /health`: the status of the database, the cache and the broker; 503 when a required one is down."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlparse

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def check_database() -> None:
    """Reachable, and its scope key is this process's: with another key (a new SECRET_KEY before its `migrate`) the
    database would show this process no tenant at all."""
    from core.tenancy import ALL_TENANTS_SCOPE, scope_claim

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [scope_claim(ALL_TENANTS_SCOPE)])
        cursor.execute("SELECT core_tenant_scope()")
        if cursor.fetchone()[0] != ALL_TENANTS_SCOPE:
            raise RuntimeError(
                "the database's tenant scope key is not this process's: run `manage.py migrate`"
            )


def check_cache() -> None:
    key = "health:probe"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return the value just written")


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):  # no broker configured: nothing to reach
        return
    parsed = urlparse(url)
    default_port = 6379 if parsed.scheme.startswith("redis") else 5672
    with socket.create_connection((parsed.hostname or "localhost", parsed.port or default_port), timeout=1):
        pass


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def run_checks() -> tuple[bool, dict[str, dict[str, object]]]:
    results: dict[str, dict[str, object]] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            healthy = False
            results[name] = {"status": "down", "reason": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"status": "up"}
        results[name]["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return healthy, results


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    healthy, results = run_checks()
    body = {"status": "ok" if healthy else "unavailable", "checks": results}
    return JsonResponse(body, status=200 if healthy else 503)
