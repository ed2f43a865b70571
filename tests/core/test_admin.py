"""The admin: staff see and change only their tenant's customers; superusers see every tenant."""

from __future__ import annotations

import pytest

from core.models import User
from core.tenancy import all_tenants_context
from customers.models import Customer, CustomerChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_a(tenant_a):
    user = User.objects.create_user("staff-a", password="pw", tenant=tenant_a, is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="customers"))
    return user


def test_staff_sees_only_their_tenant(client, staff_a, customer_a, customer_b):
    client.force_login(staff_a)
    page = client.get("/admin/customers/customer/")
    assert page.status_code == 200
    assert customer_a.email.encode() in page.content
    assert customer_b.email.encode() not in page.content
    assert client.get(f"/admin/customers/customer/{customer_b.pk}/change/").status_code in (302, 404)


def test_superuser_sees_every_tenant(client, customer_a, customer_b):
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get("/admin/customers/customer/")
    assert customer_a.email.encode() in page.content and customer_b.email.encode() in page.content


def test_admin_edit_goes_through_the_service_and_validates(client, staff_a, customer_a):
    client.force_login(staff_a)
    url = f"/admin/customers/customer/{customer_a.pk}/change/"
    form = {
        "type": "individual",
        "first_name": customer_a.first_name,
        "last_name": "Nuevo",
        "legal_name": "",
        "trade_name": "",
        "email": customer_a.email,
        "phone": "9 6555 1234",
        "document_type": "",
        "document_number": "",
        "loyalty_card_number": "",
        "external_id": "",
        "salesperson": "",
        "route": "",
        "status": "active",
        "notes": "",
    }
    for prefix in ("addresses", "consents", "favourite_orders", "metrics", "purchases", "changes"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    bad = client.post(url, {**form, "phone": "123"})
    assert bad.status_code == 200 and b"not a valid phone number" in bad.content
    ok = client.post(url, form)
    assert ok.status_code == 302, ok.content[:2000]
    with all_tenants_context():
        customer = Customer.objects.get(pk=customer_a.pk)
        assert (customer.last_name, customer.phone) == ("Nuevo", "+56965551234")
        assert CustomerChange.objects.filter(customer=customer, actor="admin:staff-a").exists()


def test_admin_index_links_the_kpi_dashboard(client, staff_a):
    client.force_login(staff_a)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert b'href="/admin/dashboard/"' in page.content
