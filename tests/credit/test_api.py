"""REST door of credit: scopes, Idempotency-Key, error codes and bodies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.tenancy import tenant_context
from credit import services
from credit.models import CreditLine
from tests.credit.factories import credit_line_approved, credit_line_requested

pytestmark = pytest.mark.django_db

D = Decimal
READ = ["credit:read"]
WRITE = ["credit:read", "credit:write"]
MANAGER = ["credit:read", "credit:write", "credit:approve"]


def post(client, url, data=None, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, data or {}, format="json", **headers)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details"}


# --- Lines ---------------------------------------------------------------------------------------------------------
def test_request_approve_flow_over_rest(api_client_for, tenant_a, business_a):
    sales = api_client_for(tenant_a, WRITE, user_id="sales-1")
    response = post(
        sales,
        "/api/v1/credit/lines/",
        {"customer_id": str(business_a.id), "requested_limit": "2500.00", "payment_terms_days": 60},
    )
    assert response.status_code == 201, response.content
    line = response.json()
    assert (line["status"], line["requested_limit"], line["credit_limit"]) == ("requested", "2500.00", "0.00")
    assert (line["requested_by"], line["currency"]) == ("api:sales-1", "CLP")

    url = f"/api/v1/credit/lines/{line['id']}/approve"
    assert_error(post(sales, url), 403, "missing_scope")
    # The requester cannot approve even with the scope.
    assert_error(
        post(api_client_for(tenant_a, MANAGER, user_id="sales-1"), url), 403, "self_approval_forbidden"
    )

    manager = api_client_for(tenant_a, MANAGER, user_id="manager-1")
    response = post(manager, url, {"credit_limit": "2000.00", "comment": "ok"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["credit_limit"], body["available"], body["payment_terms_days"]) == (
        "approved",
        "2000.00",
        "2000.00",
        60,
    )
    assert [h["action"] for h in body["history"]] == ["requested", "approved"]
    assert_error(post(manager, url), 409, "credit_line_invalid_transition")

    listed = manager.get("/api/v1/credit/lines/?status=approved").json()
    assert [row["id"] for row in listed["results"]] == [line["id"]]
    assert manager.get("/api/v1/credit/lines/?status=requested").json()["results"] == []
    assert (
        manager.get(f"/api/v1/credit/lines/?customer_id={business_a.id}").json()["results"][0]["id"]
        == line["id"]
    )
    assert manager.get(f"/api/v1/credit/lines/{line['id']}/").json()["decided_by"] == "api:manager-1"


def test_request_errors(api_a, customer_a, business_a):
    url = "/api/v1/credit/lines/"
    assert_error(
        post(
            api_a, url, {"customer_id": str(customer_a.id), "requested_limit": "1", "payment_terms_days": 30}
        ),
        409,
        "credit_business_only",
    )
    assert_error(
        post(
            api_a, url, {"customer_id": str(business_a.id), "requested_limit": "-1", "payment_terms_days": 30}
        ),
        400,
        "invalid_amount",
    )
    assert_error(
        post(
            api_a, url, {"customer_id": str(business_a.id), "requested_limit": 1.5, "payment_terms_days": 30}
        ),
        400,
        "invalid_amount",
    )
    assert_error(
        post(
            api_a, url, {"customer_id": str(business_a.id), "requested_limit": "1", "payment_terms_days": 400}
        ),
        400,
        "validation_error",
    )
    ok = {"customer_id": str(business_a.id), "requested_limit": "10", "payment_terms_days": 30}
    assert post(api_a, url, ok).status_code == 201
    assert_error(post(api_a, url, ok), 409, "credit_line_exists")


def test_reject_suspend_reinstate_close_and_limit(api_client_for, tenant_a, business_a):
    manager = api_client_for(tenant_a, MANAGER, user_id="boss")
    line = credit_line_requested(business_a)
    base = f"/api/v1/credit/lines/{line.pk}"
    assert_error(post(manager, f"{base}/reject"), 400, "validation_error")
    assert post(manager, f"{base}/reject", {"reason": "no references"}).json()["status"] == "rejected"

    line = credit_line_approved(business_a)
    base = f"/api/v1/credit/lines/{line.pk}"
    writer = api_client_for(tenant_a, WRITE)
    assert_error(post(writer, f"{base}/suspend", {"reason": "x"}), 403, "missing_scope")
    assert post(manager, f"{base}/suspend", {"reason": "review"}).json()["status"] == "suspended"
    assert post(manager, f"{base}/reinstate").json()["status"] == "approved"
    body = post(
        manager, f"{base}/limit", {"credit_limit": "1500", "payment_terms_days": 45, "reason": "growth"}
    )
    assert (body.json()["credit_limit"], body.json()["payment_terms_days"]) == ("1500.00", 45)
    assert post(manager, f"{base}/close", {"reason": "done"}).json()["status"] == "closed"


def test_another_tenants_line_and_customer_are_not_found(api_b, approved_line, business_a):
    assert_error(api_b.get(f"/api/v1/credit/lines/{approved_line.pk}/"), 404, "credit_line_not_found")
    assert_error(api_b.get("/api/v1/credit/lines/not-a-uuid/"), 404, "credit_line_not_found")
    assert_error(
        post(api_b, f"/api/v1/credit/lines/{approved_line.pk}/approve"), 404, "credit_line_not_found"
    )
    assert_error(api_b.get(f"/api/v1/customers/{business_a.id}/credit/"), 404, "customer_not_found")
    response = post(
        api_b, f"/api/v1/customers/{business_a.id}/credit/uses/", {"amount": "1", "order_id": "x"}, key="k"
    )
    assert_error(response, 404, "customer_not_found")


# --- A customer's credit ------------------------------------------------------------------------------------------
def test_summary_check_use_and_charges(api_client_for, tenant_a, business_a, approved_line):
    reader = api_client_for(tenant_a, READ)
    writer = api_client_for(tenant_a, WRITE, user_id="pos-7")
    base = f"/api/v1/customers/{business_a.id}/credit"

    summary = reader.get(f"{base}/").json()
    assert (summary["status"], summary["credit_limit"], summary["available"]) == (
        "approved",
        "1000.00",
        "1000.00",
    )
    assert summary["volume_discounts"] == []

    check = reader.get(f"{base}/check?amount=400.00").json()
    assert (check["available"], check["reason"], check["available_amount"]) == (True, "", "1000.00")
    assert_error(reader.get(f"{base}/check?amount=abc"), 400, "invalid_amount")
    assert_error(
        post(reader, f"{base}/uses/", {"amount": "1", "order_id": "o"}, key="k"), 403, "missing_scope"
    )

    assert_error(
        post(writer, f"{base}/uses/", {"amount": "400.00", "order_id": "ORD-1"}),
        400,
        "missing_idempotency_key",
    )
    first = post(writer, f"{base}/uses/", {"amount": "400.00", "order_id": "ORD-1"}, key="use-1")
    assert first.status_code == 201, first.content
    used = first.json()
    assert (used["amount"], used["available_amount"], used["currency"], used["replayed"]) == (
        "400.00",
        "600.00",
        "CLP",
        False,
    )
    again = post(writer, f"{base}/uses/", {"amount": "400.00", "order_id": "ORD-1"}, key="use-1")
    # A replay answers with the first call's status code, marked as a replay.
    assert again.status_code == 201 and again.json()["usage_id"] == used["usage_id"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert_error(
        post(writer, f"{base}/uses/", {"amount": "401.00", "order_id": "ORD-1"}, key="use-1"),
        422,
        "idempotency_key_reused",
    )
    assert_error(
        post(writer, f"{base}/uses/", {"amount": "601.00", "order_id": "ORD-2"}, key="use-2"),
        409,
        "credit_limit_exceeded",
    )
    assert_error(
        post(writer, f"{base}/uses/", {"amount": "1", "order_id": "ORD-3", "currency": "USD"}, key="use-3"),
        400,
        "invalid_currency",
    )

    charges = reader.get(f"{base}/charges/").json()["results"]
    assert [(c["order_id"], c["status"], c["outstanding"]) for c in charges] == [("ORD-1", "open", "400.00")]
    assert reader.get(f"{base}/charges/?status=paid").json()["results"] == []
    assert_error(reader.get(f"{base}/charges/?status=nope"), 400, "validation_error")

    cancel = post(
        writer, f"{base}/charges/{used['usage_id']}/cancel", {"reason": "order cancelled"}, key="c-1"
    )
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert_error(
        post(writer, f"{base}/charges/{used['usage_id']}/cancel", {"reason": "other"}, key="c-1"),
        422,
        "idempotency_key_reused",
    )
    assert_error(
        post(writer, f"{base}/charges/not-a-uuid/cancel", {"reason": "x"}, key="c-2"),
        404,
        "credit_charge_not_found",
    )
    assert reader.get(f"{base}/").json()["used"] == "0.00"


def test_use_refusals_over_rest(api_client_for, tenant_a, business_a, customer_a):
    writer = api_client_for(tenant_a, WRITE)
    line = credit_line_requested(business_a)
    base = f"/api/v1/customers/{business_a.id}/credit"
    assert_error(
        post(writer, f"{base}/uses/", {"amount": "1", "order_id": "o"}, key="a"),
        409,
        "credit_line_not_active",
    )
    assert_error(
        post(
            writer,
            f"/api/v1/customers/{customer_a.id}/credit/uses/",
            {"amount": "1", "order_id": "o"},
            key="b",
        ),
        404,
        "credit_line_not_found",
    )
    assert_error(writer.get(f"/api/v1/customers/{customer_a.id}/credit/"), 404, "credit_line_not_found")
    with tenant_context(tenant_a):
        CreditLine.objects.filter(pk=line.pk).update(status="on_hold", approved_limit=10)
    assert_error(
        post(writer, f"{base}/uses/", {"amount": "1", "order_id": "o"}, key="c"), 409, "credit_on_hold"
    )


def test_holds_over_rest(api_client_for, tenant_a, business_a, approved_line):
    writer = api_client_for(tenant_a, WRITE)
    base = f"/api/v1/customers/{business_a.id}/credit/holds/"
    placed = post(writer, base, {"amount": "300", "order_id": "ORD-1"}, key="h-1")
    assert placed.status_code == 201, placed.content
    hold = placed.json()
    assert (hold["status"], hold["available_amount"]) == ("active", "700.00")
    replay = post(writer, base, {"amount": "300", "order_id": "ORD-1"}, key="h-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"  # the first call's status
    # The same hold under a new key finds it: a replay of the order (200), not a new hold.
    found = post(writer, base, {"amount": "300", "order_id": "ORD-1"}, key="h-1b")
    assert found.status_code == 200 and found.json()["hold_id"] == hold["hold_id"]
    assert_error(
        post(writer, base, {"amount": "301", "order_id": "ORD-1"}, key="h-2"), 409, "credit_hold_exists"
    )
    assert_error(
        post(writer, base, {"amount": "800", "order_id": "ORD-2"}, key="h-3"), 409, "credit_limit_exceeded"
    )
    assert_error(
        post(
            writer,
            base,
            {"amount": "1", "order_id": "ORD-4", "expires_at": "2000-01-01T00:00:00Z"},
            key="h-4",
        ),
        400,
        "invalid_hold_expiry",
    )
    assert [h["order_id"] for h in writer.get(f"{base}?status=active").json()["results"]] == ["ORD-1"]
    released = post(writer, f"{base}{hold['hold_id']}/release", key="r-1")
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert_error(post(writer, f"{base}{hold['hold_id']}/release"), 400, "missing_idempotency_key")
    assert writer.get(f"/api/v1/customers/{business_a.id}/credit/").json()["available"] == "1000.00"


def test_payments_over_rest(api_client_for, tenant_a, business_a, approved_line):
    writer = api_client_for(tenant_a, WRITE)
    base = f"/api/v1/customers/{business_a.id}/credit"
    post(writer, f"{base}/uses/", {"amount": "400", "order_id": "ORD-1"}, key="u-1")
    data = {"payment_id": "PAY-1", "amount": "500.00", "order_id": "ORD-1"}
    paid = post(writer, f"{base}/payments/", data, key="p-1")
    assert paid.status_code == 201, paid.content
    body = paid.json()
    assert (body["applied_amount"], body["unapplied_amount"], body["available_amount"]) == (
        "400.00",
        "100.00",
        "1000.00",
    )
    assert body["allocations"][0]["order_id"] == "ORD-1"
    assert post(writer, f"{base}/payments/", data, key="p-1").json()["replayed"] is True
    assert post(writer, f"{base}/payments/", data, key="p-other").json()["replayed"] is True
    assert_error(
        post(writer, f"{base}/payments/", {**data, "amount": "1"}, key="p-2"), 422, "idempotency_key_reused"
    )
    listed = writer.get(f"{base}/payments/").json()["results"]
    assert [(p["payment_id"], p["unapplied_amount"]) for p in listed] == [("PAY-1", "100.00")]
    assert writer.get(f"{base}/").json()["unapplied_credit"] == "100.00"


def test_reports_over_rest(api_client_for, tenant_a, business_a, approved_line, clock_at):
    reader = api_client_for(tenant_a, READ)
    writer = api_client_for(tenant_a, WRITE)
    post(
        writer, f"/api/v1/customers/{business_a.id}/credit/uses/", {"amount": "250", "order_id": "A"}, key="u"
    )
    aging = reader.get(f"/api/v1/customers/{business_a.id}/credit/aging/").json()
    assert aging["buckets"] == {
        "current": "250.00",
        "days_1_30": "0.00",
        "days_31_60": "0.00",
        "days_61_90": "0.00",
        "over_90": "0.00",
    }
    assert (aging["total"], aging["as_of"]) == ("250.00", "2026-03-02")
    tenant_aging = reader.get("/api/v1/credit/aging/").json()
    assert tenant_aging["total"] == "250.00"
    assert tenant_aging["customers"][0]["customer_id"] == str(business_a.id)
    kpis = reader.get("/api/v1/credit/kpis/").json()
    assert kpis == {
        "limit_total": "1000.00",
        "used_total": "250.00",
        "available_total": "750.00",
        "lines_active": 1,
        "lines_on_hold": 0,
        "lines_pending": 0,
    }
    behaviour = reader.get(f"/api/v1/customers/{business_a.id}/credit/behaviour/").json()
    assert behaviour["charges_paid"] == 0 and behaviour["unpaid_overdue"] == 0
    assert_error(api_client_for(tenant_a, []).get("/api/v1/credit/kpis/"), 403, "missing_scope")


def test_commercial_terms_for_the_pricing_service(
    api_client_for, tenant_a, business_a, customer_a, approved_line
):
    reader = api_client_for(tenant_a, READ)
    manager = api_client_for(tenant_a, MANAGER)
    url = f"/api/v1/customers/{business_a.id}/credit/terms/"
    brackets = [
        {"min_amount": "1000.00", "discount_percent": "5.00"},
        {"category": "cement", "min_amount": "0", "discount_percent": "2.5"},
    ]
    assert_error(reader.put(url, {"volume_discounts": brackets}, format="json"), 403, "missing_scope")
    response = manager.put(url, {"volume_discounts": brackets}, format="json")
    assert response.status_code == 200, response.content
    body = reader.get(url).json()
    assert body == {
        "customer_id": str(business_a.id),
        "currency": "CLP",
        "credit_status": "approved",
        "payment_terms_days": 30,
        "volume_discounts": [
            {"category": "", "min_amount": "1000.00", "discount_percent": "5.00"},
            {"category": "cement", "min_amount": "0.00", "discount_percent": "2.50"},
        ],
    }
    assert len(reader.get(f"/api/v1/customers/{business_a.id}/credit/").json()["volume_discounts"]) == 2
    bad = [{"min_amount": "1", "discount_percent": "150"}]
    assert_error(manager.put(url, {"volume_discounts": bad}, format="json"), 400, "invalid_discount_bracket")
    individual = f"/api/v1/customers/{customer_a.id}/credit/terms/"
    assert_error(
        manager.put(individual, {"volume_discounts": []}, format="json"), 409, "credit_business_only"
    )
    assert reader.get(individual).json()["credit_status"] == "none"


def test_the_openapi_schema_describes_the_credit_endpoints(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/credit/lines/",
        "/api/v1/credit/lines/{line_id}/approve",
        "/api/v1/customers/{customer_id}/credit/uses/",
        "/api/v1/customers/{customer_id}/credit/payments/",
        "/api/v1/customers/{customer_id}/credit/terms/",
    ):
        assert path in paths, path


def test_tenant_totals_beyond_one_lines_digits_are_served(api_client_for, tenant_a):
    """Three lines at the largest limit add up to more digits than one amount has: the totals still render."""
    from tests.factories import BusinessCustomerFactory

    customers = [BusinessCustomerFactory(tenant=tenant_a) for _ in range(3)]
    for customer in customers:
        credit_line_approved(customer, limit="999999999999.99")
    with tenant_context(tenant_a):
        for i, customer in enumerate(customers):
            services.credit_use(customer=customer, amount=D("999999999999.99"), order_id=f"BIG-{i}")
    reader = api_client_for(tenant_a, READ)
    kpis = reader.get("/api/v1/credit/kpis/")
    assert kpis.status_code == 200, kpis.content
    assert (kpis.json()["limit_total"], kpis.json()["used_total"]) == ("2999999999999.97", "2999999999999.97")
    aging = reader.get("/api/v1/credit/aging/")
    assert aging.status_code == 200, aging.content
    assert aging.json()["total"] == "2999999999999.97"
    assert aging.json()["buckets"]["current"] == "2999999999999.97"
