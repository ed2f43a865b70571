"""Customer screens. Saving goes through the customer services, so the admin validates and audits like the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.admin import TenantScopedAdmin
from core.admin_display import ReadableMoneyAdmin
from core.api import actor_of
from core.errors import DomainError
from core.models import Tenant
from core.tenancy import tenant_cached
from customers import services
from customers.models import (
    Address,
    ChannelConsent,
    Customer,
    CustomerChange,
    CustomerMetrics,
    CustomerStatus,
    CustomerType,
    FavouriteOrder,
    Purchase,
    PurchaseItem,
)


class CustomerAdminForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [*services.EDITABLE_FIELDS, "tenant"]

    def __init__(self, *args: Any, request_user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_user = request_user

    def _tenant(self) -> Tenant | None:
        if self.instance.pk:
            return tenant_cached(self.instance.tenant_id)
        if self.cleaned_data.get("tenant"):
            return self.cleaned_data["tenant"]
        tenant_id = getattr(self.request_user, "tenant_id", None)
        return Tenant.objects.filter(slug=tenant_id).first() if tenant_id else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        tenant = self._tenant()
        if tenant is None:
            raise forms.ValidationError("Choose the tenant of this customer.")
        data = {k: cleaned.get(k) for k in services.EDITABLE_FIELDS if k in cleaned}
        try:
            values = services.normalize_customer_data(
                tenant, data, current=self.instance if self.instance.pk else None
            )
        except DomainError as exc:
            field = exc.details.get("field")
            if field in self.fields:
                self.add_error(field, exc.message)
            else:
                raise forms.ValidationError(exc.message) from exc
            return cleaned
        cleaned.update(values)
        return cleaned


class AddressInline(admin.TabularInline):
    model = Address
    verbose_name_plural = "addresses"
    extra = 0
    fields = ["kind", "is_default", "label", "line1", "city", "region", "postal_code", "country"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConsentInline(admin.TabularInline):
    model = ChannelConsent
    extra = 0
    fields = ["channel", "consented", "changed_at", "source"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FavouriteOrderInline(admin.TabularInline):
    model = FavouriteOrder
    extra = 0
    fields = ["name", "items", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ChangeInline(admin.TabularInline):
    model = CustomerChange
    extra = 0
    fields = ["created_at", "action", "changed_fields", "actor"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "Change history"
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PurchaseInline(ReadableMoneyAdmin, admin.TabularInline):
    model = Purchase
    extra = 0
    fields = ["completed_at", "source", "source_id", "channel", "store_id", "total_amount"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-completed_at"]
    verbose_name_plural = "Purchase history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CustomerMetricsInline(ReadableMoneyAdmin, admin.StackedInline):
    model = CustomerMetrics
    can_delete = False
    fields = [
        "order_count",
        "lifetime_value",
        "average_order_value",
        "first_purchase_at",
        "last_purchase_at",
        "purchase_frequency_days",
    ]
    readonly_fields = fields
    verbose_name_plural = "metrics"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    form = CustomerAdminForm
    # Each name opens the customer's 360 page; the columns fit a 1366 px screen.
    list_display = [
        "name_360",
        "type",
        "contact",
        "status",
        "tier_column",
        "segment_column",
        "credit_column",
    ]
    list_display_links = None
    list_filter = ["type", "status", "salesperson", "route"]
    search_fields = [
        "first_name",
        "last_name",
        "legal_name",
        "trade_name",
        "email",
        "phone",
        "document_number",
    ]
    readonly_fields = ["id", "created_at", "updated_at", "erased_at"]
    inlines = [
        AddressInline,
        ConsentInline,
        FavouriteOrderInline,
        CustomerMetricsInline,
        PurchaseInline,
        ChangeInline,
    ]
    actions = ["erase_selected"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class _Form(form_class):  # type: ignore[valid-type,misc]
            def __init__(self, *args: Any, **kw: Any) -> None:
                kw["request_user"] = user
                super().__init__(*args, **kw)

        return _Form

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        """The customer pickers of the credit screens (autocomplete) offer business customers only."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.path.endswith("/autocomplete/") and request.GET.get("app_label") == "credit":
            queryset = queryset.filter(type=CustomerType.BUSINESS).exclude(status=CustomerStatus.ERASED)
        return queryset, may_have_duplicates

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        data = {k: form.cleaned_data.get(k) for k in services.EDITABLE_FIELDS if k in form.cleaned_data}
        actor = actor_of(request)
        if change:
            changed = {k: v for k, v in data.items() if k in form.changed_data}
            saved = services.customer_update(customer=obj, data=changed, actor=actor)
        else:
            tenant = form._tenant()
            saved = services.customer_create(tenant=tenant, data=data, actor=actor)
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description="Erase selected customers (GDPR)", permissions=["change"])
    def erase_selected(self, request: HttpRequest, queryset: Any) -> None:
        for customer in queryset:
            services.customer_erase(customer=customer, actor=f"admin:{request.user.get_username()}")
        self.message_user(request, f"Erased {queryset.count()} customer(s).")


class PurchaseItemInline(ReadableMoneyAdmin, admin.TabularInline):
    model = PurchaseItem
    extra = 0
    fields = ["sku", "category", "quantity", "unit_price"]
    readonly_fields = fields
    can_delete = False


@admin.register(Purchase)
class PurchaseAdmin(TenantScopedAdmin):
    list_display = ["completed_at", "source", "source_id", "customer", "total_amount", "channel"]
    list_filter = ["source", "channel"]
    search_fields = ["source_id", "customer__email", "customer__phone"]
    inlines = [PurchaseItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
