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
