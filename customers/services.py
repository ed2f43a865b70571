"""Every write to customers, their addresses and preferences. Each records its audit row and event in the same
transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import Tenant
from core.outbox import outbox_record
from core.tenancy import tenant_cached
from customers.cache import customer_cache_invalidate
from customers.errors import (
    AddressNotFound,
    DuplicateCustomer,
    FavouriteOrderNotFound,
    InvalidCustomer,
)
from customers.identifiers import (
    normalize_document,
    normalize_email,
    normalize_external_id,
    normalize_phone,
)
from customers.models import (
    Address,
    ChannelConsent,
    Customer,
    CustomerChange,
    CustomerPreferences,
    CustomerStatus,
    CustomerSyncChange,
    CustomerType,
    FavouriteOrder,
)

EDITABLE_FIELDS = (
    "type",
    "first_name",
    "last_name",
    "legal_name",
    "trade_name",
    "email",
    "phone",
    "document_type",
    "document_number",
    "loyalty_card_number",
    "external_id",
    "salesperson",
    "route",
    "status",
    "notes",
)

_UNIQUE_FIELDS = {
    "customer_email_unique_per_tenant": "email",
    "customer_phone_unique_per_tenant": "phone",
    "customer_document_unique_per_tenant": "document_number",
    "customer_card_unique_per_tenant": "loyalty_card_number",
    "customer_external_id_unique_per_tenant": "external_id",
}


def customer_event_data(customer: Customer) -> dict[str, Any]:
    return {
        "customer_id": str(customer.id),
        "type": customer.type,
        "display_name": customer.display_name,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "legal_name": customer.legal_name,
        "trade_name": customer.trade_name,
        "email": customer.email,
        "phone": customer.phone,
        "document_type": customer.document_type,
        "document_number": customer.document_number,
        "loyalty_card_number": customer.loyalty_card_number,
        "external_id": customer.external_id,
        "status": customer.status,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }


def normalize_customer_data(
    tenant: Tenant, data: dict[str, Any], *, current: Customer | None
) -> dict[str, Any]:
    """Clean the identifiers of `data` with the tenant's region and country; unknown keys are refused."""
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidCustomer(f"Unknown fields: {', '.join(sorted(unknown))}", fields=sorted(unknown))
    values = dict(data)
    for key in ("first_name", "last_name", "legal_name", "trade_name", "salesperson", "route", "notes"):
        if key in values:
            values[key] = (values[key] or "").strip()
    if "type" in values and values["type"] not in CustomerType.values:
        raise InvalidCustomer(f"type must be one of {', '.join(CustomerType.values)}", field="type")
    if "status" in values and values["status"] not in (CustomerStatus.ACTIVE, CustomerStatus.BLOCKED):
        raise InvalidCustomer("status must be active or blocked", field="status")
    if "email" in values:
        values["email"] = normalize_email(values["email"])
    if "phone" in values:
        values["phone"] = normalize_phone(values["phone"], region=tenant.phone_region)
    if "document_number" in values or "document_type" in values:
        customer_type = values.get("type") or (current.type if current else CustomerType.INDIVIDUAL)
        raw_number = values.get("document_number", current.document_number if current else None)
        raw_type = values.get("document_type", current.document_type if current else "")
        values["document_type"], values["document_number"] = normalize_document(
            raw_number, document_type=raw_type, country=tenant.country, customer_type=customer_type
        )
    for key in ("loyalty_card_number", "external_id"):
        if key in values:
            values[key] = (values[key] or "").strip() or None
    return values


def _check_names(customer: Customer) -> None:
    if customer.type == CustomerType.BUSINESS and not (customer.legal_name or customer.trade_name):
        raise InvalidCustomer("A business needs a legal_name or a trade_name.", field="legal_name")
    if customer.type == CustomerType.INDIVIDUAL and not (customer.first_name or customer.last_name):
        raise InvalidCustomer("A person needs a first_name or a last_name.", field="first_name")


