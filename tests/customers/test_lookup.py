"""The point of sale's customer lookups (external id, last digits of a phone), the segment filters of the list, and
the refusal of query parameters and body fields the API does not know."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def test_the_pos_finds_a_customer_by_external_id(api_a: Any, tenant_a: Any, tenant_b: Any) -> None:
    customer = CustomerFactory(tenant=tenant_a, external_id="CRM-0042")
    CustomerFactory(tenant=tenant_b, external_id="CRM-0043")
    found = api_a.get(f"{URL}lookup", {"external_id": "CRM-0042"})
    assert found.status_code == 200 and found.json()["id"] == str(customer.id)
    assert api_a.get(f"{URL}by-external-id/CRM-0042").json()["id"] == str(customer.id)
    for missing in ("crm-0042", "CRM-0043"):  # exact, and only the caller's tenant
        assert api_a.get(f"{URL}lookup", {"external_id": missing}).json()["code"] == "customer_not_found"
    both = api_a.get(f"{URL}lookup", {"external_id": "CRM-0042", "email": customer.email})
    assert both.status_code == 400 and both.json()["code"] == "invalid_lookup"


def test_the_last_digits_of_a_phone_give_a_handful_of_masked_candidates(api_a: Any, tenant_a: Any) -> None:
    ana = CustomerFactory(tenant=tenant_a, first_name="Ana", last_name="Pérez", phone="+56961234567")
    CustomerFactory(tenant=tenant_a, first_name="Luis", last_name="Soto", phone="+56971114567")
    CustomerFactory(tenant=tenant_a, first_name="Eva", last_name="Rojas", phone="+56971119999")
    answer = api_a.get(f"{URL}lookup/phone-suffix", {"digits": "4567"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["more"] is False
    assert body["candidates"] == [
        {"id": str(ana.id), "display_name": "Ana P.", "phone": "+56*****4567"},
        {"id": body["candidates"][1]["id"], "display_name": "Luis S.", "phone": "+56*****4567"},
    ]
    assert [
        c["id"] for c in api_a.get(f"{URL}lookup/phone-suffix", {"digits": "1234567"}).json()["candidates"]
    ] == [str(ana.id)]
    assert api_a.get(f"{URL}lookup/phone-suffix", {"digits": "0000"}).json() == {
        "candidates": [],
        "more": False,
    }


def test_more_than_a_handful_of_matches_asks_for_more_digits(api_a: Any, tenant_a: Any) -> None:
    for n in range(7):
        CustomerFactory(tenant=tenant_a, phone=f"+5699{n}004321")
    body = api_a.get(f"{URL}lookup/phone-suffix", {"digits": "4321"}).json()
    assert len(body["candidates"]) == 5 and body["more"] is True


@pytest.mark.parametrize("digits", ["", "123", "12a4", "+5691234", "1" * 16])
def test_too_few_or_non_digits_are_refused(api_a: Any, digits: str) -> None:
    response = api_a.get(f"{URL}lookup/phone-suffix", {"digits": digits})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_phone_suffix"


def _segment(tenant: Any, customer: Any, segment: str, *, vip: bool, churn: str) -> None:
    from core.tenancy import tenant_context
    from segmentation.models import CustomerSegment

    with tenant_context(tenant):
        CustomerSegment.objects.create(
            tenant=tenant,
            customer=customer,
            segment=segment,
            recency_score=5,
            frequency_score=5,
            monetary_score=5,
            is_vip=vip,
            churn_risk=churn,
            segment_since=date(2026, 11, 1),
            updated_at=timezone.now(),
        )


def test_the_list_filters_by_segment_vip_and_churn_risk(api_a: Any, tenant_a: Any) -> None:
    champion_vip = CustomerFactory(tenant=tenant_a)
    champion = CustomerFactory(tenant=tenant_a)
    at_risk = CustomerFactory(tenant=tenant_a)
    never_run = CustomerFactory(tenant=tenant_a)
    _segment(tenant_a, champion_vip, "champions", vip=True, churn="low")
    _segment(tenant_a, champion, "champions", vip=False, churn="low")
    _segment(tenant_a, at_risk, "at_risk", vip=False, churn="high")

    def ids(**params: Any) -> set[str]:
        response = api_a.get(URL, params)
        assert response.status_code == 200, response.content
        return {c["id"] for c in response.json()["results"]}

    assert ids(segment="champions", vip="true") == {str(champion_vip.id)}
    assert ids(segment="champions") == {str(champion_vip.id), str(champion.id)}
    assert ids(vip="false") == {str(champion.id), str(at_risk.id), str(never_run.id)}
    assert ids(churn_risk="high") == {str(at_risk.id)}
    assert ids(segment="unclassified") == {str(never_run.id)}
    assert api_a.get(URL, {"churn_risk": "extreme"}).status_code == 400
    assert api_a.get(URL, {"vip": "maybe"}).status_code == 400


@pytest.mark.parametrize(
    "path,params",
    [
        ("", {"segmnet": "champions"}),
        ("", {"segment": "champions", "vip": "true", "page": "2"}),
        ("lookup", {"phone": "+56961234567", "cart": "1"}),
        ("lookup/phone-suffix", {"digits": "4567", "limit": "50"}),
        ("changes", {"since": "0-0", "until": "x"}),
        ("by-external-id/crm-1", {"fields": "id"}),
    ],
)
def test_an_unknown_query_parameter_is_refused(api_a: Any, customer_a: Any, path: str, params: Any) -> None:
    """A misspelt filter must not answer as if there were none."""
    response = api_a.get(URL + path, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "unknown_parameter", body
    assert set(body["details"]["fields"]) == {
        next(k for k in params if k in {"segmnet", "page", "cart", "limit", "until", "fields"})
    }


def test_the_list_still_takes_its_pagination_and_ordering_parameters(api_a: Any, customer_a: Any) -> None:
    first = api_a.get(URL, {"page_size": 1, "ordering": "created_at", "q": customer_a.last_name})
    assert first.status_code == 200, first.content
    assert api_a.get(first.json()["next"] or URL).status_code == 200


def test_channels_in_a_preferences_patch_is_refused_not_ignored(api_a: Any, customer_a: Any) -> None:
    url = f"{URL}{customer_a.id}/preferences/"
    response = api_a.patch(url, {"channels": {"email": True}}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "unknown_field"
    assert "channels" in response.json()["details"]["fields"]
    # what a caller meant by it is accepted as `consents`
    accepted = api_a.patch(url, {"consents": {"email": True}}, format="json")
    assert accepted.status_code == 200
    assert [(c["channel"], c["consented"]) for c in accepted.json()["consents"]] == [("email", True)]
