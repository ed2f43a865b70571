"""Commercial credit: lines approved by credit managers, holds and charges that use them, payments that release them.

Exposure (unpaid charges + active holds) is cached on the line and changed only by `credit.services`, under
`select_for_update()` on the line, in the same transaction as an append-only `CreditLedgerEntry`. The database
refuses an exposure above the approved limit (plus the excess a limit decrease left behind, which only shrinks).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from core.ledgers import AppendOnlyLedger
from core.models import TenantOwned
from customers.models import Customer

ZERO = Decimal("0.00")


class CreditLineStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"
    ON_HOLD = "on_hold", "On hold (overdue)"
    CLOSED = "closed", "Closed"


# A customer has at most one line in these states; rejected and closed lines are history.
OPEN_STATUSES = (
    CreditLineStatus.REQUESTED,
    CreditLineStatus.APPROVED,
    CreditLineStatus.SUSPENDED,
    CreditLineStatus.ON_HOLD,
)


class CreditLine(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_lines")
    status = models.CharField(
        max_length=16, choices=CreditLineStatus.choices, default=CreditLineStatus.REQUESTED
    )
    currency = models.CharField(max_length=3, help_text="Always the tenant's currency.")
    requested_limit = models.DecimalField(max_digits=14, decimal_places=2)
    approved_limit = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    payment_terms_days = models.PositiveIntegerField(help_text="Days from a charge to its due date.")
    exposure = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=ZERO,
        help_text="Unpaid charges + active holds (cached sum of the ledger).",
    )
    excess_allowance = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=ZERO,
        help_text="Exposure above the limit that existed when the limit was lowered; only shrinks as exposure "
        "is released, so no use can ever add to it.",
    )
    requested_by = models.CharField(max_length=200, help_text="Staff user or API principal, as text.")
    request_reason = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    status_reason = models.TextField(blank=True, help_text="Why the line is in its current status.")
    status_changed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("approve_creditline", "Can approve or reject credit line requests")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status__in=[s.value for s in OPEN_STATUSES]),
                name="credit_line_one_open_per_customer",
            ),
            models.CheckConstraint(condition=Q(requested_limit__gt=0), name="credit_line_requested_positive"),
            models.CheckConstraint(condition=Q(approved_limit__gte=0), name="credit_line_limit_not_negative"),
            models.CheckConstraint(condition=Q(exposure__gte=0), name="credit_line_exposure_not_negative"),
            models.CheckConstraint(
                condition=Q(excess_allowance__gte=0), name="credit_line_excess_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(exposure__lte=F("approved_limit") + F("excess_allowance")),
                name="credit_line_exposure_within_limit",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="credit_line_tenant_status_idx")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Credit line of {self.customer} ({self.status})"

    @property
    def available(self) -> Decimal:
        return max(ZERO, self.approved_limit - self.exposure)


class CreditRequest(CreditLine):
    """The credit managers' queue: credit lines waiting for a decision (an admin-only view of CreditLine)."""

    class Meta:
        proxy = True
        verbose_name = "pending credit request"
        verbose_name_plural = "pending credit requests"


class CreditLineChange(AppendOnlyLedger, TenantOwned):
    """History of a line: every change of status, limit or terms, with who and why (append-only)."""

    line = models.ForeignKey(CreditLine, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    from_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    to_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    from_terms_days = models.PositiveIntegerField(null=True, blank=True)
    to_terms_days = models.PositiveIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_status or '-'} -> {self.to_status}"


class CreditHoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CONVERTED = "converted", "Converted to a charge"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class CreditHold(TenantOwned):
    """An amount reserved for an order during checkout; part of the exposure while active."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="holds")
    order_id = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=16, choices=CreditHoldStatus.choices, default=CreditHoldStatus.ACTIVE
    )
    expires_at = models.DateTimeField()
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_hold_amount_positive"),
            models.UniqueConstraint(
                fields=["tenant", "order_id"],
                condition=Q(status="active"),
                name="credit_hold_one_active_per_order",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="active"), name="credit_hold_active_expiry_idx"
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Hold for {self.order_id} ({self.status})"


class CreditChargeStatus(models.TextChoices):
    OPEN = "open", "Open"
    OVERDUE = "overdue", "Overdue"
    PAID = "paid", "Paid"
    CANCELLED = "cancelled", "Cancelled"


UNPAID_STATUSES = (CreditChargeStatus.OPEN, CreditChargeStatus.OVERDUE)


class CreditCharge(TenantOwned):
    """An order bought on credit (the 'usage'): due `payment_terms_days` after it was charged."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="charges")
    order_id = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    outstanding = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    charged_on = models.DateField()
    due_date = models.DateField()
    status = models.CharField(
        max_length=16, choices=CreditChargeStatus.choices, default=CreditChargeStatus.OPEN
    )
    available_after = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        help_text="Available credit right after the charge: what a replay of the use answers.",
    )
    hold = models.ForeignKey(CreditHold, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "order_id"], name="credit_charge_order_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_charge_amount_positive"),
            models.CheckConstraint(
                condition=Q(outstanding__gte=0) & Q(outstanding__lte=F("amount")),
                name="credit_charge_outstanding_range",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(outstanding=0), name="credit_charge_paid_means_settled"
            ),
        ]
        indexes = [
            models.Index(fields=["line", "status", "due_date"], name="credit_charge_line_due_idx"),
        ]
        ordering = ["due_date", "created_at"]

    def __str__(self) -> str:
        return f"Charge for {self.order_id} ({self.status})"


class CreditPayment(TenantOwned):
    """A payment received from the customer, allocated to charges; what is left stays as unapplied credit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="payments")
    payment_id = models.CharField(max_length=100, help_text="The payment's id in the payment service.")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    order_id = models.CharField(max_length=100, blank=True)
    unapplied_amount = models.DecimalField(max_digits=14, decimal_places=2)
    received_at = models.DateTimeField()
    fingerprint = models.CharField(max_length=64)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "payment_id"], name="credit_payment_id_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(unapplied_amount__gte=0) & Q(unapplied_amount__lte=F("amount")),
                name="credit_payment_unapplied_range",
            ),
        ]
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"Payment {self.payment_id}"


class CreditPaymentAllocation(AppendOnlyLedger, TenantOwned):
    payment = models.ForeignKey(CreditPayment, on_delete=models.PROTECT, related_name="allocations")
    charge = models.ForeignKey(CreditCharge, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_allocation_amount_positive"),
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Part of {self.payment_id} to {self.charge_id}"


class CreditLedgerKind(models.TextChoices):
    HOLD_PLACED = "hold_placed", "Hold placed"
    HOLD_RELEASED = "hold_released", "Hold released"
    HOLD_EXPIRED = "hold_expired", "Hold expired"
    HOLD_CONVERTED = "hold_converted", "Hold converted to a charge"
    CHARGE = "charge", "Charge"
    CHARGE_CANCELLED = "charge_cancelled", "Charge cancelled"
    PAYMENT = "payment", "Payment applied"


class CreditLedgerEntry(AppendOnlyLedger, TenantOwned):
    """Append-only movements of a line's exposure: the cached `CreditLine.exposure` is their sum."""

    line = models.ForeignKey(CreditLine, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=20, choices=CreditLedgerKind.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2, help_text="Signed change of exposure.")
    exposure_after = models.DecimalField(max_digits=14, decimal_places=2)
    order_id = models.CharField(max_length=100, blank=True)
    charge = models.ForeignKey(
        CreditCharge, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    hold = models.ForeignKey(CreditHold, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(
        CreditPayment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="credit_ledger_amount_not_zero"),
        ]
        ordering = ["created_at", "id"]
        verbose_name_plural = "credit ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id or self.pk}"


class VolumeDiscountBracket(TenantOwned):
    """Commercial terms of a B2B customer: from `min_amount` of an order (optionally of one category) the
    Pricing service applies `discount_percent`."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="volume_discounts")
    category = models.CharField(max_length=64, blank=True, help_text="Empty: every category.")
    min_amount = models.DecimalField(max_digits=14, decimal_places=2)
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2)
    updated_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "category", "min_amount"], name="volume_discount_bracket_unique"
            ),
            models.CheckConstraint(condition=Q(min_amount__gte=0), name="volume_discount_min_not_negative"),
            models.CheckConstraint(
                condition=Q(discount_percent__gt=0) & Q(discount_percent__lte=100),
                name="volume_discount_percent_range",
            ),
        ]
        ordering = ["category", "min_amount"]

    def __str__(self) -> str:
        return f"{self.discount_percent}% {'on ' + self.category if self.category else 'on everything'}"
