"""Every read of customers that the doors need."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, QuerySet

from core.models import Tenant
from customers.errors import CustomerNotFound, InvalidCustomer
from customers.identifiers import lookup_document_forms, normalize_email, normalize_phone
from customers.models import Customer, CustomerStatus


def customer_list() -> QuerySet[Customer]:
    """The current tenant's customers, erased ones excluded, with their latest segment joined."""
    return Customer.objects.exclude(status=CustomerStatus.ERASED).select_related("segment")


def customer_segment_name(customer: Customer) -> str:
    """The segment of the latest nightly run, or `unclassified` before the first run reached the customer."""
    try:
        return str(customer.segment.segment)  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return "unclassified"


def customer_search(qs: QuerySet[Customer], text: str, *, region: str) -> QuerySet[Customer]:
    """Free-text search over names, email, phone and document."""
    text = text.strip()
    if not text:
        return qs
    condition = (
        Q(first_name__icontains=text)
        | Q(last_name__icontains=text)
        | Q(legal_name__icontains=text)
        | Q(trade_name__icontains=text)
        | Q(email__icontains=text.lower())
        | Q(document_number__icontains=text.replace(".", "").replace("-", "").upper())
        | Q(phone__contains=text)
    )
    try:
        phone = normalize_phone(text, region=region)
    except Exception:
        phone = None
    if phone:
        condition |= Q(phone=phone)
    return qs.filter(condition)


def customer_get(customer_id: Any) -> Customer:
    """A live customer of the current tenant; another tenant's or an erased one is 'not found'."""
    try:
        uuid = customer_id if isinstance(customer_id, UUID) else UUID(str(customer_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CustomerNotFound(customer_id=str(customer_id)) from exc
    customer = customer_list().filter(pk=uuid).first()
    if customer is None:
        raise CustomerNotFound(customer_id=str(customer_id))
    return customer


def customer_find(
    *,
    tenant: Tenant,
    phone: str | None = None,
    email: str | None = None,
    document: str | None = None,
    card: str | None = None,
) -> Customer:
    """The point-of-sale lookup: exactly one identifier; phone in any format, email case-insensitive."""
    qs, lookup = _matching(tenant=tenant, phone=phone, email=email, document=document, card=card)
    return _one(qs, **lookup)


def customer_find_id(
    *,
    tenant: Tenant,
    phone: str | None = None,
    email: str | None = None,
    document: str | None = None,
    card: str | None = None,
) -> UUID:
    """`customer_find`'s customer, only its id (for a reader that reads the rest itself, GetCustomer's card)."""
    qs, lookup = _matching(tenant=tenant, phone=phone, email=email, document=document, card=card)
    return _one(qs.values_list("pk", flat=True), **lookup)  # type: ignore[arg-type]


def _matching(
    *, tenant: Tenant, phone: str | None, email: str | None, document: str | None, card: str | None
) -> tuple[QuerySet[Customer], dict[str, Any]]:
    given = {
        k: v for k, v in {"phone": phone, "email": email, "document": document, "card": card}.items() if v
    }
    if len(given) != 1:
        raise InvalidCustomer("Give exactly one of phone, email, document or card.", code="invalid_lookup")
    qs = customer_list()
    if phone:
        return qs.filter(phone=normalize_phone(phone, region=tenant.phone_region)), {"phone": phone}
    if email:
        return qs.filter(email=normalize_email(email)), {"email": email}
    if document:
        return qs.filter(document_number__in=lookup_document_forms(document)), {"document": document}
    return qs.filter(loyalty_card_number=str(card).strip()), {"card": card}


def _one(qs: QuerySet[Any], **lookup: Any) -> Any:
    found = list(qs[:2])
    if len(found) != 1:
        raise CustomerNotFound(**{k: str(v) for k, v in lookup.items()})
    return found[0]
