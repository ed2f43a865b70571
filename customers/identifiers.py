"""Normalising and validating how customers are identified: email, phone (E.164) and tax documents."""

from __future__ import annotations

import re
from types import ModuleType

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from stdnum import exceptions as stdnum_exceptions
from stdnum.ar import cuit
from stdnum.ar import dni as ar_dni
from stdnum.br import cnpj, cpf
from stdnum.cl import rut
from stdnum.co import nit
from stdnum.es import cif, nie, nif
from stdnum.mx import rfc
from stdnum.pe import ruc

from customers.errors import InvalidCustomer, InvalidDocument, InvalidEmail, InvalidPhone

_email_validator = EmailValidator()

# Document types validated with python-stdnum. Other types are normalised (see below) but not rejected.
DOCUMENT_VALIDATORS: dict[str, ModuleType] = {
    "rut": rut,  # Chile
    "rfc": rfc,  # Mexico
    "cuit": cuit,  # Argentina
    "dni_ar": ar_dni,  # Argentina
    "nit": nit,  # Colombia
    "ruc": ruc,  # Peru
    "cpf": cpf,  # Brazil, people
    "cnpj": cnpj,  # Brazil, companies
    "nif": nif,  # Spain
    "nie": nie,  # Spain, foreigners
    "cif": cif,  # Spain, companies (older)
}

# The document type assumed when a customer gives a number without its type, by the tenant's country.
DEFAULT_DOCUMENT_TYPE: dict[str, dict[str, str]] = {
    "CL": {"individual": "rut", "business": "rut"},
    "MX": {"individual": "rfc", "business": "rfc"},
    "AR": {"individual": "cuit", "business": "cuit"},
    "CO": {"individual": "nit", "business": "nit"},
    "PE": {"individual": "ruc", "business": "ruc"},
    "BR": {"individual": "cpf", "business": "cnpj"},
    "ES": {"individual": "nif", "business": "nif"},
}

_UNKNOWN_DOC_CLEAN = re.compile(r"[\s.\-/]")


def normalize_email(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    email = raw.strip().lower()
    try:
        _email_validator(email)
    except DjangoValidationError as exc:
        raise InvalidEmail(f"{raw!r} is not a valid email address.", field="email") from exc
    return email


def normalize_phone(raw: str | None, *, region: str) -> str | None:
    """E.164 from any format the customer typed; numbers without `+` are read in the tenant's region."""
    if raw is None or not raw.strip():
        return None
    if len(raw) > 40:
        raise InvalidPhone("The phone number is too long.", field="phone")
    try:
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number.", field="phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"{raw!r} is not a valid phone number for region {region}.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_document(
    raw: str | None, *, document_type: str | None, country: str, customer_type: str = "individual"
) -> tuple[str, str | None]:
    """(document_type, compact number). Known types are validated; unknown ones only cleaned of separators."""
    if raw is None or not raw.strip():
        return (document_type or "").lower(), None
    if len(raw) > 32:
        raise InvalidDocument("The document number is too long.", field="document_number")
    doc_type = (document_type or "").strip().lower()
    if not doc_type:
        doc_type = DEFAULT_DOCUMENT_TYPE.get(country.upper(), {}).get(customer_type, "")
    validator = DOCUMENT_VALIDATORS.get(doc_type)
    if validator is None:
        cleaned = _UNKNOWN_DOC_CLEAN.sub("", raw).upper()
        if not cleaned:
            raise InvalidDocument("The document number is empty.", field="document_number")
        return doc_type, cleaned
    try:
        return doc_type, validator.validate(raw)
    except stdnum_exceptions.ValidationError as exc:
        raise InvalidDocument(
            f"{raw!r} is not a valid {doc_type.upper()}: {exc}",
            field="document_number",
            document_type=doc_type,
        ) from exc


def lookup_document_forms(raw: str) -> list[str]:
    """Every compact form a typed document number may be stored as (for lookups without a type)."""
    forms = {_UNKNOWN_DOC_CLEAN.sub("", raw).upper()}
    for validator in DOCUMENT_VALIDATORS.values():
        try:
            forms.add(validator.compact(raw))
        except Exception:  # noqa: S112 - a type that cannot even compact the input is not a candidate
            continue
    return [f for f in forms if f]


EXTERNAL_ID_MAX_LENGTH = 64
# Printable, no blanks and no "/" (it is a path segment of the CRM's upsert): what CRM ids are made of.
EXTERNAL_ID_PATTERN = r"^[!-.0-~]{1,64}$"
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)


def normalize_external_id(raw: str | None) -> str:
    """The id of a customer in the business's CRM: blanks around it dropped, then 1 to 64 printable ASCII
    characters without blanks or "/" (`invalid_external_id` otherwise)."""
    value = (raw or "").strip()
    if not _EXTERNAL_ID.fullmatch(value):
        raise InvalidCustomer(
            f"external_id must be 1 to {EXTERNAL_ID_MAX_LENGTH} printable characters without blanks or '/'.",
            code="invalid_external_id",
            field="external_id",
        )
    return value
