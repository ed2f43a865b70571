"""gRPC door of the customer 360: `GetCustomer`. Proto -> lookup -> the selectors of every app -> proto, answered
from the cache when it holds a current snapshot (see customers/cache.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from uuid import UUID

from core.errors import InvalidInput
from core.models import Tenant
from core.money import money_str
from core.rpc import RpcCall, rpc_method, text_field, uuid_field
from core.tenancy import tenant_context
from customer360.selectors import CustomerCard, customer_card
from customers.cache import (
    customer_alias_get,
    customer_alias_set,
    customer_snapshot_get,
    customer_snapshot_set,
)
from customers.identifiers import lookup_document_forms, normalize_email, normalize_phone
from customers.models import Customer, CustomerType
from customers.selectors import customer_find, customer_find_id, customer_get
from zenlogic.customer.v1 import customer_service_pb2 as pb

_TYPES = {CustomerType.INDIVIDUAL: pb.INDIVIDUAL, CustomerType.BUSINESS: pb.BUSINESS}

# The longest value each lookup accepts (beyond it the request is malformed, not "not found").
_LOOKUP_MAX_LENGTH = {
    "customer_id": 36,
    "phone": 40,
    "email": 254,
    "document_number": 32,
    "loyalty_card_number": 64,
    "external_id": 64,
}


@dataclass(frozen=True)
class CustomerLookup:
    kind: str  # the field of GetCustomerRequest.lookup
    value: str  # normalised as stored (E.164 phone, lower-case email, ...)
    forms: frozenset[str] = frozenset()  # a document's possible stored forms

    def matches(self, message: pb.Customer) -> bool:
        """Whether a cached answer reached through an alias still belongs to this lookup."""
        if self.kind == "document_number":
            return message.document_number in self.forms
        return bool(getattr(message, self.kind) == self.value)

    def find(self, tenant: Tenant) -> Customer:
        if self.kind == "customer_id":
            return customer_get(self.value)
        if self.kind == "phone":
            return customer_find(tenant=tenant, phone=self.value)
        if self.kind == "email":
            return customer_find(tenant=tenant, email=self.value)
        if self.kind == "document_number":
            return customer_find(tenant=tenant, document=self.value)
        if self.kind == "external_id":
            return customer_find(tenant=tenant, external_id=self.value)
        return customer_find(tenant=tenant, card=self.value)

    def find_id(self, tenant: Tenant) -> UUID:
        """The id of the customer `find` would return; for a lookup by id, the id itself (the reader of the
        customer then says "not found")."""
        if self.kind == "customer_id":
            return UUID(self.value)
        if self.kind == "phone":
            return customer_find_id(tenant=tenant, phone=self.value)
        if self.kind == "email":
            return customer_find_id(tenant=tenant, email=self.value)
        if self.kind == "document_number":
            return customer_find_id(tenant=tenant, document=self.value)
        if self.kind == "external_id":
            return customer_find_id(tenant=tenant, external_id=self.value)
        return customer_find_id(tenant=tenant, card=self.value)


@functools.lru_cache(maxsize=65_536)
def _phone_e164(raw: str, region: str) -> str:
    """Terminals look the same customers up again and again: parsing a number costs more than the cache read."""
    return normalize_phone(raw, region=region) or ""


def customer_lookup(request: pb.GetCustomerRequest, tenant: Tenant) -> CustomerLookup:
    kind = request.WhichOneof("lookup")
    if kind is None:
        raise InvalidInput(
            "Give one of customer_id, phone, email, document_number, loyalty_card_number or external_id.",
            code="invalid_lookup",
        )
    raw = text_field(getattr(request, kind), field=kind, max_length=_LOOKUP_MAX_LENGTH[kind], required=True)
    if kind == "customer_id":
        return CustomerLookup(kind, str(uuid_field(raw)))
    if kind == "phone":
        return CustomerLookup(kind, _phone_e164(raw, tenant.phone_region))
    if kind == "email":
        return CustomerLookup(kind, normalize_email(raw) or "")
    if kind == "document_number":
        forms = frozenset(lookup_document_forms(raw))
        return CustomerLookup(kind, raw, forms=forms)
    return CustomerLookup(kind, raw)


def customer_message(customer: Customer) -> pb.Customer:
    return customer_card_message(customer_card(customer.pk))


def customer_card_message(card: CustomerCard) -> pb.Customer:
    customer = card.customer
    message = pb.Customer(
        customer_id=str(customer.id),
        type=_TYPES.get(CustomerType(customer.type), pb.CUSTOMER_TYPE_UNSPECIFIED),
        display_name=customer.display_name,
        email=customer.email or "",
        phone=customer.phone or "",
        document_type=customer.document_type,
        document_number=customer.document_number or "",
        loyalty_card_number=customer.loyalty_card_number or "",
        loyalty=pb.LoyaltySummary(
            points_balance=card.points_balance,
            tier=str(card.tier),
            points_to_next_tier=card.points_to_next_tier,
            pending_points=card.pending_points,
        ),
        segment=card.segment,
        first_name=customer.first_name,
        last_name=customer.last_name,
        legal_name=customer.legal_name,
        trade_name=customer.trade_name,
        status=customer.status,
        external_id=customer.external_id or "",
    )
    line = card.credit_line
    if line is not None:
        message.credit.CopyFrom(
            pb.CreditSummary(
                status=str(line.status),
                credit_limit=money_str(line.approved_limit),
                available=money_str(line.available),
                currency=line.currency,
                payment_terms_days=line.payment_terms_days,
            )
        )
    return message


class CustomerRpc:
    @rpc_method(scopes=["customers:read"], tenant_transaction=False)
    def GetCustomer(self, request: pb.GetCustomerRequest, call: RpcCall) -> pb.Customer:
        tenant_id = call.tenant_slug
        lookup = customer_lookup(request, call.tenant)
        known_id = lookup.value if lookup.kind == "customer_id" else None
        if known_id is None:
            known_id = customer_alias_get(tenant_id, lookup.kind, lookup.value)
        generation: str | None = None
        if known_id is not None:
            cached = customer_snapshot_get(tenant_id, known_id)
            if cached.data is not None:
                message = pb.Customer.FromString(cached.data)
                if lookup.matches(message):
                    return message
            generation = cached.generation

        with tenant_context(tenant_id):
            customer_id = lookup.find_id(call.tenant)
            if generation is None or str(customer_id) != known_id:
                cached = customer_snapshot_get(tenant_id, customer_id)
                if cached.data is not None:  # cached under its id, first looked up this way
                    message = pb.Customer.FromString(cached.data)
                    if lookup.matches(message):
                        customer_alias_set(tenant_id, lookup.kind, lookup.value, customer_id)
                        return message
                # Note the generation before reading what the answer is built from, then read it afresh.
                generation = cached.generation
            message = customer_card_message(customer_card(customer_id))
        aliases = {} if lookup.kind == "customer_id" else {lookup.kind: lookup.value}
        customer_snapshot_set(
            tenant_id, customer_id, message.SerializeToString(), generation=generation, aliases=aliases
        )
        return message
