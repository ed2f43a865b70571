"""`manage.py import_customers`: good rows imported, bad rows reported with why, safe to run twice."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import OutboxEvent
from customers.models import Customer

pytestmark = pytest.mark.django_db

CSV = """type,first_name,last_name,legal_name,email,phone,document_number,external_id
individual,Ana,Pérez,,ana@example.com,9 6123 4567,12.345.678-5,CRM-1
individual,Bad,Phone,,bad@example.com,12,,CRM-2
business,,,Ferretería Sur SpA,compras@sur.example.com,+56 2 2123 4567,76.086.428-5,CRM-3
individual,Bad,Document,,doc@example.com,,12.345.678-9,CRM-4
individual,No,Email,,not-an-email,,,CRM-5
"""


def run_import(path, tenant):
    out, err = StringIO(), StringIO()
    call_command(
        "import_customers", str(path), "--tenant", tenant.slug, "--no-progress", stdout=out, stderr=err
    )
    return out.getvalue(), err.getvalue()


def test_import_reports_bad_rows_and_is_idempotent(tmp_path, tenant_a, in_tenant):
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    out, err = run_import(path, tenant_a)
    assert "created 2, updated 0, unchanged 0, rejected 3" in out
    assert "line 3: invalid_phone" in err
    assert "line 5: invalid_document" in err
    assert "line 6: invalid_email" in err
    with in_tenant(tenant_a):
        assert Customer.objects.count() == 2
        created_events = OutboxEvent.objects.filter(event_type="customer.created").count()

    out, _ = run_import(path, tenant_a)
    assert "created 0, updated 0, unchanged 2, rejected 3" in out
    with in_tenant(tenant_a):
        assert Customer.objects.count() == 2
        assert OutboxEvent.objects.filter(event_type="customer.created").count() == created_events

    # A changed row (matched on external id) updates the customer instead of duplicating it.
    path.write_text(CSV.replace("Ana,Pérez", "Ana,Pérez Soto"), encoding="utf-8")
    out, _ = run_import(path, tenant_a)
    assert "created 0, updated 1, unchanged 1" in out
    with in_tenant(tenant_a):
        assert Customer.objects.get(external_id="CRM-1").last_name == "Pérez Soto"


def test_unknown_tenant_or_missing_file_is_a_clear_error(tmp_path, tenant_a):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_customers", str(tmp_path / "none.csv"), "--tenant", tenant_a.slug)
    path = tmp_path / "c.csv"
    path.write_text(CSV, encoding="utf-8")
    with pytest.raises(CommandError, match="Unknown tenant"):
        call_command("import_customers", str(path), "--tenant", "nope")
