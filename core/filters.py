"""Filters shared by every filterset: a datetime filter that only lets through values PostgreSQL can compare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.utils.translation import gettext_lazy

# Real time zones span UTC-12:00 to UTC+14:00; PostgreSQL refuses offsets beyond ±15:59.
MAX_UTC_OFFSET = timedelta(hours=14)


class BoundedIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 datetime whose offset is a real one, handed on in UTC."""

    default_error_messages = {
        "offset": gettext_lazy("The UTC offset must be between -14:00 and +14:00."),
        "range": gettext_lazy("The date is out of range."),
    }

    def _checked(self, value: datetime) -> datetime:
        offset = value.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError(self.error_messages["offset"], code="invalid_utc_offset")
        try:
            return value.astimezone(UTC) if offset is not None else value
        except OverflowError as exc:
            raise forms.ValidationError(self.error_messages["range"], code="date_out_of_range") from exc

    def to_python(self, value: Any) -> Any:
        result = super().to_python(value)
        return self._checked(result) if isinstance(result, datetime) else result


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's IsoDateTimeFilter, refusing offsets and dates PostgreSQL would fail on (a 400, not a 500)."""

    field_class = BoundedIsoDateTimeField
