"""The customers REST API: CRUD, filters and cursor pagination, lookups, sub-resources, error shapes."""

from __future__ import annotations

import pytest

from tests.factories import BusinessCustomerFactory, CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def test_create_retrieve_update_delete(api_a):
    created = api_a.post(
        URL,
        {
            "type": "individual",
            "first_name": "Ana",
            "last_name": "Pérez",
            "email": "ANA@example.com",
            "phone": "9 6123 4567",
            "document_number": "12.345.678-5",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "ana@example.com" and body["phone"] == "+56961234567"
    assert body["display_name"] == "Ana Pérez"
    detail = api_a.get(f"{URL}{body['id']}/")
    assert detail.status_code == 200 and detail.json()["id"] == body["id"]
    patched = api_a.patch(f"{URL}{body['id']}/", {"status": "blocked"}, format="json")
    assert patched.status_code == 200 and patched.json()["status"] == "blocked"
    assert api_a.delete(f"{URL}{body['id']}/").status_code == 204
    assert api_a.get(f"{URL}{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    "data,code,field",
    [
        ({"type": "individual", "first_name": "A", "phone": "123"}, "invalid_phone", "phone"),
        ({"type": "individual", "first_name": "A", "email": "x@"}, "invalid_email", "email"),
        (
            {"type": "individual", "first_name": "A", "document_number": "1-1"},
            "invalid_document",
            "document_number",
        ),
        ({"first_name": "A"}, "validation_error", "type"),
    ],
)
def test_validation_errors_name_the_field_with_a_stable_code(api_a, data, code, field):
    response = api_a.post(URL, data, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert field in str(body["details"])


def test_duplicate_is_a_conflict_naming_the_field(api_a, customer_a):
    response = api_a.post(
        URL, {"type": "individual", "first_name": "B", "email": customer_a.email}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_customer"
    assert response.json()["details"]["field"] == "email"


def test_list_filters_search_and_cursor_pagination(api_a, tenant_a, tenant_b):
    for i in range(5):
        CustomerFactory(tenant=tenant_a, last_name=f"Zeta{i}")
    BusinessCustomerFactory(tenant=tenant_a, legal_name="Ferretería Sur")
    CustomerFactory(tenant=tenant_b, last_name="Zeta-other-tenant")
    page = api_a.get(URL, {"page_size": 4})
    assert page.status_code == 200
    first = page.json()
    assert len(first["results"]) == 4 and first["next"]
    second = api_a.get(first["next"]).json()
    ids = [c["id"] for c in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 6
    assert [c["legal_name"] for c in api_a.get(URL, {"type": "business"}).json()["results"]] == [
        "Ferretería Sur"
    ]
    found = api_a.get(URL, {"q": "zeta"}).json()["results"]
    assert len(found) == 5 and all(c["last_name"].startswith("Zeta") for c in found)
    ordered = api_a.get(URL, {"ordering": "last_name", "type": "individual"}).json()["results"]
    assert [c["last_name"] for c in ordered] == sorted(c["last_name"] for c in ordered)


def test_lookup_by_phone_in_any_format_email_document_and_card(api_a, tenant_a, in_tenant):
    created = api_a.post(
        URL,
        {
            "type": "individual",
            "first_name": "Ana",
            "email": "ana@example.com",
            "phone": "+56961234567",
            "document_number": "12345678-5",
            "loyalty_card_number": "LC-9",
        },
        format="json",
    ).json()
    for params in (
        {"phone": "9 6123 4567"},
        {"phone": "+56 9 6123-4567"},
        {"email": "ANA@Example.com"},
        {"document": "12.345.678-5"},
        {"card": "LC-9"},
    ):
        response = api_a.get(f"{URL}lookup", params)
        assert response.status_code == 200, params
        assert response.json()["id"] == created["id"]
    missing = api_a.get(f"{URL}lookup", {"phone": "+56961111111"})
    assert missing.status_code == 404 and missing.json()["code"] == "customer_not_found"
    both = api_a.get(f"{URL}lookup", {"phone": "+56961234567", "email": "ana@example.com"})
    assert both.status_code == 400 and both.json()["code"] == "invalid_lookup"


def test_lookup_never_finds_another_tenants_customer(api_a, customer_b):
    assert api_a.get(f"{URL}lookup", {"email": customer_b.email}).status_code == 404


def test_addresses_and_preferences(api_a, customer_a):
    base = f"{URL}{customer_a.id}"
    a1 = api_a.post(
        f"{base}/addresses/",
        {"kind": "shipping", "line1": "Calle 1", "city": "Stgo", "country": "cl"},
        format="json",
    )
    assert a1.status_code == 201 and a1.json()["is_default"] is True and a1.json()["country"] == "CL"
    a2 = api_a.post(
        f"{base}/addresses/",
        {"kind": "shipping", "line1": "Calle 2", "city": "Stgo", "country": "CL", "is_default": True},
        format="json",
    )
    assert a2.json()["is_default"] is True
    listed = api_a.get(f"{base}/addresses/").json()
    assert [a["is_default"] for a in listed if a["kind"] == "shipping"].count(True) == 1
    assert api_a.delete(f"{base}/addresses/{a2.json()['id']}/").status_code == 204
    assert api_a.get(f"{base}/addresses/{a1.json()['id']}/").json()["is_default"] is True

    prefs = api_a.patch(
        f"{base}/preferences/",
        {
            "categories": ["Coffee", "coffee", "wine"],
            "restrictions": ["vegan"],
            "consents": {"whatsapp": True},
        },
        format="json",
    )
    assert prefs.status_code == 200, prefs.content
    body = prefs.json()
    assert body["categories"] == ["coffee", "wine"]
    assert body["consents"][0]["channel"] == "whatsapp" and body["consents"][0]["consented"] is True
    bad = api_a.patch(f"{base}/preferences/", {"consents": {"fax": True}}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_channel"

    fav = api_a.post(
        f"{base}/favourite-orders/",
        {"name": "My usual", "items": [{"sku": "LATTE", "quantity": 2}]},
        format="json",
    )
    assert fav.status_code == 201
    assert api_a.get(f"{base}/favourite-orders/").json()[0]["name"] == "My usual"
    changes = api_a.get(f"{base}/changes/").json()
    assert {"created", "address_added", "preferences_changed", "favourite_added"} <= {
        c["action"] for c in changes
    }


def test_sub_resources_of_another_tenants_customer_are_not_found(api_a, customer_b):
    for path in ("addresses/", "preferences/", "favourite-orders/", "changes/"):
        response = api_a.get(f"{URL}{customer_b.id}/{path}")
        assert response.status_code == 404, path


def test_non_uuid_id_is_not_found_not_500(api_a):
    response = api_a.get(f"{URL}not-a-uuid/")
    assert response.status_code == 404 and response.json()["code"] == "customer_not_found"


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/customers/" in schema.content
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("cursor", ["garbage", "cD0yMDI2LTEx", "cD1ub3QtYS1kYXRl"])
def test_a_tampered_cursor_is_invalid_input_not_a_500(api_a, customer_a, cursor):
    response = api_a.get(URL, {"cursor": cursor})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_cursor"


def test_customer_views_show_the_segment_of_the_latest_run(api_a, customer_a, tenant_a, in_tenant):
    from datetime import date

    from django.utils import timezone

    from segmentation.models import CustomerSegment

    assert api_a.get(f"{URL}{customer_a.id}/").json()["segment"] == "unclassified"
    with in_tenant(tenant_a):
        CustomerSegment.objects.create(
            tenant=tenant_a,
            customer=customer_a,
            segment="champions",
            recency_score=5,
            frequency_score=5,
            monetary_score=5,
            segment_since=date(2026, 11, 1),
            updated_at=timezone.now(),
        )
    assert api_a.get(f"{URL}{customer_a.id}/").json()["segment"] == "champions"
    assert api_a.get(URL).json()["results"][0]["segment"] == "champions"


@pytest.mark.parametrize(
    "method,path,data,unknown",
    [
        ("post", "", {"type": "individual", "first_name": "A", "emial": "a@example.com"}, "emial"),
        ("patch", "{c}/", {"stauts": "blocked"}, "stauts"),
        (
            "post",
            "{c}/addresses/",
            {"label": "home", "line1": "Calle 1", "city": "Santiago", "zip": "1"},
            "zip",
        ),
        ("patch", "{c}/preferences/", {"categories": ["wine"], "restricions": ["gluten"]}, "restricions"),
        ("post", "{c}/favourite-orders/", {"name": "weekly", "items": [], "note": "x"}, "note"),
    ],
)
def test_an_unknown_field_is_refused_as_on_every_door(api_a, customer_a, method, path, data, unknown):
    """A typo must not be dropped without a word: the same `unknown_field` refusal as loyalty and credit."""
    response = getattr(api_a, method)(URL + path.format(c=customer_a.pk), data, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "unknown_field", body
    assert unknown in str(body["details"]), body
