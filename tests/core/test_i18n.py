"""Spanish: the catalogue is complete and compiled, and API error messages follow Accept-Language, else the
tenant's language, else English, while codes never change."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.utils import translation

from core.errors import DomainError
from tests.factories import TenantFactory

CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "es" / "LC_MESSAGES"


def all_error_classes() -> list[type[DomainError]]:
    import django.apps

    for config in django.apps.apps.get_app_configs():  # every app's errors, imported
        with contextlib.suppress(ModuleNotFoundError):
            __import__(f"{config.name}.errors")
    found, todo = [], [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_committed_mo_is_the_compiled_po():
    """`make run` reads the .mo without gettext installed: it must say what the .po says."""
    with open(CATALOGUE / "django.po", "rb") as po, open(CATALOGUE / "django.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)

    def plain(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    wanted = {plain(m.id): plain(m.string) for m in source if m.id and m.string and not m.fuzzy}
    got = {plain(m.id): plain(m.string) for m in compiled if m.id}
    assert wanted == got, "run `make messages` after editing the catalogue"
    untranslated = [
        m.id for m in source if m.id and not (m.string if isinstance(m.string, str) else all(m.string))
    ]
    assert untranslated == []


def test_every_error_message_has_its_spanish():
    with translation.override("es"):
        missing = [
            f"{cls.__module__}.{cls.__name__}: {cls.message!r}"
            for cls in all_error_classes()
            if "message" in cls.__dict__ and translation.gettext(cls.message) == cls.message
        ]
    assert missing == []


@pytest.mark.django_db
def test_an_error_message_follows_accept_language_and_keeps_its_code(api_a):
    url = f"/api/v1/customers/{uuid.uuid4()}/"
    spanish = api_a.get(url, HTTP_ACCEPT_LANGUAGE="es-CL,es;q=0.9")
    english = api_a.get(url, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert spanish.status_code == english.status_code == 404
    assert spanish.json()["code"] == english.json()["code"] == "customer_not_found"
    assert spanish.json()["message"] == "No existe ese cliente."
    assert english.json()["message"] == "No such customer."
    assert spanish["Content-Language"] == "es"


@pytest.mark.django_db
def test_without_accept_language_the_tenants_language_else_english(api_client_for):
    chile = TenantFactory(slug="chile", country="CL")
    usa = TenantFactory(slug="usa", country="US", phone_region="US", currency="USD")
    url = f"/api/v1/customers/{uuid.uuid4()}/"
    no_header = {"HTTP_ACCEPT_LANGUAGE": ""}
    assert api_client_for(chile).get(url, **no_header).json()["message"] == "No existe ese cliente."
    assert api_client_for(usa).get(url, **no_header).json()["message"] == "No such customer."
    # an unknown language in the header: the tenant's
    assert (
        api_client_for(chile).get(url, HTTP_ACCEPT_LANGUAGE="de").json()["message"]
        == "No existe ese cliente."
    )


@pytest.mark.django_db
def test_a_refused_token_has_no_tenant_english_unless_asked(client):
    english = client.get("/api/v1/customers/")
    spanish = client.get("/api/v1/customers/", HTTP_ACCEPT_LANGUAGE="es")
    assert english.status_code == spanish.status_code == 401
    assert english.json()["code"] == spanish.json()["code"] == "missing_token"
    assert english.json()["message"] == "The request has no bearer token."
    assert spanish.json()["message"] == "La solicitud no trae token de acceso."


@pytest.mark.django_db
def test_a_specific_message_falls_back_to_its_categorys_spanish(api_a, customer_a):
    response = api_a.post(
        f"/api/v1/customers/{customer_a.id}/loyalty/earn",
        {"purchase_amount": "10", "currency": "USD"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
        HTTP_ACCEPT_LANGUAGE="es",
    )
    body = response.json()
    assert response.status_code == 400 and body["code"] == "invalid_currency"
    assert body["message"] == "La moneda no es la moneda del negocio."
    assert body["details"]["expected"] == "CLP"
