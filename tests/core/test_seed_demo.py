"""`manage.py seed_demo`, which every `make run` runs: safe to repeat, also after the demo data was changed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from core.models import Tenant
from core.tenancy import tenant_context
from customers.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)


def test_seeding_again_after_the_demo_customers_were_edited_still_succeeds() -> None:
    call_command("seed_demo", quiet=True)
    call_command("seed_demo", quiet=True)  # nothing changed: a no-op
    tenant = Tenant.objects.get(slug="demo-market")
    with tenant_context(tenant):
        ana = Customer.objects.get(email="ana.perez@example.com")
        bruno = Customer.objects.get(email="bruno.soto@example.com")
        # e.g. an API test run changed emails: Ana's demo purchases would now be another customer's
        Customer.objects.filter(pk=ana.pk).update(email="ana.old@example.com")
        Customer.objects.filter(pk=bruno.pk).update(email="ana.perez@example.com")
    err = StringIO()
    call_command("seed_demo", quiet=True, stderr=err)
    assert "Demo data of loyalty left as it is: idempotency_key_reused" in err.getvalue()
