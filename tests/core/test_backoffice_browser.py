"""The back office in headless Chromium at 1366×900, as each role of the demo tenant: what each screen shows and
hides, what the role can and cannot do. Every screen is saved as a screenshot (the folder is named at the end of
the test run: test-results/screenshots unless SCREENSHOT_DIR says otherwise)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from core.tenancy import tenant_context
from customers.models import Customer
from tests.conftest import screenshot_dir
from tests.core.conftest import DEMO_USERS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page: Any, name: str) -> None:
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def log_in(page: Any, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_USERS[username])
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def text_of(page: Any, selector: str) -> str:
    """The text as written (inner_text would give what CSS upper-cases)."""
    return (page.text_content(selector) or "").strip()


def no_horizontal_scroll(page: Any) -> bool:
    """Neither the page nor a list's own scroll box (the admin's `.results`) scrolls sideways."""
    return bool(
        page.evaluate(
            """() => [document.documentElement, ...document.querySelectorAll("#changelist .results")]
                .every((box) => box.scrollWidth <= box.clientWidth + 1)"""
        )
    )


def customer_pk(tenant: Any, email: str) -> Any:
    with tenant_context(tenant):
        return Customer.objects.get(email=email).pk


def open_360(page: Any, live_server: Any, tenant: Any, email: str) -> None:
    page.goto(f"{live_server.url}/admin/customers/customer/{customer_pk(tenant, email)}/360/")
    page.wait_for_selector("#panel-identity")


def test_a_credit_manager_walks_the_back_office(chromium, live_server, page, demo):
    log_in(page, live_server, "manager")
    assert page.inner_text("#site-name") == "zenLogic — Customers"
    assert "Times in America/Santiago" in page.inner_text("#time-zone-note")
    shot(page, "manager-01-home")

    page.goto(f"{live_server.url}/admin/customers/customer/")
    assert no_horizontal_scroll(page), "the customers list runs off the right edge at 1366 px"
    header = page.inner_text("#result_list thead")
    for column in ("TIER", "SEGMENT", "CREDIT AVAILABLE"):
        assert column in header
    assert (
        page.locator(".object-tools a.addlink").count() == 0
    )  # credit managers read customers, they don't add them
    andes_row = page.locator("#result_list tbody tr", has_text="Andes Construcciones")
    assert "$3.750.000" in andes_row.inner_text()
    shot(page, "manager-02-customers")

    andes_row.get_by_role("link", name="Andes Construcciones").click()
    page.wait_for_selector("#panel-credit")
    for panel in ("identity", "loyalty", "credit", "segment", "purchases", "changes"):
        assert page.is_visible(f"#panel-{panel}"), panel
    credit = page.inner_text("#panel-credit")
    assert "$5.000.000" in credit and "$1.250.000" in credit and "$3.750.000" in credit
    assert "5000000" not in credit and not re.search(r"\.\d{2}(?!\d)", credit), "pesos have no decimals"
    assert "ORD-1001" in credit
    assert text_of(page, "#edit-customer") == "Details"  # read-only for this role
    assert no_horizontal_scroll(page)
    shot(page, "manager-03-customer-360-business")
    page.locator("#panel-credit").get_by_role("link", name="All charges").click()
    page.wait_for_selector("#result_list")
    assert "ORD-1001" in page.inner_text("#result_list") and "$1.250.000" in page.inner_text("#result_list")
    assert no_horizontal_scroll(page)

    page.goto(f"{live_server.url}/admin/credit/creditline/")
    shot(page, "manager-04-credit-lines")
    assert "$5.000.000" in page.inner_text("#result_list")
    assert no_horizontal_scroll(page)

    page.goto(f"{live_server.url}/admin/credit/creditrequest/")
    row = page.locator("#result_list tbody tr", has_text="Café del Puerto")
    assert "$800.000" in row.inner_text()
    row.get_by_role("link", name="Review").click()
    page.wait_for_selector("#approve-form")
    assert page.inner_text("#requested-limit") == "$800.000"
    assert page.inner_text("#requested-at").endswith("(America/Santiago)")
    assert page.is_visible("#approve-button") and page.is_visible("#reject-button")
    label_x = page.locator("#approve-form label[for=id_approved_limit]").bounding_box()["x"]
    assert page.locator("#approve-form label[for=id_payment_terms_days]").bounding_box()["x"] == label_x
    shot(page, "manager-05-credit-decision")

    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_function("window.dashboardReady === true", timeout=10_000)
    assert page.inner_text('[data-kpi="credit_pending"] .dashboard-card-value') == "1"
    assert page.inner_text('[data-kpi="credit_on_hold"] .dashboard-card-value') == "0"
    assert page.inner_text('[data-kpi="credit_overdue"] .dashboard-card-value') == "$0"
    assert page.inner_text('[data-kpi="liability"] .dashboard-card-value').startswith("$")
    issued = page.inner_text('[data-kpi="points"] .dashboard-card-value')
    assert issued.split(" / ")[0] != "0", "the default period includes today's points"
    assert no_horizontal_scroll(page)
    shot(page, "manager-06-dashboard")

    # as if following a bookmark or a link from the customers list
    page.goto(
        f"{live_server.url}/admin/customers/customer/add/",
        referer=f"{live_server.url}/admin/customers/customer/",
    )
    assert page.inner_text("#content-main h1") == "Access denied"
    assert page.inner_text("#site-name") == "zenLogic — Customers"
    shot(page, "manager-07-forbidden")
    page.click("#go-back")
    page.wait_for_url(re.compile(r"/admin/customers/customer/$"))


def test_store_staff_walk_the_back_office(chromium, live_server, page, demo):
    with tenant_context(demo):
        from customers.services import customer_create

        customer_create(
            tenant=demo,
            data={"type": "business", "legal_name": "Ferretería Sur Ltda", "trade_name": "Ferretería Sur"},
            actor="test",
        )
    log_in(page, live_server, "store")
    assert page.locator("#content-main", has_text="Pending requests").count() == 0
    shot(page, "store-01-home")

    page.goto(f"{live_server.url}/admin/customers/customer/")
    assert page.is_visible(".object-tools a.addlink")  # store staff add customers
    assert no_horizontal_scroll(page)
    shot(page, "store-02-customers")

    open_360(page, live_server, demo, "ana.perez@example.com")
    loyalty = page.inner_text("#panel-loyalty")
    assert "Available points" in loyalty and "Next tier" in loyalty and page.is_visible(".tier-progress")
    assert "POS-1002" in loyalty
    assert page.locator("#panel-credit").count() == 0  # an individual without a line: no credit panel
    assert text_of(page, "#edit-customer") == "Edit"
    shot(page, "store-03-customer-360-individual")
    page.locator("#panel-loyalty").get_by_role("link", name="All loyalty transactions").click()
    page.wait_for_selector(".field-manual_actions")
    assert page.is_visible("text=Adjust points") and page.is_visible("text=Override tier")
    shot(page, "store-04-loyalty-account")

    page.goto(f"{live_server.url}/admin/credit/creditline/add/")
    page.locator(".field-customer .select2-selection").click()
    page.locator(".select2-results__option", has_text="Andes Construcciones").wait_for()
    offered = page.inner_text(".select2-results")
    assert "Ana Pérez" not in offered and "Bruno Soto" not in offered  # business customers only
    page.fill(".select2-search__field", "Ferre")
    page.wait_for_function("document.querySelectorAll('.select2-results__option').length === 1")
    option = page.locator(".select2-results__option", has_text="Ferretería Sur")
    shot(page, "store-05-credit-request-picker")
    option.click()
    page.fill("#id_requested_limit", "300000")
    page.fill("#id_payment_terms_days", "30")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(f"{live_server.url}/admin/credit/creditline/")
    assert page.locator("#changelist-form select[name=action] option", has_text="Suspend").count() == 0
    page.goto(f"{live_server.url}/admin/credit/creditrequest/")
    assert page.inner_text("#content-main h1") == "Access denied"
    assert page.is_visible("#go-home")
    shot(page, "store-06-forbidden")

    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_function("window.dashboardReady === true", timeout=10_000)
    pending = page.locator('[data-kpi="credit_pending"]')
    assert (
        pending.inner_text().endswith("2") and pending.locator("a").count() == 0
    )  # no link to a refused page
    shot(page, "store-07-dashboard")


def test_the_superuser_sees_every_tenant_without_scrolling_sideways(chromium, live_server, page, demo):
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/admin/customers/customer/")
    assert "TENANT" in page.inner_text("#result_list thead")
    assert no_horizontal_scroll(page)
    shot(page, "admin-01-customers")
    open_360(page, live_server, demo, "compras@andes.example.com")
    assert "$5.000.000" in page.inner_text("#panel-credit")  # the customer's tenant's currency and locale
    shot(page, "admin-02-customer-360")
    for path in (
        "/admin/loyalty/loyaltyaccount/",
        "/admin/credit/creditcharge/",
        "/admin/customers/purchase/",
    ):
        page.goto(f"{live_server.url}{path}")
        assert no_horizontal_scroll(page), path


def test_staff_choose_spanish_and_the_back_office_speaks_it(chromium, live_server, page, demo):
    log_in(page, live_server, "store")
    page.select_option("#language-select", "es")
    page.wait_for_load_state()
    page.wait_for_selector("html[lang=es]")
    assert page.inner_text("#site-name") == "zenLogic — Clientes"
    open_360(page, live_server, demo, "compras@andes.example.com")
    assert page.inner_text("#panel-credit h2") == "Crédito"
    assert "Límite de crédito" in page.inner_text("#panel-credit")
    assert "Horas en America/Santiago" in page.inner_text("#time-zone-note")
    shot(page, "store-es-01-customer-360")
    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_function("window.dashboardReady === true", timeout=10_000)
    assert "Solicitudes de crédito en espera" in text_of(page, ".dashboard-cards")
    shot(page, "store-es-02-dashboard")
    page.goto(f"{live_server.url}/admin/credit/creditrequest/")
    assert page.inner_text("#content-main h1") == "Acceso denegado"
    shot(page, "store-es-03-forbidden")