def _save_unique(customer: Customer, **save_kwargs: Any) -> None:
    """Save, turning a unique violation into `duplicate_customer` naming the field and the other customer's id."""
    try:
        with transaction.atomic():
            customer.save(**save_kwargs)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "") or ""
        field = _UNIQUE_FIELDS.get(constraint)
        if field is None:
            raise
        other = (
            Customer.objects.filter(tenant_id=customer.tenant_id, **{field: getattr(customer, field)})
            .exclude(pk=customer.pk)
            .values_list("pk", flat=True)
            .first()
        )
        raise DuplicateCustomer(
            f"Another customer already has this {field.replace('_', ' ')}.",
            field=field,
            customer_id=str(other) if other else None,
        ) from exc


def _sync_change_record(customer: Customer, *, action: str, fields: list[str]) -> None:
    """The CRM change feed's row of this write, in its transaction (the database stamps the transaction id)."""
    CustomerSyncChange.objects.create(
        tenant_id=customer.tenant_id, customer=customer, action=action, changed_fields=fields
    )


def _update_action(previous_status: str, status: str) -> str:
    if status == previous_status:
        return "updated"
    if status == CustomerStatus.BLOCKED:
        return "blocked"
    return "unblocked" if previous_status == CustomerStatus.BLOCKED else "updated"


def _audit(customer: Customer, *, action: str, fields: list[str], actor: str) -> None:
    CustomerChange.objects.create(
        tenant_id=customer.tenant_id,
        customer=customer,
        action=action,
        changed_fields=fields,
        actor=actor[:200],
    )


@transaction.atomic
def customer_create(*, tenant: Tenant, data: dict[str, Any], actor: str) -> Customer:
    """Create a customer with normalised identifiers; emits `customer.created`."""
    values = normalize_customer_data(tenant, data, current=None)
    customer = Customer(tenant=tenant, **values)
    _check_names(customer)
    _save_unique(customer)
    _audit(customer, action="created", fields=sorted(values), actor=actor)
    _sync_change_record(customer, action="created", fields=sorted(values))
    outbox_record(
        tenant_id=tenant.slug,
        event_type="customer.created",
        data=customer_event_data(customer),
        aggregate_id=str(customer.id),
    )
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, data: dict[str, Any], actor: str) -> Customer:
    """Change some fields; emits `customer.updated` with the names of the fields that really changed."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    tenant = tenant_cached(customer.tenant_id)
    values = normalize_customer_data(tenant, data, current=customer)
    changed = [key for key, value in values.items() if getattr(customer, key) != value]
    if not changed:
        return customer
    previous_status = customer.status
    for key in changed:
        setattr(customer, key, values[key])
    _check_names(customer)
    _save_unique(customer, update_fields=[*changed, "updated_at"])
    _audit(customer, action="updated", fields=changed, actor=actor)
    _sync_change_record(customer, action=_update_action(previous_status, customer.status), fields=changed)
    outbox_record(
        tenant_id=customer.tenant_id,
        event_type="customer.updated",
        data={**customer_event_data(customer), "changed_fields": changed},
        aggregate_id=str(customer.id),
    )
    if "status" in changed:  # active <-> blocked (erasure is customer_erase's)
        blocked = customer.status == CustomerStatus.BLOCKED
        outbox_record(
            tenant_id=customer.tenant_id,
            event_type="customer.blocked" if blocked else "customer.unblocked",
            data={
                "customer_id": str(customer.id),
                "status": customer.status,
                "previous_status": previous_status,
                "changed_by": actor,
                "changed_at": customer.updated_at,
            },
            aggregate_id=str(customer.id),
        )
    customer_cache_invalidate(tenant_id=customer.tenant_id, customer_id=customer.id)
    return customer


@transaction.atomic
def customer_erase(*, customer: Customer, actor: str) -> Customer:
    """GDPR erasure: personal data anonymised; the row and every financial record are kept."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    for key in ("first_name", "last_name", "legal_name", "trade_name", "salesperson", "route", "notes"):
        setattr(customer, key, "")
    if customer.type == CustomerType.BUSINESS:
        customer.legal_name = "Erased customer"
    else:
        customer.first_name = "Erased"
        customer.last_name = "customer"
    customer.email = None
    customer.phone = None
    customer.document_number = None
    customer.loyalty_card_number = None
    customer.external_id = None
    customer.status = CustomerStatus.ERASED
    customer.erased_at = timezone.now()
    customer.save()
    Address.objects.filter(customer=customer).delete()
    ChannelConsent.objects.filter(customer=customer).delete()
    CustomerPreferences.objects.filter(customer=customer).delete()
    FavouriteOrder.objects.filter(customer=customer).delete()
    _audit(customer, action="erased", fields=[], actor=actor)
    _sync_change_record(customer, action="erased", fields=[])
    outbox_record(
        tenant_id=customer.tenant_id,
        event_type="customer.deleted",
        data={"customer_id": str(customer.id), "erased_at": customer.erased_at},
        aggregate_id=str(customer.id),
    )
    customer_cache_invalidate(tenant_id=customer.tenant_id, customer_id=customer.id)
    return customer


