"""Admin columns that show money and points as people read them (see core.display).

`money_field("exposure")` is a ModelAdmin display method for a Decimal field: the row's currency (its `currency`
field, else its tenant's), the staff user's tenant locale (a superuser reads each row in its own tenant's locale).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from core.backoffice import _display_locale
from core.display import FALLBACK_LOCALE, money_display, number_display, tenant_locale
from core.errors import UnknownTenant
from core.tenancy import tenant_cached


def _value(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if callable(obj):
            obj = obj()
    return obj


def _tenant(obj: Any) -> Any:
    try:
        return tenant_cached(obj.tenant_id)
    except (UnknownTenant, AttributeError):
        return None


def row_locale(obj: Any) -> str:
    """The staff user's tenant locale, else (superusers) the row's tenant's."""
    wanted = _display_locale.get(None)
    if wanted is not None:
        return wanted
    tenant = _tenant(obj)
    return tenant_locale(tenant) if tenant is not None else FALLBACK_LOCALE


def row_money(obj: Any, amount: Decimal | None) -> str:
    currency = getattr(obj, "currency", "") or getattr(_tenant(obj), "currency", "") or "USD"
    return format_html('<span class="money">{}</span>', money_display(amount, currency, row_locale(obj)))


def money_field(
    name: str, *, description: str | None = None, ordering: str | None = None
) -> Callable[..., str]:
    """A display method for the Decimal at `name` (dotted paths and methods allowed)."""

    @admin.display(description=description or name.replace("_", " "), ordering=ordering or name)
    def show(model_admin: Any, obj: Any) -> str:
        return row_money(obj, _value(obj, name))

    return show


def points_field(name: str, *, description: str | None = None) -> Callable[..., str]:
    """A display method for a whole number of points, grouped in the locale's way."""

    @admin.display(description=description or name.replace("_", " "), ordering=name)
    def show(model_admin: Any, obj: Any) -> str:
        return format_html(
            '<span class="money">{}</span>', number_display(_value(obj, name), row_locale(obj))
        )

    return show


# Decimal fields that are not money: ratios, rates, shares, quantities, days.
NOT_MONEY = re.compile(r"percent|quantity|days|rate|share|multiplier|ratio")
SHOWN = "__shown"


def money_field_names(model: Any) -> set[str]:
    return {
        f.name
        for f in model._meta.get_fields()
        if isinstance(f, models.DecimalField) and not NOT_MONEY.search(f.name)
    }


class ReadableMoneyAdmin:
    """Every money field a page shows without an input (list columns, read-only fields, view-only pages) is shown
    as people read it. An editable field stays the exact decimal the form needs.

    The money fields are found on the model (its DecimalFields that are not rates, shares, quantities or days);
    each is shown through a display method `<name>__shown` made here."""

    model: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.money_fields = money_field_names(self.model)
        for name in self.money_fields:
            label = self.model._meta.get_field(name).verbose_name
            shown = admin.display(description=label, ordering=name)(
                lambda obj, name=name: row_money(obj, getattr(obj, name))
            )
            setattr(self, name + SHOWN, shown)

    def _shown(self, names: Any) -> list[Any]:
        return [f"{n}{SHOWN}" if isinstance(n, str) and n in self.money_fields else n for n in names]

    def get_list_display(self, request: Any) -> Any:
        return self._shown(super().get_list_display(request))  # type: ignore[misc]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        names = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            names += sorted(self.money_fields - set(names))  # a view-only page shows every field read-only
        return self._shown(names)

    def get_fieldsets(self, request: Any, obj: Any = None) -> Any:
        readonly = set(self.get_readonly_fields(request, obj))
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        return [
            (
                title,
                {
                    **options,
                    "fields": [
                        f"{n}{SHOWN}" if isinstance(n, str) and f"{n}{SHOWN}" in readonly else n
                        for n in options["fields"]
                    ],
                },
            )
            for title, options in fieldsets
        ]


class ReadOnlyAdminMixin:
    """Rows that only services write (ledgers, balances, documents, runs): the admin shows them and changes nothing.
    Put it before the admin base class (`class LedgerAdmin(ReadOnlyAdminMixin, TenantScopedAdmin)`)."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadableMoneyAdmin, ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only table of rows under their parent's page (money and points shown as people read them)."""

    extra = 0
    can_delete = False
