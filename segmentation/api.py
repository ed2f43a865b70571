"""REST views of segments and analytics: validate, call a selector, serialize."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DefaultCursorPagination, TenantAPIView
from core.models import Tenant
from core.tenancy import tenant_cached
from customers.selectors import customer_get
from segmentation import selectors
from segmentation.models import SegmentChange

SEGMENTS_READ = ["segments:read"]
ANALYTICS_READ = ["analytics:read"]
DEFAULT_PERIOD_DAYS = 30


class SegmentOutput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    segment = serializers.CharField()
    recency_score = serializers.IntegerField(help_text="1-5; 0 without purchases or never computed.")
    frequency_score = serializers.IntegerField()
    monetary_score = serializers.IntegerField()
    is_vip = serializers.BooleanField()
    churn_risk = serializers.CharField(help_text="low, medium, high; empty without purchases.")
    computed_at = serializers.DateTimeField(allow_null=True)
    as_of = serializers.DateField(allow_null=True)
    rule_version = serializers.IntegerField(allow_null=True)
    segment_since = serializers.DateField(allow_null=True)


class SegmentChangeOutput(serializers.ModelSerializer):
    run_id = serializers.IntegerField()
    reason = serializers.CharField(read_only=True)

    class Meta:
        model = SegmentChange
        fields = [
            "id",
            "as_of",
            "rule_version",
            "run_id",
            "old_segment",
            "new_segment",
            "recency_score",
            "frequency_score",
            "monetary_score",
            "recency_days",
            "frequency",
            "monetary",
            "is_vip",
            "churn_risk",
            "reason",
            "event_id",
            "created_at",
        ]


class CustomerSegmentView(TenantAPIView):
    required_scopes = {"GET": SEGMENTS_READ}

    @extend_schema(responses=SegmentOutput, summary="The customer's segment from the latest nightly run")
    def get(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        view = selectors.segment_for_customer(customer)
        return Response(SegmentOutput({"customer_id": customer.pk, **view.__dict__}).data)


class CustomerSegmentHistoryView(TenantAPIView, GenericAPIView):
    required_scopes = {"GET": SEGMENTS_READ}
    serializer_class = SegmentChangeOutput
    queryset = SegmentChange.objects.none()  # for the schema; the rows come from the selector
    pagination_class = DefaultCursorPagination  # newest first; one change per run

    @extend_schema(responses=SegmentChangeOutput(many=True), summary="The customer's segment changes")
    def get(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        page = self.paginate_queryset(selectors.segment_history(customer))
        return self.get_paginated_response(SegmentChangeOutput(page, many=True).data)


class PeriodInput(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)


def default_end(tenant: Tenant) -> date:
    """Yesterday in the tenant's time zone: the last complete day."""
    return timezone.now().astimezone(ZoneInfo(tenant.time_zone)).date() - timedelta(days=1)


def kpis_jsonable(report: dict[str, Any]) -> dict[str, Any]:
    """Money as decimal strings, dates ISO, timestamps RFC 3339: never a float on the wire."""
    return json.loads(json.dumps(report, cls=DjangoJSONEncoder))  # type: ignore[no-any-return]


_KPIS = inline_serializer(
    "AnalyticsKpis",
    {
        "period": serializers.DictField(),
        "currency": serializers.CharField(),
        "active_customers": serializers.IntegerField(),
        "orders": serializers.IntegerField(),
        "revenue": serializers.DecimalField(max_digits=18, decimal_places=2),
        "purchasing_customers": serializers.IntegerField(),
        "previous_period_customers": serializers.IntegerField(),
        "retained_customers": serializers.IntegerField(),
        "retention_rate": serializers.DecimalField(max_digits=6, decimal_places=4, allow_null=True),
        "average_lifetime_value": serializers.DecimalField(max_digits=18, decimal_places=2),
        "average_order_value": serializers.DecimalField(max_digits=18, decimal_places=2),
        "purchase_frequency": serializers.DecimalField(max_digits=10, decimal_places=2),
        "points": serializers.DictField(
            allow_null=True, help_text="Null until the loyalty app provides KPIs."
        ),
        "credit": serializers.DictField(
            allow_null=True, help_text="Null until the credit app provides KPIs."
        ),
        "segments": serializers.DictField(),
        "definitions": serializers.DictField(child=serializers.CharField()),
    },
)


class AnalyticsKpisView(TenantAPIView):
    required_scopes = {"GET": ANALYTICS_READ}

    @extend_schema(
        parameters=[
            OpenApiParameter("start", date, description="First day (inclusive); default 30 days before end."),
            OpenApiParameter("end", date, description="Last day (inclusive); default yesterday."),
        ],
        responses=_KPIS,
        summary="The tenant's KPIs for a period (dates in the tenant's time zone)",
    )
    def get(self, request: Request) -> Response:
        data = PeriodInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        end = data.validated_data.get("end") or default_end(tenant_cached(self.tenant_slug))
        start = data.validated_data.get("start") or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
        return Response(kpis_jsonable(selectors.analytics_kpis(start=start, end=end)))
