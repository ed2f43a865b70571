"""Hostile input is refused with a 4xx through the one error map, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("bad_id", ["demo", "1", "00000000-0000-0000-0000-00000000000g"])
def test_a_non_uuid_address_id_is_not_found(api_a, customer_a, method, bad_id):
    url = f"/api/v1/customers/{customer_a.id}/addresses/{bad_id}/"
    response = getattr(api_a, method)(url, {"city": "Santiago"} if method == "patch" else None, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "address_not_found"


@pytest.mark.parametrize("bad_id", ["demo", "1", "00000000-0000-0000-0000-00000000000g"])
def test_a_non_uuid_favourite_id_is_not_found(api_a, customer_a, bad_id):
    response = api_a.delete(f"/api/v1/customers/{customer_a.id}/favourite-orders/{bad_id}/")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "favourite_order_not_found"


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "customers/demo/"),
        ("get", "customers/demo/addresses/"),
        ("get", "customers/demo/preferences/"),
        ("get", "customers/demo/favourite-orders/"),
        ("get", "customers/demo/changes/"),
        ("get", "customers/demo/segment/"),
        ("get", "customers/demo/segment/history/"),
        ("get", "credit/lines/demo/"),
        ("post", "customers/{customer}/credit/charges/demo/cancel"),
        ("post", "customers/{customer}/credit/holds/demo/release"),
    ],
)
def test_every_path_id_that_is_not_a_uuid_is_not_found(api_a, customer_a, method, path):
    url = "/api/v1/" + path.format(customer=customer_a.id)
    if method == "post":
        response = api_a.post(url, {"reason": "hostile"}, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{path}")
    else:
        response = api_a.get(url)
    assert response.status_code == 404, response.content
    assert response.json()["code"].endswith("not_found")


def test_a_body_over_the_upload_limit_is_413(api_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"first_name": "' + "a" * 20_000 + '", "type": "individual"}'
    response = api_a.post("/api/v1/customers/", body, content_type="application/json")
    assert response.status_code == 413, response.content
    assert response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deeply_nested_json_is_400(api_a, depth):
    body = '{"type": "individual", "first_name": "A", "x": ' + "[" * depth + "]" * depth + "}"
    response = api_a.post("/api/v1/customers/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "malformed_request"


def test_ordinary_nesting_is_still_parsed(api_a, customer_a):
    response = api_a.patch(
        f"/api/v1/customers/{customer_a.id}/preferences/",
        {"channels": {"email": {"opt_in": True}}},
        format="json",
    )
    assert response.status_code != 500


@pytest.mark.parametrize(
    "path,name",
    [
        ("customers/", "created_after"),
        ("customers/", "created_before"),
        ("customers/{customer}/loyalty/transactions", "created_after"),
        ("customers/{customer}/purchases/", "completed_after"),
        ("customers/{customer}/purchases/", "completed_before"),
    ],
)
@pytest.mark.parametrize(
    "value", ["2020-01-01T00:00:00+21:14", "2020-01-01T00:00:00-16:00", "0001-01-01T00:00:00+01:00"]
)
def test_a_datetime_filter_postgresql_cannot_hold_is_400(api_a, customer_a, path, name, value):
    url = "/api/v1/" + path.format(customer=customer_a.id)
    response = api_a.get(url, {name: value})
    assert response.status_code == 400, response.content
    assert name in str(response.json()["details"])


def test_a_datetime_filter_with_an_ordinary_offset_still_works(api_a, customer_a):
    response = api_a.get("/api/v1/customers/", {"created_after": "2000-01-01T00:00:00+05:30"})
    assert response.status_code == 200, response.content
    assert str(customer_a.id) in response.content.decode()


@pytest.fixture
def database_down():
    """The database refuses connections (a real connect to a port nothing listens on), then comes back."""
    import socket

    from django.db import connection

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    saved = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = closed_port
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method,path", [("get", "customers/"), ("post", "customers/")])
def test_a_database_outage_is_503_database_unavailable(api_a, tenant_a, method, path, database_down):
    response = getattr(api_a, method)(
        f"/api/v1/{path}",
        {"type": "individual", "first_name": "A"} if method == "post" else None,
        format="json",
    )
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "database_unavailable"
