"""Admin screens of the core: tenants, staff users, the outbox; and the base every tenant-owned admin uses."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
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


class SuperuserChangesOnly:
    """Only a superuser adds, changes or deletes (a screen's URLs, not only its links)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


class SuperuserOnlyAdmin(SuperuserChangesOnly, admin.ModelAdmin):
    """Hidden is not enough: every URL of the model answers 403 to anyone but a superuser."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Tenant)
class TenantAdmin(SuperuserOnlyAdmin):
    list_display = ["slug", "name", "country", "currency", "phone_region", "time_zone"]
    search_fields = ["slug", "name"]


# What a tenant's staff may never set through the user screens: these make or move privilege.
_PRIVILEGE_FIELDS = ("is_superuser", "user_permissions", "tenant")


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Superusers manage every user. A tenant's staff (with the user permissions) manage their own tenant's users
    only: never a superuser, never the privilege fields, and only the groups they hold themselves."""

    list_display = ["username", "email", "tenant", "is_staff", "is_superuser"]
    list_filter = ["tenant", "is_staff", "is_superuser", "groups"]
    fieldsets = (*UserAdmin.fieldsets, ("Tenant", {"fields": ("tenant",)}))  # type: ignore[operator]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        tenant_id = getattr(request.user, "tenant_id", None)
        if tenant_id is None:
            return qs.none()
        return qs.filter(tenant_id=tenant_id, is_superuser=False)

    def get_list_display(self, request: HttpRequest) -> Any:
        display = super().get_list_display(request)
        return display if request.user.is_superuser else ["username", "email", "is_staff"]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return super().get_list_filter(request) if request.user.is_superuser else ["is_staff", "groups"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in _PRIVILEGE_FIELDS]})
            for name, options in fieldsets
            if any(f not in _PRIVILEGE_FIELDS for f in options["fields"])
        ]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(user=request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.tenant_id = request.user.tenant_id  # type: ignore[union-attr]
            obj.is_superuser = False
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The form only offers the editor's own groups; the user's other groups (given by a superuser) stay."""
        kept: list[Group] = []
        if change and not request.user.is_superuser:
            kept = list(form.instance.groups.exclude(user=request.user))
        super().save_related(request, form, formsets, change)
        if kept:
            form.instance.groups.add(*kept)


class GroupAdminReadOnlyForStaff(SuperuserChangesOnly, GroupAdmin):
    """Groups (the back-office roles) are shared by every tenant: only a superuser may change them."""


admin.site.unregister(Group)
admin.site.register(Group, GroupAdminReadOnlyForStaff)


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
