"""Customer services: identifiers normalised per tenant, uniqueness, erasure, addresses, preferences, events."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from core.models import OutboxEvent
from customers import services
from customers.errors import DuplicateCustomer, InvalidCustomer, InvalidDocument, InvalidEmail, InvalidPhone
from customers.models import Address, Customer, CustomerChange, CustomerStatus
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def create(tenant, in_tenant, **data):
    data.setdefault("type", "individual")
    data.setdefault("first_name", "Ana")
    with in_tenant(tenant):
        return services.customer_create(tenant=tenant, data=data, actor="test")


def test_phone_email_and_document_are_normalised_with_the_tenants_rules(tenant_a, in_tenant):
    customer = create(
        tenant_a,
        in_tenant,
        email="  Ana.Perez@Example.COM ",
        phone="9 6123 4567",
        document_number="12.345.678-5",
    )
    assert customer.email == "ana.perez@example.com"
    assert customer.phone == "+56961234567"
    assert (customer.document_type, customer.document_number) == ("rut", "123456785")


@pytest.mark.parametrize(
    "doc_type,number,compact",
    [
        ("rfc", "GODE561231GR8", "GODE561231GR8"),
        ("cuit", "20-26756539-3", "20267565393"),
        ("nit", "213.123.432-1", "2131234321"),
        ("ruc", "20512333797", "20512333797"),
        ("cpf", "390.533.447-05", "39053344705"),
        ("cnpj", "16.727.230/0001-97", "16727230000197"),
        ("nif", "12345678-Z", "12345678Z"),
        ("nie", "X-2482300-W", "X2482300W"),
    ],
)
def test_documents_of_each_supported_country_are_validated(tenant_a, in_tenant, doc_type, number, compact):
    customer = create(tenant_a, in_tenant, document_type=doc_type, document_number=number)
    assert customer.document_number == compact


def test_unknown_document_types_are_normalised_not_rejected(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant, document_type="passport", document_number="ab 123.456")
    assert (customer.document_type, customer.document_number) == ("passport", "AB123456")


@pytest.mark.parametrize(
    "data,error,field",
    [
        ({"phone": "12"}, InvalidPhone, "phone"),
        ({"phone": "not a phone"}, InvalidPhone, "phone"),
        ({"email": "nope@"}, InvalidEmail, "email"),
        ({"document_number": "12.345.678-9"}, InvalidDocument, "document_number"),
        ({"document_type": "cpf", "document_number": "111.111.111-12"}, InvalidDocument, "document_number"),
        ({"first_name": "", "last_name": ""}, InvalidCustomer, "first_name"),
        ({"type": "business", "first_name": "x"}, InvalidCustomer, "legal_name"),
    ],
)
def test_invalid_data_is_refused_with_the_field_and_nothing_is_written(
    tenant_a, in_tenant, data, error, field
):
    with pytest.raises(error) as info:
        create(tenant_a, in_tenant, **data)
    assert info.value.details.get("field") == field
    with in_tenant(tenant_a):
        assert Customer.objects.count() == 0
        assert OutboxEvent.objects.count() == 0


def test_identifiers_are_unique_per_tenant_but_not_across_tenants(tenant_a, tenant_b, in_tenant):
    create(tenant_a, in_tenant, email="x@example.com", phone="+56961234567", document_number="12345678-5")
    for data, field in (
        ({"email": "X@example.com"}, "email"),
        ({"phone": "+56 9 6123 4567"}, "phone"),
        ({"document_number": "12.345.678-5"}, "document_number"),
    ):
        with pytest.raises(DuplicateCustomer) as info:
            create(tenant_a, in_tenant, **data)
        assert info.value.details["field"] == field
    other = create(tenant_b, in_tenant, email="x@example.com", phone="+56961234567")
    assert other.email == "x@example.com"


def test_create_and_update_record_audit_rows_and_outbox_events(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant, email="a@example.com")
    with in_tenant(tenant_a):
        services.customer_update(
            customer=customer, data={"last_name": "Soto", "email": "A@example.com"}, actor="t"
        )
        events = list(OutboxEvent.objects.order_by("created_at"))
        assert [e.event_type for e in events] == ["customer.created", "customer.updated"]
        envelope = events[1].payload
        assert set(envelope) == {"event_id", "event_type", "occurred_at", "tenant_id", "version", "data"}
        assert envelope["tenant_id"] == "tenant-a" and envelope["version"] == 1
        assert envelope["event_id"] == str(events[1].event_id)
        assert envelope["data"]["customer_id"] == str(customer.id)
        assert envelope["data"]["changed_fields"] == ["last_name"]  # the email did not really change
        actions = list(CustomerChange.objects.filter(customer=customer).values_list("action", flat=True))
        assert sorted(actions) == ["created", "updated"]


def test_update_with_no_real_change_writes_nothing(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant, email="a@example.com")
    with in_tenant(tenant_a):
        services.customer_update(customer=customer, data={"email": "A@EXAMPLE.com"}, actor="t")
        assert OutboxEvent.objects.filter(event_type="customer.updated").count() == 0


def test_erasure_anonymises_personal_data_and_keeps_the_row(tenant_a, in_tenant):
    customer = create(
        tenant_a, in_tenant, email="a@example.com", phone="+56961234567", document_number="12345678-5"
    )
    with in_tenant(tenant_a):
        services.address_create(
            customer=customer,
            data={"kind": "billing", "line1": "Calle 1", "city": "Santiago", "country": "CL"},
            actor="t",
        )
        services.preferences_update(
            customer=customer, actor="t", consents={"email": True}, categories=["wine"]
        )
        services.customer_erase(customer=customer, actor="t")
        erased = Customer.objects.get(pk=customer.pk)
        assert erased.status == CustomerStatus.ERASED and erased.erased_at is not None
        assert (erased.email, erased.phone, erased.document_number) == (None, None, None)
        assert "Ana" not in erased.display_name
        assert Address.objects.filter(customer=customer).count() == 0
        deleted = OutboxEvent.objects.get(event_type="customer.deleted")
        assert deleted.payload["data"] == {
            "customer_id": str(customer.id),
            "erased_at": deleted.payload["data"]["erased_at"],
        }
    # The freed identifiers can be used by a new customer.
    again = create(tenant_a, in_tenant, email="a@example.com")
    assert again.pk != customer.pk


def test_exactly_one_default_address_per_kind(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant)
    address = {"line1": "Calle 1", "city": "Santiago", "country": "CL"}
    with in_tenant(tenant_a):
        first = services.address_create(customer=customer, data={"kind": "shipping", **address}, actor="t")
        second = services.address_create(customer=customer, data={"kind": "shipping", **address}, actor="t")
        billing = services.address_create(customer=customer, data={"kind": "billing", **address}, actor="t")
        assert first.is_default and not second.is_default and billing.is_default
        services.address_update(address=second, data={"is_default": True}, actor="t")
        defaults = list(Address.objects.filter(customer=customer, is_default=True).values_list("id", "kind"))
        assert sorted(defaults, key=lambda r: r[1]) == [(billing.id, "billing"), (second.id, "shipping")]
        services.address_delete(address=Address.objects.get(pk=second.pk), actor="t")
        assert Address.objects.get(pk=first.pk).is_default  # promoted when the default went away


def test_the_database_refuses_two_defaults_of_a_kind(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant)
    with in_tenant(tenant_a):
        services.address_create(
            customer=customer,
            data={"kind": "shipping", "line1": "a", "city": "b", "country": "CL"},
            actor="t",
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            Address.objects.create(
                tenant=tenant_a,
                customer=customer,
                kind="shipping",
                is_default=True,
                line1="x",
                city="y",
                country="CL",
            )


def test_consent_timestamp_changes_only_when_the_consent_changes(tenant_a, in_tenant):
    customer = create(tenant_a, in_tenant)
    with in_tenant(tenant_a):
        services.preferences_update(customer=customer, actor="t", consents={"sms": True})
        first = customer.consents.get(channel="sms").changed_at
        services.preferences_update(customer=customer, actor="t", consents={"sms": True})
        assert customer.consents.get(channel="sms").changed_at == first
        services.preferences_update(customer=customer, actor="t", consents={"sms": False})
        assert customer.consents.get(channel="sms").changed_at > first


def test_email_lowercase_is_enforced_by_the_database(tenant_a, in_tenant):
    customer = CustomerFactory(tenant=tenant_a)
    with in_tenant(tenant_a), pytest.raises(DatabaseError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(email="UPPER@example.com")