@dataclass(frozen=True)
class CustomerUpsert:
    customer: Customer
    created: bool


@transaction.atomic
def customer_upsert_by_external_id(
    *, tenant: Tenant, external_id: str, data: dict[str, Any], actor: str
) -> CustomerUpsert:
    """The CRM's idempotent write, keyed by its own id: create the customer with this `external_id`, or update the
    one that has it (fields left out keep their values). An identical second call changes nothing and writes no
    audit row, event or feed entry. Of two concurrent first calls one creates and the other updates. Another
    customer holding the email, phone or document is `duplicate_customer` naming the field and that customer."""
    key = normalize_external_id(external_id)
    if "external_id" in data:
        raise InvalidCustomer("The path names the external_id; the body may not.", field="external_id")
    existing = Customer.objects.select_for_update().filter(external_id=key).first()
    if existing is None:
        try:
            with transaction.atomic():
                customer = customer_create(tenant=tenant, data={**data, "external_id": key}, actor=actor)
            return CustomerUpsert(customer, created=True)
        except DuplicateCustomer as exc:
            if exc.details.get("field") != "external_id":
                raise
        # A concurrent call created it first (our insert waited for its commit): update what it created.
        existing = Customer.objects.select_for_update().get(external_id=key)
    return CustomerUpsert(customer_update(customer=existing, data=data, actor=actor), created=False)


# --- Addresses ------------------------------------------------------------------------------------------------
ADDRESS_FIELDS = (
    "kind",
    "is_default",
    "label",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country",
    "delivery_notes",
)


def _lock_customer(customer: Customer) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer.pk)


@transaction.atomic
def address_create(*, customer: Customer, data: dict[str, Any], actor: str) -> Address:
    """Add an address; the first of its kind (or one asked to be default) becomes the default of its kind."""
    customer = _lock_customer(customer)
    values = {k: v for k, v in data.items() if k in ADDRESS_FIELDS}
    kind = values["kind"]
    has_default = Address.objects.filter(customer=customer, kind=kind, is_default=True).exists()
    make_default = bool(values.pop("is_default", False)) or not has_default
    if make_default and has_default:
        Address.objects.filter(customer=customer, kind=kind, is_default=True).update(is_default=False)
    address = Address.objects.create(
        tenant_id=customer.tenant_id, customer=customer, is_default=make_default, **values
    )
    _audit(customer, action="address_added", fields=[kind], actor=actor)
    return address


@transaction.atomic
def address_update(*, address: Address, data: dict[str, Any], actor: str) -> Address:
    customer = _lock_customer(address.customer)
    address = Address.objects.get(pk=address.pk)
    values = {k: v for k, v in data.items() if k in ADDRESS_FIELDS}
    new_kind = values.get("kind", address.kind)
    want_default = values.pop("is_default", None)
    if new_kind != address.kind and address.is_default:
        _promote_next_default(customer, address.kind, excluding=address)
        address.is_default = False
    for key, value in values.items():
        setattr(address, key, value)
    if (
        want_default
        or not Address.objects.filter(customer=customer, kind=new_kind, is_default=True)
        .exclude(pk=address.pk)
        .exists()
    ):
        Address.objects.filter(customer=customer, kind=new_kind, is_default=True).exclude(
            pk=address.pk
        ).update(is_default=False)
        address.is_default = True
    elif (
        want_default is False
        and address.is_default
        and _promote_next_default(customer, new_kind, excluding=address)
    ):
        # Another address of the kind took over; a kind's only address stays its default.
        address.is_default = False
    address.save()
    _audit(customer, action="address_changed", fields=sorted(values), actor=actor)
    return address


