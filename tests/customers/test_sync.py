"""CRM sync through REST: the upsert keyed by the CRM's id and the change feed it polls.

The feed only shows changes of transactions that have ended, so these tests commit (`transaction=True`) and poll
until what they wrote is there: another test run on the same PostgreSQL may hold the horizon back for a moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.factories import chilean_mobile

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = "/api/v1/customers/"
BY_EXTERNAL_ID = "/api/v1/customers/by-external-id/"
CHANGES = "/api/v1/customers/changes"


def poll(api: Any, since: str | None, limit: int = 3) -> tuple[list[dict[str, Any]], str]:
    """One CRM poll: every page after `since`; the changes and the cursor to keep."""
    changes: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        response = api.get(CHANGES, params)
        assert response.status_code == 200, response.content
        body = response.json()
        changes += body["changes"]
        since = body["next_cursor"]
        if not body["has_more"]:
            return changes, since


def poll_until(
    api: Any, since: str | None, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
) -> tuple[list[dict[str, Any]], str]:
    """Poll as a CRM would, again and again, until `done(changes so far)`."""
    changes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        more, since = poll(api, since)
        changes += more
        if done(changes):
            return changes, since  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"the feed did not show the changes in time: {changes}"
        time.sleep(0.2)


def crm_record(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "individual",
        "first_name": f"Name{n}",
        "last_name": f"Surname{n}",
        "email": f"crm{n}@example.com",
        "phone": chilean_mobile(900 + n),
        **extra,
    }


INCREMENTAL = [
    ("crm-2", {"last_name": "Married-Name"}),
    ("crm-3", {"status": "blocked"}),
    ("crm-6", crm_record(6)),
]


def test_a_crm_full_import_then_incremental_syncs_twice_is_idempotent(api_a: Any) -> None:
    """The CRM pushes its whole state, then what changed, and polls the feed; then it does it all again (a retry,
    a nightly resync): the second time nothing changes and the feed has nothing new."""
    crm = {f"crm-{n}": crm_record(n) for n in range(1, 6)}  # the CRM's own records
    ids: dict[str, str] = {}
    cursor: str | None = None
    for round_number in (1, 2):
        for external_id, record in crm.items():  # full import
            response = api_a.put(BY_EXTERNAL_ID + external_id, record, format="json")
            assert response.status_code == (201 if external_id not in ids else 200), response.content
            body = response.json()
            assert body["external_id"] == external_id and body["email"] == record["email"]
            assert ids.setdefault(external_id, body["id"]) == body["id"]
        for external_id, change in INCREMENTAL:  # incremental syncs: what changed in the CRM since
            response = api_a.put(BY_EXTERNAL_ID + external_id, change, format="json")
            assert response.status_code == (201 if external_id not in ids else 200), response.content
            ids.setdefault(external_id, response.json()["id"])
            crm[external_id] = {**crm.get(external_id, {}), **change}
        assert api_a.get(BY_EXTERNAL_ID + "crm-2").json()["last_name"] == "Married-Name"
        assert api_a.get(BY_EXTERNAL_ID + "crm-3").json()["status"] == "blocked"

        if round_number == 1:
            # The store blocks a customer on its side (the CRM's records do not carry a status, so the next
            # import leaves it blocked): the CRM learns it from the feed.
            blocked = api_a.patch(f"{CUSTOMERS}{ids['crm-4']}/", {"status": "blocked"}, format="json")
            assert blocked.status_code == 200
            changes, cursor = poll_until(api_a, None, lambda c: len(c) >= 9)
            seen = [(change["action"], change["customer"]["id"]) for change in changes]
            assert seen == [
                *[("created", ids[f"crm-{n}"]) for n in range(1, 6)],
                ("updated", ids["crm-2"]),
                ("blocked", ids["crm-3"]),
                ("created", ids["crm-6"]),
                ("blocked", ids["crm-4"]),
            ]
            assert changes[5]["changed_fields"] == ["last_name"]
            assert changes[-1]["customer"]["status"] == "blocked"
            continue

        # Round 2 changed nothing, so the feed has nothing new: a sentinel write shows the poll is current.
        sentinel = api_a.patch(f"{CUSTOMERS}{ids['crm-1']}/", {"notes": "called back"}, format="json")
        assert sentinel.status_code == 200
        changes, cursor = poll_until(api_a, cursor, lambda c: len(c) >= 1)
        assert [(c["action"], c["customer"]["id"], c["changed_fields"]) for c in changes] == [
            ("updated", ids["crm-1"], ["notes"])
        ]
    assert api_a.get(BY_EXTERNAL_ID + "crm-4").json()["status"] == "blocked"


def test_an_erasure_reaches_the_feed_anonymised_and_frees_the_external_id(api_a: Any) -> None:
    created = api_a.put(BY_EXTERNAL_ID + "crm-1", crm_record(1), format="json").json()
    for status in ("blocked", "active"):
        assert api_a.put(BY_EXTERNAL_ID + "crm-1", {"status": status}, format="json").status_code == 200
    assert api_a.delete(f"{CUSTOMERS}{created['id']}/").status_code == 204
    changes, _ = poll_until(api_a, None, lambda c: len(c) >= 4)
    assert [(c["action"], c["customer"]["id"]) for c in changes] == [
        ("created", created["id"]),
        ("blocked", created["id"]),
        ("unblocked", created["id"]),
        ("erased", created["id"]),
    ]
    erased = changes[-1]["customer"]
    assert erased["status"] == "erased" and erased["email"] is None and erased["external_id"] is None
    assert api_a.get(BY_EXTERNAL_ID + "crm-1").status_code == 404
    # The CRM's next push of that id creates a new customer (GDPR: the CRM must stop pushing an erased person).
    again = api_a.put(BY_EXTERNAL_ID + "crm-1", crm_record(1), format="json")
    assert again.status_code == 201 and again.json()["id"] != created["id"]


def test_a_conflict_with_another_customer_is_409_naming_the_field_and_that_customer(api_a: Any) -> None:
    first = api_a.put(BY_EXTERNAL_ID + "crm-1", crm_record(1), format="json").json()
    for field, record in (
        ("email", crm_record(2, email="CRM1@example.com")),
        ("phone", crm_record(2, phone=first["phone"])),
    ):
        response = api_a.put(BY_EXTERNAL_ID + "crm-2", record, format="json")
        assert response.status_code == 409, response.content
        body = response.json()
        assert body["code"] == "duplicate_customer"
        assert body["details"] == {"field": field, "customer_id": first["id"]}
    api_a.put(BY_EXTERNAL_ID + "crm-3", crm_record(3, document_number="12.345.678-5"), format="json")
    third = api_a.get(BY_EXTERNAL_ID + "crm-3").json()
    clash = api_a.put(BY_EXTERNAL_ID + "crm-1", {"document_number": "12345678-5"}, format="json")
    assert clash.status_code == 409
    assert clash.json()["details"] == {"field": "document_number", "customer_id": third["id"]}
    # nothing of the refused writes happened
    assert api_a.get(BY_EXTERNAL_ID + "crm-2").status_code == 404
    assert api_a.get(BY_EXTERNAL_ID + "crm-1").json()["document_number"] is None


@pytest.mark.parametrize(
    "path,body,code",
    [
        ("crm-1", {"external_id": "other", "first_name": "A"}, "unknown_field"),
        ("crm-1", {"first_name": "A", "emial": "a@example.com"}, "unknown_field"),
        ("crm-1", {"type": "individual"}, "invalid_customer"),
        ("x" * 65, {"type": "individual", "first_name": "A"}, "invalid_external_id"),
        ("a%00b", {"type": "individual", "first_name": "A"}, "invalid_external_id"),
        ("crm-1", {"type": "individual", "first_name": "A", "phone": "123"}, "invalid_phone"),
    ],
)
def test_an_upsert_the_service_cannot_accept_is_400(api_a: Any, path: str, body: Any, code: str) -> None:
    response = api_a.put(BY_EXTERNAL_ID + path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code


def test_the_sync_endpoints_need_their_scopes(api_client_for: Any, tenant_a: Any) -> None:
    reader = api_client_for(tenant_a, scopes=["customers:read"])
    assert reader.put(BY_EXTERNAL_ID + "crm-1", crm_record(1), format="json").status_code == 403
    assert reader.get(CHANGES).status_code == 200
    nobody = api_client_for(tenant_a, scopes=["loyalty:read"])
    assert nobody.get(CHANGES).json()["code"] == "missing_scope"
    assert nobody.get(BY_EXTERNAL_ID + "crm-1").status_code == 403


def test_the_feed_is_per_tenant(api_a: Any, api_b: Any) -> None:
    created = api_a.put(BY_EXTERNAL_ID + "crm-1", crm_record(1), format="json").json()
    changes, _ = poll_until(api_a, None, lambda c: len(c) >= 1)
    assert [c["customer"]["id"] for c in changes] == [created["id"]]
    assert api_b.get(BY_EXTERNAL_ID + "crm-1").status_code == 404
    assert poll(api_b, None)[0] == []


@pytest.mark.parametrize(
    "params,code",
    [
        ({"since": "yesterday"}, "invalid_cursor"),
        ({"since": "1-2-3"}, "invalid_cursor"),
        ({"limit": "0"}, "validation_error"),
        ({"limit": "501"}, "validation_error"),
        ({"sinse": "0-0"}, "unknown_parameter"),
    ],
)
def test_a_bad_poll_is_400(api_a: Any, params: dict[str, str], code: str) -> None:
    response = api_a.get(CHANGES, params)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
