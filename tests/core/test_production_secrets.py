# ruff: noqa: S603  (the tests start our own interpreter on manage.py and short programs)
"""Production refuses the development secrets, short token secrets and token minting, and passes `check --deploy`.

Each case starts a fresh Python with `APP_ENV=production`, as a deployment would, so the settings module's own
refusals are what is tested.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
DEV_JWT_SECRET = "dev-only-jwt-secret-not-for-production-use"


def production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "SECURE_"))}
    env.update(
        APP_ENV="production",
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=os.environ.get("DATABASE_URL")
        or "postgres://zenlogic_app:zenlogic_app@127.0.0.1:5432/zenlogic",
        REDIS_URL=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//",
        AUTH_VERIFIER="jwt",
        AUTH_JWT_SECRET=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="customers.example.com",
    )
    env.pop("DEBUG", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the suite's own setting, not a deployment's
    env.update(overrides)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Our own interpreter on `args`, in the project's directory, as a deployment would start it."""
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["-c", code], env)


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python("import django; django.setup()", env)


def test_production_settings_with_strong_secrets_load():
    result = load_settings(production_env())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"AUTH_JWT_SECRET": DEV_JWT_SECRET}, "AUTH_JWT_SECRET"),
        ({"AUTH_JWT_SECRET": "x"}, "AUTH_JWT_SECRET"),
        ({"AUTH_JWT_SECRET": "a" * 31}, "AUTH_JWT_SECRET"),
        ({"DEBUG": "1"}, "DEBUG"),
    ],
    ids=["dev-secret-key", "short-secret-key", "dev-jwt-secret", "one-char-jwt", "31-byte-jwt", "debug"],
)
def test_production_refuses_weak_or_development_secrets(overrides: dict[str, str], named: str):
    result = load_settings(production_env(**overrides))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


def test_a_32_byte_jwt_secret_is_enough():
    assert load_settings(production_env(AUTH_JWT_SECRET="k" * 32)).returncode == 0


def test_issue_token_refuses_in_production():
    result = run(["manage.py", "issue_token", "--tenant", "demo"], production_env())
    assert result.returncode != 0
    assert "production" in result.stderr
    assert "eyJ" not in result.stdout  # no token was printed


def test_issue_dev_token_refuses_in_production_when_called_directly():
    code = (
        "import django; django.setup()\n"
        "from core.auth import issue_dev_token\n"
        "issue_dev_token(tenant='demo', user_id='x', scopes=[], ttl_seconds=60)\n"
    )
    result = run_python(code, production_env())
    assert result.returncode != 0
    assert "production" in result.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings():
    env = production_env(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
