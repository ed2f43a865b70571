"""Admin columns that show money and points as people read them (see core.display).

`money_field("exposure")` is a ModelAdmin display method for a Decimal field: the row's currency (its `currency`
field, else its tenant's), the staff user's tenant locale (a superuser reads each row in its own tenant's locale).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
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
