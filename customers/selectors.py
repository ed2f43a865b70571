"""Every read of customers that the doors need."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Reverse

from core.errors import InvalidCursor
from core.models import Tenant
from customers.errors import CustomerNotFound, InvalidCustomer
from customers.identifiers import (
    lookup_document_forms,
    normalize_email,
    normalize_external_id,
    normalize_phone,
)
from customers.models import Customer, CustomerStatus, CustomerSyncChange, CustomerType


def customer_list() -> QuerySet[Customer]:
    """The current tenant's customers, erased ones excluded, with their latest segment joined."""
    return Customer.objects.exclude(status=CustomerStatus.ERASED).select_related("segment")


def customer_filter_segment(qs: QuerySet[Customer], segment: str) -> QuerySet[Customer]:
    """Customers in `segment` as of the latest run; `unclassified`: those no run has reached yet too."""
    if segment == "unclassified":
        return qs.filter(Q(segment__isnull=True) | Q(segment__segment=segment))
    return qs.filter(segment__segment=segment)


def customer_filter_vip(qs: QuerySet[Customer], vip: bool) -> QuerySet[Customer]:
    """VIPs of the latest run, or everyone else (including customers no run has reached)."""
    if vip:
        return qs.filter(segment__is_vip=True)
    return qs.filter(Q(segment__isnull=True) | Q(segment__is_vip=False))


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
    external_id: str | None = None,
) -> Customer:
    """The point-of-sale lookup: exactly one identifier; phone in any format, email case-insensitive, external_id
    (the id in the business's CRM) exactly."""
    qs, lookup = _matching(
        tenant=tenant, phone=phone, email=email, document=document, card=card, external_id=external_id
    )
    return _one(qs, **lookup)


def customer_find_id(
    *,
    tenant: Tenant,
    phone: str | None = None,
    email: str | None = None,
    document: str | None = None,
    card: str | None = None,
    external_id: str | None = None,
) -> UUID:
    """`customer_find`'s customer, only its id (for a reader that reads the rest itself, GetCustomer's card)."""
    qs, lookup = _matching(
        tenant=tenant, phone=phone, email=email, document=document, card=card, external_id=external_id
    )
    return _one(qs.values_list("pk", flat=True), **lookup)  # type: ignore[arg-type]


def _matching(
    *,
    tenant: Tenant,
    phone: str | None,
    email: str | None,
    document: str | None,
    card: str | None,
    external_id: str | None,
) -> tuple[QuerySet[Customer], dict[str, Any]]:
    given = {
        k: v
        for k, v in {
            "phone": phone,
            "email": email,
            "document": document,
            "card": card,
            "external_id": external_id,
        }.items()
        if v
    }
    if len(given) != 1:
        raise InvalidCustomer(
            "Give exactly one of phone, email, document, card or external_id.", code="invalid_lookup"
        )
    qs = customer_list()
    if phone:
        return qs.filter(phone=normalize_phone(phone, region=tenant.phone_region)), {"phone": phone}
    if email:
        return qs.filter(email=normalize_email(email)), {"email": email}
    if document:
        return qs.filter(document_number__in=lookup_document_forms(document)), {"document": document}
    if external_id:
        return qs.filter(external_id=normalize_external_id(external_id)), {"external_id": external_id}
    return qs.filter(loyalty_card_number=str(card).strip()), {"card": card}


def _one(qs: QuerySet[Any], **lookup: Any) -> Any:
    found = list(qs[:2])
    if len(found) != 1:
        raise CustomerNotFound(**{k: str(v) for k, v in lookup.items()})
    return found[0]


# --- The cashier's lookup by the last digits of a phone -------------------------------------------------------
PHONE_SUFFIX_MIN_DIGITS = 4
PHONE_SUFFIX_MAX_DIGITS = 15  # E.164's longest number
PHONE_SUFFIX_MAX_CANDIDATES = 5
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PhoneCandidate:
    """A customer whose phone ends with the digits, masked for the cashier to confirm with the person."""

    customer_id: UUID
    display_name: str
    phone: str


@dataclass(frozen=True)
class PhoneCandidates:
    candidates: list[PhoneCandidate]
    more: bool  # more customers match: ask for more digits


def _masked_phone(phone: str) -> str:
    """`+56961234567` -> `+56*****4567`: the country code and the last four digits."""
    keep_head = 3 if phone.startswith("+") else 0
    return phone[:keep_head] + "*" * max(len(phone) - keep_head - 4, 0) + phone[-4:]


