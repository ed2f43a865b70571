"""How people read money, numbers and times: the tenant's locale (Babel's CLDR data), never hand-written tables.

A tenant's locale is the official language of its country with that country as territory (`es_CL` for a Chilean
business, `en_US` for an American one). Money is shown with the currency's own symbol and its ISO 4217 minor units
(CLP 0 decimals, USD and MXN 2) and the locale's grouping; the amounts themselves stay exact Decimals.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal
from django.conf import settings
from django.utils import timezone

FALLBACK_LOCALE = "en_US"


@functools.lru_cache(maxsize=256)
def locale_for_country(country: str) -> str:
    """`es_CL` for CL: the country's first official language, with the country as territory."""
    country = (country or "").upper()
    for language in get_official_languages(country, de_facto=True) if country else ():
        try:
            return str(Locale.parse(f"{language}_{country}"))
        except (UnknownLocaleError, ValueError):
            continue
    return FALLBACK_LOCALE


def tenant_locale(tenant: Any) -> str:
    return locale_for_country(getattr(tenant, "country", "") or "")


def tenant_language(tenant: Any) -> str:
    """The interface language for a tenant: its locale's language when the service speaks it, else English."""
    language = tenant_locale(tenant).split("_")[0]
    spoken = {code for code, _ in settings.LANGUAGES}
    return language if language in spoken else "en"


def money_display(amount: Decimal | int | str | None, currency: str, locale: str = FALLBACK_LOCALE) -> str:
    """`$800.000` for 800000 CLP in es_CL, `$1,234.50` for USD in en_US; an em dash for no amount."""
    if amount is None or amount == "":
        return "—"
    return str(format_currency(Decimal(amount), currency.upper(), locale=locale))


def number_display(value: Decimal | int | None, locale: str = FALLBACK_LOCALE) -> str:
    """A count or a number of points with the locale's grouping (`53.000` in es_CL)."""
    if value is None:
        return "—"
    return str(format_decimal(value, locale=locale))


def percent_display(ratio: Decimal | None, locale: str = FALLBACK_LOCALE) -> str:
    """A ratio (0.25) as a percentage with one decimal, in the locale's notation."""
    if ratio is None:
        return "—"
    return str(format_decimal(Decimal(ratio) * 100, format="#,##0.0", locale=locale)) + " %"


def tz_name(tenant: Any) -> str:
    return getattr(tenant, "time_zone", "") or settings.TIME_ZONE


def datetime_display(value: datetime | None, time_zone: str, locale: str = FALLBACK_LOCALE) -> str:
    """A timestamp in the tenant's time zone, labelled with it: `2026-12-02 04:05 (America/Santiago)`."""
    if value is None:
        return "—"
    zone = ZoneInfo(time_zone)
    local = timezone.localtime(value, zone) if timezone.is_aware(value) else value.replace(tzinfo=zone)
    return f"{format_datetime(local, 'yyyy-MM-dd HH:mm', tzinfo=zone, locale=locale)} ({time_zone})"


def date_display(value: date | None, locale: str = FALLBACK_LOCALE) -> str:
    if value is None:
        return "—"
    return str(format_date(value, "yyyy-MM-dd", locale=locale))
