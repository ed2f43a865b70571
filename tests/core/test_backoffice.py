"""The back office as each role sees it, page by page (Django's test client): every page a role can reach renders,
none is a server error or a refusal the role should not meet, and what a role may not open is the admin's own
styled 403 page with a way back."""

from __future__ import annotations

import re
from collections import deque
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from core.display import locale_for_country, money_display, number_display, tenant_language
from core.models import User
from core.tenancy import tenant_context
from credit.models import CreditLine

pytestmark = pytest.mark.django_db

SKIP = (
    "/admin/logout/",
    "/admin/i18n/",
    "/admin/password_change/",
    "/admin/autocomplete/",
    "/admin/r/",
    "/admin/jsi18n/",
)
MAX_PAGES = 400


OBJECT_ID = re.compile(r"/(\d+|[0-9a-f]{8}-[0-9a-f-]{27}|demo-market)/")


# An amount as the database holds it ("1250000.00"): never what a person should read.
RAW_AMOUNT = re.compile(r"(?<![\d.,])\d{3,}\.\d{2}(?![\d.])")


def shown_text(html: str) -> str:
    """The page's text, without tags, attributes, scripts and form inputs (an input holds a raw value on purpose)."""
    html = re.sub(r"<(script|style|textarea|select)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def crawl(client: Any, start: list[str], raw_amounts: dict[str, str] | None = None) -> dict[str, int]:
    """Follow every admin link from `start`, one page per kind (the same path with another object id or another
    value of the same query keys is the same kind); the status of each page."""
    seen: dict[str, int] = {}
    shapes: set[tuple[str, frozenset[str]]] = set()
    queue = deque(start)
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        parts = urlsplit(url)
        shape = (OBJECT_ID.sub("/<id>/", parts.path), frozenset(k for k, _ in parse_qsl(parts.query)))
        if url in seen or shape in shapes or url.startswith(SKIP):
            continue
        shapes.add(shape)
        response = client.get(url)
        seen[url] = response.status_code
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            found = RAW_AMOUNT.search(shown_text(response.content.decode()))
            if found and raw_amounts is not None:
                raw_amounts[url] = found.group()
            for href in re.findall(r'href="(/admin/[^"#]*)', response.content.decode()):
                queue.append(href.replace("&amp;", "&"))
    return seen


def log_in(client: Any, username: str) -> None:
    client.force_login(User.objects.get(username=username))


@pytest.mark.parametrize("username", ["admin", "manager", "store"])
def test_every_page_a_role_reaches_renders(client, demo, username):
    log_in(client, username)
    raw: dict[str, str] = {}
    pages = crawl(client, ["/admin/", "/admin/dashboard/"], raw)
    bad = {url: status for url, status in pages.items() if status >= 400}
    assert not bad, f"{username} met {bad}"
    assert not raw, f"amounts as the database holds them, not as people read them: {raw}"
    assert len(pages) > 30, f"the crawl of {username} found only {len(pages)} pages"
    andes_360 = [url for url in pages if url.endswith("/360/")]
    assert andes_360, "the customer 360 pages are linked from the customers list"


def forbidden(client: Any, url: str) -> None:
    response = client.get(url, HTTP_REFERER="http://testserver/admin/")
    assert response.status_code == 403, url
    html = response.content.decode()
    assert 'id="site-name"' in html, "the 403 is the admin's own page"
    assert "Access denied" in html and 'id="go-home"' in html and 'id="go-back"' in html


def test_what_each_role_may_not_open_is_a_styled_403(client, demo):
    with tenant_context(demo):
        pending = CreditLine.objects.filter(status="requested").first()
    decide = f"/admin/credit/creditrequest/{pending.pk}/decide/"
    log_in(client, "store")
    for url in ("/admin/credit/creditrequest/", decide):
        forbidden(client, url)
    assert client.get("/admin/credit/creditline/add/").status_code == 200  # staff may ask for a line
    log_in(client, "manager")
    assert client.get(decide).status_code == 200
    forbidden(
        client, "/admin/customers/customer/add/"
    )  # credit managers read customers, they don't edit them


def test_the_roles_are_created_by_the_migrations_with_the_permissions_of_the_work(demo):
    manager = User.objects.get(username="manager")
    store = User.objects.get(username="store")
    assert manager.has_perm("credit.approve_creditline") and manager.has_perm("customers.view_customer")
    assert manager.has_perm("loyalty.view_loyaltyaccount") and manager.has_perm(
        "segmentation.view_customersegment"
    )
    assert not manager.has_perm("customers.change_customer") and not manager.has_perm("loyalty.adjust_points")
    assert store.has_perm("customers.add_customer") and store.has_perm("customers.change_customer")
    assert store.has_perm("loyalty.adjust_points") and store.has_perm("loyalty.override_tier")
    assert store.has_perm("credit.add_creditline") and store.has_perm("credit.view_creditline")
    assert not store.has_perm("credit.approve_creditline")
    assert not store.has_perm(
        "customers.change_customerchange"
    )  # the audit trail is written by services only


def test_the_customers_list_shows_tier_segment_and_credit(client, demo):
    log_in(client, "manager")
    html = client.get("/admin/customers/customer/").content.decode()
    for column in ("column-tier_column", "column-segment_column", "column-credit_column"):
        assert column in html
    assert "$3.750.000" in html  # Andes: 5,000,000 limit - 1,250,000 used, in Chilean pesos


def test_the_branding_is_the_services_own(client, demo):
    log_in(client, "store")
    html = client.get("/admin/").content.decode()
    assert "zenLogic — Customers" in html and "Django administration" not in html
    html = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "zenLogic — Clientes" in html


@pytest.mark.parametrize(
    ("amount", "currency", "country", "shown"),
    [
        ("800000.00", "CLP", "CL", "$800.000"),  # no decimals: the peso has no minor unit
        ("1234.50", "MXN", "MX", "$1,234.50"),
        ("1234.5", "USD", "US", "$1,234.50"),
        ("1234.5", "USD", "CL", "US$1.234,50"),
    ],
)
def test_money_reads_as_in_the_tenants_country(amount, currency, country, shown):
    assert money_display(Decimal(amount), currency, locale_for_country(country)) == shown


def test_numbers_and_languages_follow_the_tenants_country():
    assert number_display(53000, locale_for_country("CL")) == "53.000"
    assert locale_for_country("CL") == "es_CL" and locale_for_country("") == "en_US"
    assert tenant_language(type("T", (), {"country": "MX"})()) == "es"
    assert tenant_language(type("T", (), {"country": "BR"})()) == "en"  # Portuguese: not spoken yet
