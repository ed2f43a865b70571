"""Filters shared by every filterset: a datetime filter that only lets through values PostgreSQL can compare, and
the refusal of query parameters a view does not know (as `StrictFieldsMixin` refuses unknown body fields)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.utils.translation import gettext_lazy
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.settings import api_settings

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


def refuse_unknown_query_params(query_params: Iterable[str], allowed: Iterable[str]) -> None:
    """Refuse (`unknown_parameter`, 400) a query parameter outside `allowed`: a misspelt `?segmnet=champions` must
    not answer every customer as if it had been a filter."""
    known = set(allowed)
    format_param = api_settings.URL_FORMAT_OVERRIDE
    if format_param:
        known.add(format_param)
    unknown = sorted(str(name) for name in set(query_params) - known)
    if unknown:
        raise serializers.ValidationError(
            {
                name: [ErrorDetail("This query parameter is not known.", code="unknown_parameter")]
                for name in unknown
            }
        )


_PAGINATION_PARAMS = (
    "cursor_query_param",
    "page_size_query_param",
    "page_query_param",
    "limit_query_param",
    "offset_query_param",
)
_BACKEND_PARAMS = ("ordering_param", "search_param")


class StrictDjangoFilterBackend(DjangoFilterBackend):
    """django-filter's backend that refuses query parameters neither the filterset, the view's pagination nor its
    other filter backends (ordering, search) read."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        allowed: set[str] = set()
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        paginator = getattr(view, "paginator", None)
        allowed |= {getattr(paginator, name) for name in _PAGINATION_PARAMS if getattr(paginator, name, None)}
        for backend in getattr(view, "filter_backends", []):
            allowed |= {getattr(backend, name) for name in _BACKEND_PARAMS if getattr(backend, name, None)}
        refuse_unknown_query_params(request.query_params, allowed)
        return super().filter_queryset(request, queryset, view)
