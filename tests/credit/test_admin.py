"""The credit managers' admin screens through Django's test client (the browser test drives the same pages)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from core.tenancy import all_tenants_context, tenant_context
from credit import services
from credit.models import CreditLine
from tests.credit.conftest import T0
from tests.credit.factories import credit_line_approved, credit_line_requested
from tests.factories import BusinessCustomerFactory

pytestmark = pytest.mark.django_db

QUEUE = "/admin/credit/creditrequest/"


def decide_url(line):
    return reverse("admin:credit_creditrequest_decide", args=[line.pk])


def status_of(line):
    with all_tenants_context():
        return CreditLine.objects.get(pk=line.pk)


def test_the_queue_lists_pending_requests_of_the_managers_tenant_only(
    client, make_staff, tenant_a, business_a, business_b
):
    mine = credit_line_requested(business_a)
    theirs = credit_line_requested(business_b)
    approved = credit_line_approved(BusinessCustomerFactory(tenant=tenant_a))
    client.force_login(make_staff(tenant_a, "carla"))
    page = client.get(QUEUE)
    assert page.status_code == 200
    html = page.content.decode()
    assert decide_url(mine) in html
    assert decide_url(theirs) not in html and str(business_b) not in html
    assert decide_url(approved) not in html
    # Typing the other tenant's URL directly does not reach it either.
    assert client.get(decide_url(theirs)).status_code == 404
    assert client.post(decide_url(theirs), {"action": "reject", "reason": "x"}).status_code == 404
    assert status_of(theirs).status == "requested"


def test_the_approval_page_shows_what_a_manager_decides_on(
    client, make_staff, tenant_a, business_a, clock_at
):
    from datetime import timedelta

    # The customer had a line, paid an order 10 days late, closed it, and now asks again.
    earlier = credit_line_approved(business_a, limit="500.00")
    with tenant_context(tenant_a):
        services.credit_use(customer=business_a, amount=Decimal("120.00"), order_id="OLD-1")
        clock_at(T0 + timedelta(days=40))
        services.payment_record(customer=business_a, payment_id="P-OLD", amount=Decimal("120.00"))
        services.credit_line_close(line=earlier, actor="admin:x", reason="renewal")
    line = credit_line_requested(business_a, limit="7500.00", terms=60)
    client.force_login(make_staff(tenant_a, "carla"))
    page = client.get(decide_url(line))
    html = page.content.decode()
    for text in ("Requested limit", "7500.00", "60 days", "Current exposure", "Payment behaviour", "Aging"):
        assert text in html, text
    assert page.context["behaviour"].paid_late == 1 and page.context["behaviour"].max_days_late == 10
    assert "OLD-1" in html and "Earlier lines" in html
    assert page.context["aging"].total == 0
    assert 'id="approve-button"' in html and 'id="reject-button"' in html


def test_approve_from_the_page_calls_the_service(client, make_staff, tenant_a, business_a):
    line = credit_line_requested(business_a, limit="5000.00")
    client.force_login(make_staff(tenant_a, "carla"))
    response = client.post(
        decide_url(line),
        {
            "action": "approve",
            "approved_limit": "4000.00",
            "payment_terms_days": "45",
            "comment": "good payer",
        },
    )
    assert response.status_code == 302 and response["Location"] == QUEUE
    line = status_of(line)
    assert (line.status, line.approved_limit, line.payment_terms_days) == ("approved", Decimal("4000.00"), 45)
    assert (line.decided_by, line.decision_comment) == ("admin:carla", "good payer")


def test_reject_from_the_page_needs_a_reason(client, make_staff, tenant_a, business_a):
    line = credit_line_requested(business_a)
    client.force_login(make_staff(tenant_a, "carla"))
    assert client.post(decide_url(line), {"action": "reject", "reason": ""}).status_code == 200
    assert status_of(line).status == "requested"
    client.post(decide_url(line), {"action": "reject", "reason": "no references"})
    assert (status_of(line).status, status_of(line).decision_comment) == ("rejected", "no references")


def test_a_manager_cannot_approve_the_request_they_made_in_the_admin(
    client, make_staff, tenant_a, business_a
):
    client.force_login(make_staff(tenant_a, "diego"))
    response = client.post(
        "/admin/credit/creditline/add/",
        {"customer": str(business_a.id), "requested_limit": "900.00", "payment_terms_days": "30"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant_a):
        line = CreditLine.objects.get(customer=business_a)
    assert (line.status, line.requested_by) == ("requested", "admin:diego")
    page = client.get(decide_url(line)).content.decode()
    assert "own-request-warning" in page
    response = client.post(
        decide_url(line),
        {"action": "approve", "approved_limit": "900.00", "payment_terms_days": "30"},
        follow=True,
    )
    assert "Nobody may approve their own credit request." in response.content.decode()
    assert status_of(line).status == "requested"


def test_staff_without_the_approve_permission_cannot_decide(client, make_staff, tenant_a, business_a):
    line = credit_line_requested(business_a)
    client.force_login(make_staff(tenant_a, "clerk", manager=False))
    assert client.get(decide_url(line)).status_code == 403
    assert client.post(decide_url(line), {"action": "reject", "reason": "x"}).status_code == 403
    assert client.get(QUEUE).status_code == 403
    assert status_of(line).status == "requested"


def test_another_tenants_request_is_not_found(client, make_staff, tenant_a, business_b):
    line = credit_line_requested(business_b)
    client.force_login(make_staff(tenant_a, "carla"))
    assert client.get(decide_url(line)).status_code == 404


def test_the_aging_report_and_the_line_screens(
    client, make_staff, tenant_a, tenant_b, business_a, approved_line
):
    from core.models import User

    with tenant_context(tenant_a):
        services.credit_use(customer=business_a, amount=Decimal("10"), order_id="A")
    client.force_login(make_staff(tenant_a, "carla"))
    html = client.get("/admin/credit/creditline/aging/").content.decode()
    assert "Aging as of" in html and str(business_a) in html
    assert client.get("/admin/credit/creditline/").status_code == 200
    assert client.get(f"/admin/credit/creditline/{approved_line.pk}/change/").status_code == 200
    for model in ("creditcharge", "credithold", "creditpayment", "creditledgerentry"):
        assert client.get(f"/admin/credit/{model}/").status_code == 200, model
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    assert client.get(f"/admin/credit/creditline/aging/?tenant={tenant_b.slug}").status_code == 200
    assert client.get("/admin/credit/creditline/aging/?tenant=nope").status_code == 404


def test_line_actions_and_volume_discounts_in_the_admin(
    client, make_staff, tenant_a, business_a, approved_line
):
    from credit.models import VolumeDiscountBracket

    client.force_login(make_staff(tenant_a, "carla"))
    changelist = "/admin/credit/creditline/"
    selected = {"_selected_action": [str(approved_line.pk)]}
    assert client.post(changelist, {"action": "suspend_selected", **selected}).status_code == 302
    assert status_of(approved_line).status == "suspended"
    client.post(changelist, {"action": "reinstate_selected", **selected})
    assert status_of(approved_line).status == "approved"
    client.post(changelist, {"action": "close_selected", **selected})
    assert status_of(approved_line).status == "closed"

    add = "/admin/credit/volumediscountbracket/add/"
    bad = {
        "customer": str(business_a.id),
        "category": "Cement",
        "min_amount": "100",
        "discount_percent": "150",
    }
    assert client.post(add, bad).status_code == 200
    assert client.post(add, {**bad, "discount_percent": "5"}).status_code == 302
    with tenant_context(tenant_a):
        bracket = VolumeDiscountBracket.objects.get(customer=business_a)
    assert (bracket.category, bracket.discount_percent, bracket.updated_by) == (
        "cement",
        Decimal("5"),
        "admin:carla",
    )
    assert (
        client.post(add, {**bad, "category": "cement", "discount_percent": "6"}).status_code == 200
    )  # duplicate


# --- Every page, for every kind of staff user ------------------------------------------------------------------
def _admin_pages(tenant_b, line, request):
    pages = ["/admin/", "/admin/credit/", "/admin/credit/creditline/aging/"]
    pages.append(f"/admin/credit/creditline/aging/?tenant={tenant_b.slug}")
    for model in (
        "creditline",
        "creditrequest",
        "creditcharge",
        "credithold",
        "creditpayment",
        "creditledgerentry",
        "volumediscountbracket",
    ):
        pages += [f"/admin/credit/{model}/", f"/admin/credit/{model}/add/", f"/admin/credit/{model}/?q=x&o=1"]
    pages += [
        f"/admin/credit/creditline/{line.pk}/change/",
        f"/admin/credit/creditline/{line.pk}/history/",
        f"/admin/credit/creditline/{request.pk}/change/",
        f"/admin/credit/creditrequest/{request.pk}/change/",
        decide_url(request),
        decide_url(line),
        "/admin/credit/creditrequest/00000000-0000-0000-0000-000000000000/decide/",
    ]
    with all_tenants_context():
        from credit.models import (
            CreditCharge,
            CreditHold,
            CreditLedgerEntry,
            CreditPayment,
            VolumeDiscountBracket,
        )

        for model in (CreditCharge, CreditHold, CreditPayment, CreditLedgerEntry, VolumeDiscountBracket):
            first = model.objects.order_by("pk").first()
            pages.append(f"/admin/credit/{model._meta.model_name}/{first.pk}/change/")
    return pages


def test_every_admin_page_renders_for_managers_plain_staff_and_superusers(
    client, make_staff, tenant_a, tenant_b, business_a, business_b
):
    from core.models import User

    line = credit_line_approved(business_a)
    request = credit_line_requested(BusinessCustomerFactory(tenant=tenant_a))
    credit_line_requested(business_b)
    with tenant_context(tenant_a):
        services.credit_use(customer=business_a, amount=Decimal("10"), order_id="A")
        services.credit_hold_place(customer=business_a, amount=Decimal("10"), order_id="H")
        services.payment_record(customer=business_a, payment_id="P", amount=Decimal("1"))
        services.volume_discounts_replace(
            customer=business_a, brackets=[{"min_amount": "1", "discount_percent": "2"}], actor="t"
        )
    users = {
        "manager": make_staff(tenant_a, "carla"),
        "plain": make_staff(tenant_a, "clerk", manager=False),
        "superuser": User.objects.create_superuser("root", "root@example.com", "pw"),
    }
    pages = _admin_pages(tenant_b, line, request)
    seen = {}
    for name, user in users.items():
        client.force_login(user)
        for url in pages:
            seen[(name, url)] = client.get(url).status_code
    errors = {key: code for key, code in seen.items() if code >= 500}
    assert not errors
    # The pages a role is for render (not just "no 500"); the others are refused, never half-shown.
    for url in (
        QUEUE,
        decide_url(request),
        "/admin/credit/creditline/aging/",
        f"/admin/credit/creditline/{line.pk}/change/",
    ):
        assert seen[("manager", url)] == seen[("superuser", url)] == 200, url
        assert seen[("plain", url)] == 403, url
    assert seen[("superuser", f"/admin/credit/creditline/aging/?tenant={tenant_b.slug}")] == 200


def test_a_superuser_approves_from_the_all_tenants_context_for_the_lines_tenant(
    client, tenant_a, tenant_b, business_b
):
    from core.models import OutboxEvent, User
    from credit.models import CreditLineChange

    line = credit_line_requested(business_b, limit="5000.00")
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    assert str(business_b) in client.get(QUEUE).content.decode()
    response = client.post(
        decide_url(line), {"action": "approve", "approved_limit": "4000.00", "payment_terms_days": "60"}
    )
    assert response.status_code == 302 and response["Location"] == QUEUE
    with tenant_context(tenant_b):
        approved = CreditLine.objects.get(pk=line.pk)
        assert (approved.status, approved.approved_limit, approved.decided_by) == (
            "approved",
            Decimal("4000.00"),
            "admin:root",
        )
        assert list(CreditLineChange.objects.filter(line=line).values_list("action", flat=True)) == [
            "requested",
            "approved",
        ]
        [event] = OutboxEvent.objects.filter(event_type="credit.approved")
        assert event.tenant_id == event.payload["tenant_id"] == tenant_b.slug
        # The approved line is usable from its own tenant's doors.
        services.credit_use(customer=business_b, amount=Decimal("100"), order_id="AFTER")
    with tenant_context(tenant_a):
        assert not OutboxEvent.objects.filter(event_type="credit.approved").exists()


def test_staff_without_a_tenant_see_no_tenants_aging(client, make_staff, tenant_b, business_b):
    credit_line_approved(business_b)
    with tenant_context(tenant_b):
        services.credit_use(customer=business_b, amount=Decimal("10"), order_id="SECRET")
    client.force_login(make_staff(None, "ghost"))  # staff and credit manager, but of no tenant
    for url in ("/admin/credit/creditline/aging/", f"/admin/credit/creditline/aging/?tenant={tenant_b.slug}"):
        response = client.get(url)
        assert response.status_code in (403, 404), url
        assert str(business_b) not in response.content.decode()


def test_line_actions_lock_lines_in_primary_key_order(client, make_staff, tenant_a, monkeypatch):
    """An admin request is one transaction that keeps each line it touched locked until it ends: bulk actions
    (and anything else locking several lines) take them in one order, the primary key's, or two of them over
    overlapping selections, sorted differently on the changelist, can deadlock."""
    from datetime import timedelta

    lines = sorted(
        (credit_line_approved(BusinessCustomerFactory(tenant=tenant_a)) for _ in range(4)),
        key=lambda line: line.pk,
    )
    with tenant_context(tenant_a):
        # Newest first (the changelist's order) is the reverse of primary-key order.
        for i, line in enumerate(lines):
            CreditLine.objects.filter(pk=line.pk).update(created_at=T0 + timedelta(minutes=i))
    seen = []
    real = services.credit_line_suspend

    def spy(*, line, **kwargs):
        seen.append(line.pk)
        return real(line=line, **kwargs)

    monkeypatch.setattr(services, "credit_line_suspend", spy)
    client.force_login(make_staff(tenant_a, "carla"))
    selected = [str(line.pk) for line in reversed(lines)]
    response = client.post(
        "/admin/credit/creditline/", {"action": "suspend_selected", "_selected_action": selected}
    )
    assert response.status_code == 302
    assert seen == [line.pk for line in lines]


def test_a_refusal_while_saving_in_the_admin_is_a_message_not_a_server_error(
    client, make_staff, tenant_a, business_a, monkeypatch
):
    """The form checks first, but a concurrent request can still make the service refuse at save time."""
    from credit.errors import CreditLineExists, InvalidDiscountBracket
    from credit.models import VolumeDiscountBracket

    def refuse_line(**kwargs):
        raise CreditLineExists()

    def refuse_bracket(**kwargs):
        raise InvalidDiscountBracket("A bracket with this category and min_amount exists.")

    monkeypatch.setattr(services, "credit_line_request", refuse_line)
    monkeypatch.setattr(services, "volume_discount_bracket_save", refuse_bracket)
    client.force_login(make_staff(tenant_a, "carla"))
    response = client.post(
        "/admin/credit/creditline/add/",
        {"customer": str(business_a.id), "requested_limit": "900.00", "payment_terms_days": "30"},
        follow=True,
    )
    assert response.status_code == 200
    assert CreditLineExists.message in response.content.decode()
    response = client.post(
        "/admin/credit/volumediscountbracket/add/",
        {"customer": str(business_a.id), "category": "", "min_amount": "1", "discount_percent": "5"},
        follow=True,
    )
    assert response.status_code == 200
    assert "A bracket with this category and min_amount exists." in response.content.decode()
    with tenant_context(tenant_a):
        assert not CreditLine.objects.filter(customer=business_a).exists()
        assert not VolumeDiscountBracket.objects.exists()
