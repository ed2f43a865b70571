"""GetCustomer over gRPC: every lookup, tenant isolation, malformed lookups, and the cache with its invalidation."""

from __future__ import annotations

import uuid

import grpc
import pytest
from django.test import override_settings

from tests.factories import BusinessCustomerFactory, CustomerFactory
from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["locmem", "redis"])
def cache_backend(request):
    """The logic with Django's local-memory cache, and the same against a real Redis when REDIS_URL is set."""
    if request.param == "locmem":
        yield "locmem"
        return
    url = request.getfixturevalue("redis_url")
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"zlgrpc-test-{uuid.uuid4().hex[:8]}",
        }
    }
    with override_settings(CACHES=caches):
        from django.core.cache import cache, caches

        assert type(caches["default"]).__name__ == "RedisCache"
        yield "redis"
        cache.clear()


@pytest.fixture
def person(tenant_a):
    return CustomerFactory(
        tenant=tenant_a,
        first_name="Ana",
        last_name="Rojas",
        email="ana.rojas@example.com",
        phone="+56961234567",
        document_number="12.345.678-5",
        loyalty_card_number="CARD-0001",
    )


def test_get_customer_by_id_returns_the_contract_fields(grpc_a, person):
    answer = grpc_a.GetCustomer(by_id(person))
    assert answer.customer_id == str(person.id)
    assert answer.type == pb.INDIVIDUAL
    assert answer.display_name == "Ana Rojas"
    assert (answer.email, answer.phone) == ("ana.rojas@example.com", "+56961234567")
    assert (answer.document_type, answer.document_number) == ("rut", "123456785")
    assert answer.loyalty_card_number == "CARD-0001"
    assert answer.loyalty.points_balance == 0 and answer.loyalty.tier == "bronze"
    assert answer.loyalty.points_to_next_tier > 0
    assert not answer.HasField("credit")  # no credit line
    assert answer.segment == "unclassified"
    assert answer.status == "active"


def test_get_customer_by_every_identifier(grpc_a, person):
    for lookup in [
        {"phone": "+56961234567"},
        {"phone": "9 6123 4567"},  # local format, read in the tenant's region (CL)
        {"phone": "+56 (9) 6123-4567"},
        {"email": "ANA.Rojas@Example.COM"},
        {"document_number": "12.345.678-5"},
        {"document_number": "123456785"},
        {"loyalty_card_number": "CARD-0001"},
        {"loyalty_card_number": "  CARD-0001 "},
    ]:
        assert grpc_a.GetCustomer(pb.GetCustomerRequest(**lookup)).customer_id == str(person.id), lookup


def test_a_business_customer(grpc_a, tenant_a):
    business = BusinessCustomerFactory(
        tenant=tenant_a, legal_name="Ferretería Sur SpA", trade_name="Ferresur"
    )
    answer = grpc_a.GetCustomer(by_id(business))
    assert (answer.type, answer.display_name, answer.legal_name) == (
        pb.BUSINESS,
        "Ferresur",
        "Ferretería Sur SpA",
    )


def test_another_tenants_customer_is_not_found(grpc_a, grpc_b, person, tenant_b):
    CustomerFactory(tenant=tenant_b, phone="+525512345678")
    for client, request in [
        (grpc_b, by_id(person)),
        (grpc_b, pb.GetCustomerRequest(phone="+56961234567")),
        (grpc_b, pb.GetCustomerRequest(email="ana.rojas@example.com")),
        (grpc_a, pb.GetCustomerRequest(phone="+525512345678")),
    ]:
        failure = client.fails("GetCustomer", request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")
    # ... also once the owner's answer is cached
    grpc_a.GetCustomer(by_id(person))
    assert grpc_b.fails("GetCustomer", by_id(person)).code == grpc.StatusCode.NOT_FOUND


def test_unknown_identifiers_are_not_found(grpc_a, person):
    for request in [
        pb.GetCustomerRequest(customer_id=str(uuid.uuid4())),
        pb.GetCustomerRequest(phone="+56961234568"),
        pb.GetCustomerRequest(email="nobody@example.com"),
        pb.GetCustomerRequest(document_number="11.111.111-1"),
        pb.GetCustomerRequest(loyalty_card_number="CARD-9999"),
    ]:
        assert grpc_a.fails("GetCustomer", request).code == grpc.StatusCode.NOT_FOUND


def test_malformed_lookups_are_invalid_argument(grpc_a, person):
    for lookup, code in [
        ({}, "invalid_lookup"),
        ({"customer_id": ""}, "missing_customer_id"),
        ({"customer_id": "   "}, "missing_customer_id"),
        ({"customer_id": "not-a-uuid"}, "invalid_customer_id"),
        ({"customer_id": "1" * 5000}, "invalid_customer_id"),
        ({"phone": "abc"}, "invalid_phone"),
        ({"phone": "+1"}, "invalid_phone"),
        ({"phone": "9" * 5000}, "invalid_phone"),
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "a" * 300 + "@example.com"}, "invalid_email"),
        ({"document_number": "x" * 100}, "invalid_document_number"),
        ({"loyalty_card_number": "CARD\x00-1"}, "invalid_loyalty_card_number"),
        ({"loyalty_card_number": "C" * 65}, "invalid_loyalty_card_number"),
    ]:
        failure = grpc_a.fails("GetCustomer", pb.GetCustomerRequest(**lookup))
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, code), lookup