def _masked_name(customer: Customer) -> str:
    """A business's trade or legal name; a person's first name and the initial of the last one."""
    if customer.type == CustomerType.BUSINESS:
        return customer.display_name
    initial = f" {customer.last_name.strip()[0]}." if customer.last_name.strip() else ""
    return f"{customer.first_name.strip()}{initial}".strip()


def customer_phone_candidates(*, digits: str) -> PhoneCandidates:
    """The live customers whose phone ends with `digits` (4 to 15 digits), at most a handful, masked."""
    digits = (digits or "").strip()
    if not _DIGITS.fullmatch(digits) or not PHONE_SUFFIX_MIN_DIGITS <= len(digits) <= PHONE_SUFFIX_MAX_DIGITS:
        raise InvalidCustomer(
            f"digits must be {PHONE_SUFFIX_MIN_DIGITS} to {PHONE_SUFFIX_MAX_DIGITS} digits (0-9).",
            code="invalid_phone_suffix",
            field="digits",
        )
    found = list(
        customer_list()
        .filter(phone__isnull=False)
        .annotate(reversed_phone=Reverse("phone"))
        .filter(reversed_phone__startswith=digits[::-1])
        .order_by("created_at", "id")[: PHONE_SUFFIX_MAX_CANDIDATES + 1]
    )
    return PhoneCandidates(
        candidates=[
            PhoneCandidate(customer_id=c.id, display_name=_masked_name(c), phone=_masked_phone(c.phone or ""))
            for c in found[:PHONE_SUFFIX_MAX_CANDIDATES]
        ],
        more=len(found) > PHONE_SUFFIX_MAX_CANDIDATES,
    )


# --- The CRM change feed ----------------------------------------------------------------------------------------
# A feed position: the writing transaction's id and the row's id, as "<transaction>-<row>".
FEED_CURSOR_PATTERN = r"^[0-9]{1,18}-[0-9]{1,18}$"
FEED_START = "0-0"
FEED_MAX_LIMIT = 500

# The feed's horizon: the oldest transaction still running in this database (or the snapshot's xmax when none).
# Every transaction below it has ended (committed or rolled back), so the feed below it is final: no row can still
# appear there, and a cursor that moves through it passes over nothing. It is `pg_snapshot_xmin` of the statement's
# own snapshot, except that running transactions pg_stat_activity shows in another database are left out
# (transaction ids are cluster-wide: a long job of another database must not hold this feed back, and it cannot
# write this table). A running transaction it does not show (a prepared one, one that just ended) still counts:
# that can only delay a change, never skip one. pg_current_snapshot() assigns no transaction id.
_FEED_HORIZON = RawSQL(
    """(SELECT LEAST(
            pg_snapshot_xmax(snap),
            (SELECT min(running) FROM pg_snapshot_xip(snap) AS running
             WHERE xid(running) NOT IN (
                 SELECT backend_xid FROM pg_stat_activity
                 WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())))::text::bigint
        FROM (SELECT pg_current_snapshot() AS snap) AS current)""",
    [],
)


@dataclass(frozen=True)
class FeedPosition:
    transaction_id: int
    row_id: int

    @classmethod
    def parse(cls, text: str | None) -> FeedPosition:
        text = (text or "").strip() or FEED_START
        if not re.fullmatch(FEED_CURSOR_PATTERN, text):
            raise InvalidCursor(field="since")
        transaction_id, row_id = (int(part) for part in text.split("-"))
        return cls(transaction_id, row_id)

    def __str__(self) -> str:
        return f"{self.transaction_id}-{self.row_id}"


@dataclass(frozen=True)
class ChangesPage:
    changes: list[CustomerSyncChange]
    next_cursor: str
    has_more: bool


def customer_changes_since(*, since: FeedPosition, limit: int) -> ChangesPage:
    """The current tenant's customer writes after `since`, in (transaction id, row id) order, only those of
    transactions that have ended: a transaction that began earlier and commits later is still below the
    horizon's reach until it ends, so a cursor never passes over it. Each change carries the customer (its
    current state: erased customers too, anonymised)."""
    limit = max(1, min(limit, FEED_MAX_LIMIT))
    rows = list(
        CustomerSyncChange.objects.filter(transaction_id__lt=_FEED_HORIZON)
        .filter(
            Q(transaction_id__gt=since.transaction_id)
            | Q(transaction_id=since.transaction_id, id__gt=since.row_id)
        )
        .select_related("customer", "customer__segment")
        .order_by("transaction_id", "id")[: limit + 1]
    )
    page = rows[:limit]
    last = FeedPosition(page[-1].transaction_id, page[-1].id) if page else since
    return ChangesPage(changes=page, next_cursor=str(last), has_more=len(rows) > limit)