def _promote_next_default(customer: Customer, kind: str, *, excluding: Address) -> bool:
    nxt = (
        Address.objects.filter(customer=customer, kind=kind)
        .exclude(pk=excluding.pk)
        .order_by("created_at")
        .first()
    )
    if nxt is None:
        return False
    Address.objects.filter(pk=excluding.pk).update(is_default=False)
    Address.objects.filter(pk=nxt.pk).update(is_default=True)
    return True


@transaction.atomic
def address_delete(*, address: Address, actor: str) -> None:
    customer = _lock_customer(address.customer)
    if address.is_default:
        _promote_next_default(customer, address.kind, excluding=address)
    Address.objects.filter(pk=address.pk).delete()
    _audit(customer, action="address_removed", fields=[address.kind], actor=actor)


def _uuid_or_none(value: Any) -> UUID | None:
    """The path id as a UUID, or None when it is not one (so the caller answers 'not found', not a 500)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def address_get(*, customer: Customer, address_id: Any) -> Address:
    uuid = _uuid_or_none(address_id)
    address = None if uuid is None else Address.objects.filter(customer=customer, pk=uuid).first()
    if address is None:
        raise AddressNotFound(address_id=str(address_id))
    return address


# --- Preferences ----------------------------------------------------------------------------------------------
@transaction.atomic
def preferences_update(
    *,
    customer: Customer,
    actor: str,
    categories: list[str] | None = None,
    restrictions: list[str] | None = None,
    language: str | None = None,
    consents: dict[str, bool] | None = None,
    consent_source: str = "",
) -> CustomerPreferences:
    """Set preferences; a consent's timestamp changes only when its value changes."""
    customer = _lock_customer(customer)
    prefs, _ = CustomerPreferences.objects.get_or_create(
        customer=customer, defaults={"tenant_id": customer.tenant_id}
    )
    changed: list[str] = []
    if categories is not None:
        prefs.categories = sorted({c.strip().lower() for c in categories if c.strip()})
        changed.append("categories")
    if restrictions is not None:
        prefs.restrictions = sorted({r.strip().lower() for r in restrictions if r.strip()})
        changed.append("restrictions")
    if language is not None:
        prefs.language = language.strip()
        changed.append("language")
    prefs.save()
    now = timezone.now()
    for channel, consented in (consents or {}).items():
        existing = ChannelConsent.objects.filter(customer=customer, channel=channel).first()
        if existing is None:
            ChannelConsent.objects.create(
                tenant_id=customer.tenant_id,
                customer=customer,
                channel=channel,
                consented=consented,
                changed_at=now,
                source=consent_source,
            )
            changed.append(f"consent:{channel}")
        elif existing.consented != consented:
            existing.consented = consented
            existing.changed_at = now
            existing.source = consent_source
            existing.save(update_fields=["consented", "changed_at", "source"])
            changed.append(f"consent:{channel}")
    if changed:
        _audit(customer, action="preferences_changed", fields=changed, actor=actor)
    return prefs


@transaction.atomic
def favourite_order_create(
    *, customer: Customer, name: str, items: list[dict[str, Any]], actor: str
) -> FavouriteOrder:
    customer = _lock_customer(customer)
    if FavouriteOrder.objects.filter(customer=customer, name=name).exists():
        raise InvalidCustomer(
            f"A favourite order named {name!r} already exists.", field="name", code="duplicate_name"
        )
    favourite = FavouriteOrder.objects.create(
        tenant_id=customer.tenant_id, customer=customer, name=name, items=items
    )
    _audit(customer, action="favourite_added", fields=[name], actor=actor)
    return favourite


@transaction.atomic
def favourite_order_delete(*, customer: Customer, favourite_id: Any, actor: str) -> None:
    uuid = _uuid_or_none(favourite_id)
    if uuid is None:
        raise FavouriteOrderNotFound(favourite_id=str(favourite_id))
    customer = _lock_customer(customer)
    deleted, _ = FavouriteOrder.objects.filter(customer=customer, pk=uuid).delete()
    if not deleted:
        raise FavouriteOrderNotFound(favourite_id=str(favourite_id))
    _audit(customer, action="favourite_removed", fields=[], actor=actor)
