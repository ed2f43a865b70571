"""Customers, their addresses and preferences, their purchase history and its aggregates."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models import BigIntegerField, F, Func, Q, TextField
from django.db.models.functions import Cast, Lower, Reverse

from core.models import TenantOwned


class CustomerType(models.TextChoices):
    INDIVIDUAL = "individual", "Individual"
    BUSINESS = "business", "Business"


class CustomerStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    BLOCKED = "blocked", "Blocked"
    ERASED = "erased", "Erased (GDPR)"


class Customer(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=CustomerType.choices, default=CustomerType.INDIVIDUAL)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    legal_name = models.CharField(max_length=200, blank=True)
    trade_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True, help_text="Lower-cased.")
    phone = models.CharField(max_length=20, null=True, blank=True, help_text="E.164.")
    document_type = models.CharField(max_length=16, blank=True)
    document_number = models.CharField(max_length=32, null=True, blank=True, help_text="Compact form.")
    loyalty_card_number = models.CharField(max_length=64, null=True, blank=True)
    external_id = models.CharField(
        max_length=64, null=True, blank=True, help_text="Id in the business's CRM."
    )
    salesperson = models.CharField(max_length=100, blank=True)
    route = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=CustomerStatus.choices, default=CustomerStatus.ACTIVE)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "email"], name="customer_email_unique_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "phone"], name="customer_phone_unique_per_tenant"),
            models.UniqueConstraint(
                fields=["tenant", "document_number"], name="customer_document_unique_per_tenant"
            ),
            models.UniqueConstraint(
                fields=["tenant", "loyalty_card_number"], name="customer_card_unique_per_tenant"
            ),
            models.UniqueConstraint(
                fields=["tenant", "external_id"], name="customer_external_id_unique_per_tenant"
            ),
            # The target of composite foreign keys `(tenant_id, customer_id)` (segmentation's tables): one check
            # per row proves both that the customer exists and that the row belongs to the customer's tenant.
            models.UniqueConstraint(fields=["tenant", "id"], name="customer_tenant_id_unique"),
            models.CheckConstraint(
                condition=Q(email__isnull=True) | Q(email=Lower("email")),
                name="customer_email_lowercase",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="customer_tenant_created_idx"),
            # The cashier's "last digits of the phone" lookup: a prefix search of the reversed number.
            models.Index(
                F("tenant"),
                OpClass(Reverse("phone"), name="text_pattern_ops"),
                name="customer_phone_suffix_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        if self.type == CustomerType.BUSINESS:
            return self.trade_name or self.legal_name or str(self.id)
        full = f"{self.first_name} {self.last_name}".strip()
        return full or str(self.id)


class AddressKind(models.TextChoices):
    SHIPPING = "shipping", "Shipping"
    BILLING = "billing", "Billing"


class Address(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    kind = models.CharField(max_length=16, choices=AddressKind.choices)
    is_default = models.BooleanField(default=False)
    label = models.CharField(max_length=100, blank=True)
    line1 = models.CharField(max_length=200)
    line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    region = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2)
    delivery_notes = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind"], condition=Q(is_default=True), name="address_one_default_per_kind"
            ),
        ]
        ordering = ["kind", "-is_default", "created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.line1}, {self.city}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    PUSH = "push", "Push"


class CustomerPreferences(TenantOwned):
    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="preferences"
    )
    categories = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    restrictions = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    language = models.CharField(max_length=16, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Preferences of {self.customer}"


class ChannelConsent(TenantOwned):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    consented = models.BooleanField()
    changed_at = models.DateTimeField()
    source = models.CharField(
        max_length=64, blank=True, help_text="Where the consent was given or withdrawn."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel"], name="consent_one_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.channel}={'yes' if self.consented else 'no'}"


class FavouriteOrder(TenantOwned):
    """A named list of items a customer orders again and again (cafés: 'my usual')."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="favourite_orders")
    name = models.CharField(max_length=100)
    items = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "name"], name="favourite_order_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class CustomerChange(TenantOwned):
    """The audit trail of a customer, written by the services in the same transaction as the change."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=32)
    changed_fields = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {', '.join(self.changed_fields)}"


def current_transaction_id() -> Cast:
    """`pg_current_xact_id()` as a bigint: the id of the writing (top-level) transaction. xid8 is 64 bits with the
    epoch, so it never wraps."""
    return Cast(
        Cast(Func(function="pg_current_xact_id", output_field=TextField()), TextField()), BigIntegerField()
    )


class CustomerSyncChange(TenantOwned):
    """One row per write of a customer (created, updated, blocked, unblocked, erased), in the same transaction: the
    change feed an external CRM polls (`customers.sync.changes_since`).

    `transaction_id` is the writing transaction's id, filled by the database. The feed is read in
    (transaction_id, id) order and only below the oldest transaction still running (`pg_snapshot_xmin`): a
    transaction that started earlier and commits later is never passed over by a poller's cursor."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="sync_changes")
    transaction_id = models.BigIntegerField(db_default=current_transaction_id())
    action = models.CharField(max_length=16)
    changed_fields = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    occurred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "transaction_id", "id"], name="customer_sync_position_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.customer_id} @{self.transaction_id}"


# --- Purchase history (filled by the order/POS event consumers and the backfill) ------------------------------
class PurchaseSource(models.TextChoices):
    ORDER = "order", "Order"
    POS = "pos", "Point of sale"


class Purchase(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="purchases",
        help_text="Empty for an anonymous sale.",
    )
    source = models.CharField(max_length=8, choices=PurchaseSource.choices)
    source_id = models.CharField(max_length=100, help_text="Order id or POS transaction id.")
    channel = models.CharField(max_length=32, blank=True)
    store_id = models.CharField(max_length=64, blank=True)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    completed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "source", "source_id"], name="purchase_source_unique"),
        ]
        indexes = [
            models.Index(fields=["customer", "-completed_at"], name="purchase_customer_time_idx"),
            models.Index(fields=["tenant", "completed_at"], name="purchase_tenant_time_idx"),
        ]
        ordering = ["-completed_at"]

    def __str__(self) -> str:
        return f"{self.source} {self.source_id}"


class PurchaseItem(TenantOwned):
    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="items")
    sku = models.CharField(max_length=64)
    category = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class CustomerMetrics(TenantOwned):
    """Aggregates of a customer's purchases, kept current by the purchase-recording service."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="metrics"
    )
    order_count = models.PositiveIntegerField(default=0)
    lifetime_value = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    average_order_value = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    first_purchase_at = models.DateTimeField(null=True, blank=True)
    last_purchase_at = models.DateTimeField(null=True, blank=True)
    purchase_frequency_days = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Average days between purchases; empty with fewer than two purchases.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Metrics of {self.customer}"