def _write_behind_the_services(tenant, customer, **values):
    """Change the row without a service (so without invalidation): shows whether an answer came from the cache."""
    from core.tenancy import tenant_context
    from customers.models import Customer

    with tenant_context(tenant):
        Customer.objects.filter(pk=customer.pk).update(**values)


def test_answers_come_from_the_cache_until_the_customer_changes(grpc_a, tenant_a, person, cache_backend):
    from core.tenancy import tenant_context
    from customers.services import customer_update

    assert grpc_a.GetCustomer(by_id(person)).first_name == "Ana"
    _write_behind_the_services(tenant_a, person, first_name="Cached?")
    assert grpc_a.GetCustomer(by_id(person)).first_name == "Ana"  # served from the cache
    assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="961234567")).first_name == "Ana"

    with tenant_context(tenant_a):
        customer_update(customer=person, data={"first_name": "Anita"}, actor="test")
    assert grpc_a.GetCustomer(by_id(person)).first_name == "Anita"
    assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).first_name == "Anita"


def test_a_phone_lookup_never_follows_a_stale_alias(grpc_a, tenant_a, person, cache_backend):
    from core.tenancy import tenant_context
    from customers.services import customer_update

    assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).customer_id == str(person.id)
    with tenant_context(tenant_a):
        customer_update(customer=person, data={"phone": "+56961234999"}, actor="test")
    newcomer = CustomerFactory(tenant=tenant_a, phone="+56961234567")
    assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).customer_id == str(newcomer.id)
    assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234999")).customer_id == str(person.id)


def test_an_erased_customer_is_not_found_even_when_cached(grpc_a, tenant_a, person, cache_backend):
    from core.tenancy import tenant_context
    from customers.services import customer_erase

    grpc_a.GetCustomer(by_id(person))
    with tenant_context(tenant_a):
        customer_erase(customer=person, actor="test")
    assert grpc_a.fails("GetCustomer", by_id(person)).code == grpc.StatusCode.NOT_FOUND


def test_the_same_phone_in_two_tenants_gives_each_its_own_customer(
    grpc_a, grpc_b, tenant_a, tenant_b, cache_backend
):
    mine = CustomerFactory(tenant=tenant_a, phone="+56961234567")
    theirs = CustomerFactory(tenant=tenant_b, phone="+56961234567")
    for _ in range(2):  # the second round is answered from the cache
        assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).customer_id == str(mine.id)
        assert grpc_b.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).customer_id == str(theirs.id)


def test_a_cache_that_is_down_only_slows_answers(grpc_a, person):
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    with override_settings(CACHES=caches):
        assert grpc_a.GetCustomer(by_id(person)).customer_id == str(person.id)
        assert grpc_a.GetCustomer(pb.GetCustomerRequest(phone="+56961234567")).customer_id == str(person.id)


def test_get_customer_by_external_id(grpc_a, grpc_b, tenant_a, tenant_b, cache_backend):
    """The POS finds a customer by its id in the business's CRM: exact, only in the caller's tenant, and a change
    of the external id is seen at once (the cached answer no longer matches)."""
    from core.tenancy import tenant_context
    from customers.services import customer_update

    customer = CustomerFactory(tenant=tenant_a, external_id="CRM-0042")
    CustomerFactory(tenant=tenant_b, external_id="CRM-0099")
    for _ in range(2):  # the second answer comes through the alias cache
        answer = grpc_a.GetCustomer(pb.GetCustomerRequest(external_id="CRM-0042"))
        assert answer.customer_id == str(customer.id) and answer.external_id == "CRM-0042"
    for missing in ("crm-0042", "CRM-0099"):
        failure = grpc_a.fails("GetCustomer", pb.GetCustomerRequest(external_id=missing))
        assert failure.code == grpc.StatusCode.NOT_FOUND and failure.error_code == "customer_not_found"
    assert grpc_b.GetCustomer(pb.GetCustomerRequest(external_id="CRM-0099")).external_id == "CRM-0099"
    with tenant_context(tenant_a):
        customer_update(customer=customer, data={"external_id": "CRM-0043"}, actor="test")
    assert grpc_a.fails("GetCustomer", pb.GetCustomerRequest(external_id="CRM-0042")).code == (
        grpc.StatusCode.NOT_FOUND
    )
    assert grpc_a.GetCustomer(pb.GetCustomerRequest(external_id="CRM-0043")).customer_id == str(customer.id)
    too_long = grpc_a.fails("GetCustomer", pb.GetCustomerRequest(external_id="x" * 65))
    assert too_long.code == grpc.StatusCode.INVALID_ARGUMENT
