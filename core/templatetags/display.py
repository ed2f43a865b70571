"""Template filters for money, points and times as people read them (see core.display)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

from core import display
from core.backoffice import display_locale

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """`{{ line.exposure|money:line.currency }}` -> `$800.000`"""
    return display.money_display(amount, currency or "USD", display_locale())


@register.filter
def number(value: Any) -> str:
    """`{{ points|number }}` -> `53.000`"""
    return display.number_display(value, display_locale())


@register.filter
def percent(ratio: Decimal | None) -> str:
    return display.percent_display(ratio, display_locale())


@register.filter
def local_datetime(value: datetime | None) -> str:
    """A timestamp in the page's time zone, labelled with the zone."""
    return display.datetime_display(value, timezone.get_current_timezone_name(), display_locale())


@register.filter
def local_date(value: date | None) -> str:
    return display.date_display(value, display_locale())
