"""Health, metrics, request ids, production settings."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_health_reports_each_dependency(client):
    response = client.get("/health")
    body = response.json()
    assert set(body["checks"]) == {"database", "cache", "broker"}
    assert body["checks"]["database"]["status"] == "up"
    assert response.status_code == (200 if body["status"] == "ok" else 503)


def test_health_is_503_with_the_reason_when_the_broker_is_down(client):
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["status"] == "down"
    assert (
        "Connection" in body["checks"]["broker"]["reason"] or "refused" in body["checks"]["broker"]["reason"]
    )


def test_health_with_the_real_redis(client, redis_url):
    with override_settings(
        CACHES={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}}
    ):
        assert client.get("/health").json()["checks"]["cache"]["status"] == "up"
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
            }
        }
    ):
        response = client.get("/health")
    assert response.status_code == 503 and response.json()["checks"]["cache"]["status"] == "down"


def test_health_is_503_when_the_database_scope_key_is_not_this_processs(client, tenant_a, customer_a, api_a):
    """A process with another SECRET_KEY (before the `migrate` that stores its key) sees no tenant at all: fails
    closed, and says so."""
    assert client.get("/health").json()["checks"]["database"]["status"] == "up"
    with override_settings(TENANT_SCOPE_KEY=b"another key" * 3):
        response = client.get("/health")
        assert api_a.get(f"/api/v1/customers/{customer_a.id}/").status_code == 404
    assert response.status_code == 503
    assert "run `manage.py migrate`" in response.json()["checks"]["database"]["reason"]


def test_metrics_are_prometheus_text(client):
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


def test_request_id_is_taken_from_the_caller_returned_and_logged(api_a, caplog):
    with caplog.at_level(logging.INFO):
        response = api_a.get("/api/v1/customers/", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    generated = api_a.get("/api/v1/customers/")["X-Request-ID"]
    assert len(generated) == 32


def test_json_log_lines_carry_the_request_id():
    from pythonjsonlogger.json import JsonFormatter

    from core.logs import RequestIdFilter, request_id_var

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = request_id_var.set("abc")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = JsonFormatter("%(levelname)s %(message)s %(request_id)s").format(record)
    assert json.loads(line) == {"levelname": "INFO", "message": "hello", "request_id": "abc"}


def test_production_refuses_to_start_without_its_secrets():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "AUTH_VERIFIER"}}
    env["APP_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.DEBUG"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "AUTH_VERIFIER" in result.stderr
