"""Every domain error belongs to a category of the single error map; the REST body has one shape."""

from __future__ import annotations

import importlib

import grpc
import pytest
from django.apps import apps

from core.errors import ERROR_MAP, DomainError, mapping_for


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _all_subclasses(sub)
    return found


def test_every_error_class_of_every_app_has_a_mapping():
    for config in apps.get_app_configs():
        try:
            importlib.import_module(f"{config.name}.errors")
        except ModuleNotFoundError:
            continue
    errors = _all_subclasses(DomainError)
    assert len(errors) > 10
    for error in errors:
        mapping = mapping_for(error)  # raises LookupError when a class has no category
        assert mapping.http_status in {400, 401, 403, 404, 409, 413, 422, 503}
        assert error.code and error.code == error.code.lower() and " " not in error.code, error


def test_an_error_outside_every_category_is_detected():
    class Orphan(DomainError):
        code = "orphan"

    with pytest.raises(LookupError):
        mapping_for(Orphan)


def test_contract_categories():
    from core import errors

    assert ERROR_MAP[errors.InvalidInput].http_status == 400
    assert ERROR_MAP[errors.InvalidInput].grpc_status == grpc.StatusCode.INVALID_ARGUMENT
    assert ERROR_MAP[errors.Unauthenticated].grpc_status == grpc.StatusCode.UNAUTHENTICATED
    assert ERROR_MAP[errors.PermissionDenied].http_status == 403
    assert ERROR_MAP[errors.NotFound].grpc_status == grpc.StatusCode.NOT_FOUND
    assert ERROR_MAP[errors.Conflict].http_status == 409
    assert ERROR_MAP[errors.Conflict].grpc_status == grpc.StatusCode.FAILED_PRECONDITION
    assert ERROR_MAP[errors.IdempotencyKeyReused].http_status == 422
    assert ERROR_MAP[errors.IdempotencyKeyReused].grpc_status == grpc.StatusCode.ALREADY_EXISTS


def test_a_blocked_customer_is_a_business_refusal_at_every_door():
    from customers.errors import CustomerBlocked

    assert CustomerBlocked.code == "customer_blocked"
    assert (mapping_for(CustomerBlocked).http_status, mapping_for(CustomerBlocked).grpc_status) == (
        409,
        grpc.StatusCode.FAILED_PRECONDITION,
    )


@pytest.mark.django_db
def test_drf_validation_errors_come_out_in_the_same_shape(api_a):
    response = api_a.post("/api/v1/customers/", {"type": "alien"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "validation_error"
    assert body["details"]["fields"]["type"][0]["code"] == "invalid_choice"


@pytest.mark.django_db
def test_malformed_json_is_a_400_not_a_500(api_a):
    response = api_a.generic("POST", "/api/v1/customers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
