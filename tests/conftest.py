"""Fixtures shared by every test: tenants, tokens, API clients, and the services a test needs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# pytest-django's live_server with Playwright's sync API runs the ORM from the main thread only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def require_service(env_name: str, what: str) -> str:
    """The URL of a service a test needs; skip (or fail with REQUIRE_SERVICES=1) when it is not configured."""
    value = os.environ.get(env_name, "")
    if not value:
        message = f"{what} not configured ({env_name} unset)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, but REQUIRE_SERVICES=1")
        pytest.skip(message)
    return value


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest,
    django_test_environment: None,
    django_db_blocker: Any,
    django_db_keepdb: bool,
    django_db_createdb: bool,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """pytest-django's test database setup, with the database created, migrated and dropped by the owner role: the
    tests themselves run as the app role, which may not create a database nor own a table."""
    from django.test.utils import setup_databases, teardown_databases
    from pytest_django.fixtures import _get_databases_for_setup

    from core.database_roles import as_owner

    keepdb = django_db_keepdb and not django_db_createdb
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), as_owner():
        db_cfg = setup_databases(
            verbosity=verbosity,
            interactive=False,
            aliases=aliases,
            serialized_aliases=serialized_aliases,
            keepdb=keepdb,
        )
    yield
    if not django_db_keepdb:
        from django.db import connections

        with django_db_blocker.unblock():
            connections.close_all()
            with as_owner():
                teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture
def redis_url() -> str:
    return require_service("REDIS_URL", "Redis")


@pytest.fixture
def amqp_url() -> str:
    url = require_service("CELERY_BROKER_URL", "RabbitMQ")
    if not url.startswith(("amqp://", "pyamqp://", "amqps://")):
        pytest.skip(f"CELERY_BROKER_URL is not RabbitMQ ({url.split(':')[0]})")
    return url


@pytest.fixture
def tenant_a(db: Any) -> Any:
    from tests.factories import TenantFactory

    return TenantFactory(slug="tenant-a", name="Tenant A", country="CL", phone_region="CL", currency="CLP")


@pytest.fixture
def tenant_b(db: Any) -> Any:
    from tests.factories import TenantFactory

    return TenantFactory(slug="tenant-b", name="Tenant B", country="MX", phone_region="MX", currency="MXN")


@pytest.fixture
def in_tenant() -> Callable[[Any], Any]:
    """`with in_tenant(tenant): ...` runs the block in that tenant's transaction, as every door does."""
    from core.tenancy import tenant_context

    return tenant_context


from core.auth import SCOPES as ALL_SCOPES  # noqa: E402


@pytest.fixture
def make_token() -> Callable[..., str]:
    from core.auth import issue_dev_token

    def _make(tenant: Any, scopes: list[str] | None = None, user_id: str = "tester", ttl: int = 600) -> str:
        slug = tenant if isinstance(tenant, str) else tenant.slug
        return issue_dev_token(
            tenant=slug, user_id=user_id, scopes=ALL_SCOPES if scopes is None else scopes, ttl_seconds=ttl
        )

    return _make


@pytest.fixture
def api_client_for(make_token: Callable[..., str]) -> Callable[..., Any]:
    """An APIClient carrying a bearer token of `tenant` with `scopes` (all scopes by default)."""
    from rest_framework.test import APIClient

    def _client(tenant: Any, scopes: list[str] | None = None, user_id: str = "tester") -> APIClient:
        # The suite's callers read English unless a test asks otherwise (an API message otherwise follows the
        # tenant's language, Spanish for the Chilean tenant_a).
        client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(tenant, scopes, user_id)}")
        return client

    return _client


@pytest.fixture
def api_a(api_client_for: Callable[..., Any], tenant_a: Any) -> Any:
    return api_client_for(tenant_a)


@pytest.fixture
def api_b(api_client_for: Callable[..., Any], tenant_b: Any) -> Any:
    return api_client_for(tenant_b)


@pytest.fixture
def customer_a(tenant_a: Any) -> Any:
    from tests.factories import CustomerFactory

    return CustomerFactory(tenant=tenant_a)


@pytest.fixture
def customer_b(tenant_b: Any) -> Any:
    from tests.factories import CustomerFactory

    return CustomerFactory(tenant=tenant_b)


@pytest.fixture
def raw_sql() -> Callable[..., list[tuple[Any, ...]]]:
    """Run SQL on the test's connection and return the rows."""
    from django.db import connection

    def _run(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return cursor.fetchall() if cursor.description else []

    return _run


@pytest.fixture
def clear_cache() -> Iterator[None]:
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at Debian's Chromium."""
    from tests.browser import CHROMIUM_FLAGS, require_chromium

    path = require_chromium()
    args = [*browser_type_launch_args.get("args", []), *CHROMIUM_FLAGS]
    return {**browser_type_launch_args, "executable_path": path, "args": args, "headless": True}


@pytest.fixture
def chromium() -> None:
    """Skip (or fail under REQUIRE_SERVICES=1) before any browser starts when Chromium is missing."""
    from tests.browser import require_chromium

    require_chromium()


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """Every page of the browser tests at 1366×900, the smallest laptop screen the back office is used on."""
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


SCREENSHOT_DIR_ENV = "SCREENSHOT_DIR"


def screenshot_dir() -> Any:
    from pathlib import Path

    return Path(
        os.environ.get(SCREENSHOT_DIR_ENV)
        or Path(__file__).resolve().parent.parent / "test-results" / "screenshots"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the folder the browser tests wrote their screenshots to, so that the CI log says where to look."""
    folder = screenshot_dir()
    shots = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if shots:
        terminalreporter.write_line(f"screenshots ({len(shots)}, 1366x900): {folder}")
