"""Admin screens of the core: tenants, staff users, the outbox; and the base every tenant-owned admin uses."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from core.admin_display import ReadableMoneyAdmin
from core.models import OutboxEvent, Tenant, User


class TenantScopedAdmin(ReadableMoneyAdmin, admin.ModelAdmin):
    """Staff see and create rows of their own tenant only (RLS enforces it too); superusers see every tenant."""

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        if request.user.is_superuser and "tenant" not in display:
            display.append("tenant")
        return display

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        if request.user.is_superuser and "tenant" not in filters:
            filters.append("tenant")
        return filters

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append("tenant")
        return exclude

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Staff never see the tenant (it is always their own), nor a link to a tenant page they may not open.
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else [f for f in fields if f != "tenant"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and not request.user.is_superuser:
            obj.tenant_id = request.user.tenant_id  # type: ignore[union-attr]
        super().save_model(request, obj, form, change)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "country", "currency", "phone_region", "time_zone"]
    search_fields = ["slug", "name"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    list_display = ["username", "email", "tenant", "is_staff", "is_superuser"]
    list_filter = ["tenant", "is_staff", "is_superuser", "groups"]
    fieldsets = (*UserAdmin.fieldsets, ("Tenant", {"fields": ("tenant",)}))  # type: ignore[operator]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)


@admin.register(OutboxEvent)
class OutboxEventAdmin(TenantScopedAdmin):
    list_display = ["event_type", "event_id", "occurred_at", "published_at", "attempts"]
    list_filter = ["event_type"]
    search_fields = ["event_id", "aggregate_id"]
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
