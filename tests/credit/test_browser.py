"""The approval flow end to end in headless Chromium (Playwright) against pytest-django's live server."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from core import clock
from core.tenancy import tenant_context
from credit import services
from credit.errors import CreditLineNotActive
from credit.models import CreditLine
from tests.credit.factories import credit_line_requested

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "secret-pass"


def log_in(page, live_server, username, next_path):
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def pick_customer(page, name):
    """Choose a customer in the admin's autocomplete picker (select2): open it, type, take the match."""
    page.locator(".field-customer .select2-selection").click()
    page.fill(".select2-search__field", name.split()[0])
    page.locator(".select2-results__option", has_text=name).click()


def test_a_credit_manager_approves_a_request_from_the_queue(
    chromium, live_server, page, make_staff, business_a
):
    line = credit_line_requested(business_a, limit="750000.00", terms=30, requested_by="api:sales-rep")
    make_staff(business_a.tenant, "carla")

    log_in(page, live_server, "carla", "/admin/credit/creditrequest/")
    row = page.locator("#result_list tbody tr", has_text=str(business_a))
    row.get_by_role("link", name="Review").click()

    page.wait_for_selector("#approve-form")
    # 750,000 CLP as a Chilean reads it: peso sign, dot grouping, no decimals (the peso has none).
    assert page.inner_text("#requested-limit") == "$750.000"
    assert (
        page.is_visible("#exposure") and page.is_visible("#payment-behaviour") and page.is_visible("#aging")
    )
    assert not page.is_visible("#own-request-warning")
    page.fill("#id_approved_limit", "600000")
    page.fill("#id_payment_terms_days", "45")
    page.fill("#id_comment", "Good references")
    page.click("#approve-button")

    page.wait_for_url(re.compile(r"/admin/credit/creditrequest/$"))
    assert "was approved" in page.inner_text(".messagelist .success")
    assert page.locator("#result_list", has_text=str(business_a)).count() == 0

    with tenant_context(business_a.tenant_id):
        approved = CreditLine.objects.get(pk=line.pk)
        assert (approved.status, approved.approved_limit, approved.payment_terms_days) == (
            "approved",
            Decimal("600000.00"),
            45,
        )
        assert approved.decided_by == "admin:carla"
        usage = services.credit_use(customer=business_a, amount=Decimal("125000.50"), order_id="WEB-1")
    assert usage.available_amount == Decimal("474999.50")
    assert usage.due_date == clock.today(business_a.tenant.time_zone) + timedelta(days=45)


def test_a_requester_cannot_approve_their_own_request(chromium, live_server, page, make_staff, business_a):
    make_staff(business_a.tenant, "diego")

    log_in(page, live_server, "diego", "/admin/credit/creditline/add/")
    pick_customer(page, str(business_a))
    page.fill("#id_requested_limit", "90000")
    page.fill("#id_payment_terms_days", "60")
    page.fill("#id_request_reason", "New builder account")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(f"{live_server.url}/admin/credit/creditrequest/")
    page.locator("#result_list tbody tr", has_text=str(business_a)).get_by_role("link", name="Review").click()
    page.wait_for_selector("#own-request-warning")
    # Nobody is offered a decision they may not take ...
    assert page.locator("#approve-button").count() == 0 and page.locator("#reject-button").count() == 0
    # ... and a forged approval is still refused by the service.
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")).split("=")[1];
            const fields = {csrfmiddlewaretoken: token, action: "approve", approved_limit: "90000",
                            payment_terms_days: "60"};
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement("input");
                input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }"""
    )
    page.wait_for_selector(".messagelist .error")
    assert "Nobody may approve their own credit request." in page.inner_text(".messagelist .error")

    with tenant_context(business_a.tenant_id):
        line = CreditLine.objects.get(customer=business_a)
        assert (line.status, line.requested_by) == ("requested", "admin:diego")
        with pytest.raises(CreditLineNotActive):
            services.credit_use(customer=business_a, amount=Decimal("1"), order_id="WEB-2")
