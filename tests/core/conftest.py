"""Fixtures of the back-office tests: the demo tenant as `make run` seeds it, with its three roles."""

from __future__ import annotations

import importlib
from decimal import Decimal
from typing import Any

import pytest

DEMO_USERS = {"admin": "admin", "manager": "manager", "store": "store"}


def create_back_office_roles() -> None:
    """The data migrations' groups (a transactional test's flush drops migration data)."""
    from django.apps import apps

    importlib.import_module("credit.migrations.0003_credit_managers_group").create_group(apps, None)
    importlib.import_module("customers.migrations.0003_back_office_roles").create_roles(apps, None)


@pytest.fixture
def demo(db: Any) -> Any:
    """The demo tenant of `make run` (users admin, manager, store; customers, loyalty, credit, segments) plus a
    charge on the approved line, so that every panel of the back office has something to show."""
    from django.core.management import call_command

    from core.models import Tenant
    from core.tenancy import tenant_context
    from credit import services as credit_services
    from customers.models import Customer

    create_back_office_roles()
    call_command("seed_demo", "--quiet")
    tenant = Tenant.objects.get(slug="demo-market")
    with tenant_context(tenant):
        andes = Customer.objects.get(email="compras@andes.example.com")
        credit_services.credit_use(customer=andes, amount=Decimal("1250000"), order_id="ORD-1001")
    return tenant
