"""REST views of a customer's purchase history and its aggregates (read-only: purchases come from events)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DefaultCursorPagination, TenantAPIView
from core.filters import IsoDateTimeFilter
from customers import history, selectors
from customers.models import Purchase, PurchaseItem, PurchaseSource

READ = ["customers:read"]


class PurchaseItemOutput(serializers.ModelSerializer):
    class Meta:
        model = PurchaseItem
        fields = ["sku", "category", "quantity", "unit_price"]


class PurchaseOutput(serializers.ModelSerializer):
    items = PurchaseItemOutput(many=True, read_only=True)

    class Meta:
        model = Purchase
        fields = [
            "id",
            "source",
            "source_id",
            "channel",
            "store_id",
            "total_amount",
            "currency",
            "completed_at",
            "items",
        ]


class PurchaseFilter(django_filters.FilterSet):
    source = django_filters.ChoiceFilter(choices=PurchaseSource.choices)
    channel = django_filters.CharFilter()
    store_id = django_filters.CharFilter()
    completed_after = IsoDateTimeFilter(field_name="completed_at", lookup_expr="gte")
    completed_before = IsoDateTimeFilter(field_name="completed_at", lookup_expr="lt")
    min_total = django_filters.NumberFilter(field_name="total_amount", lookup_expr="gte")
    max_total = django_filters.NumberFilter(field_name="total_amount", lookup_expr="lte")
    sku = django_filters.CharFilter(method="with_sku", label="Purchases with an item of this SKU")
    category = django_filters.CharFilter(
        method="with_category", label="Purchases with an item of this category"
    )

    class Meta:
        model = Purchase
        fields = ["source", "channel", "store_id"]

    def with_sku(self, queryset: QuerySet[Purchase], name: str, value: str) -> QuerySet[Purchase]:
        return queryset.filter(items__sku=value).distinct()

    def with_category(self, queryset: QuerySet[Purchase], name: str, value: str) -> QuerySet[Purchase]:
        return queryset.filter(items__category=value).distinct()


class PurchasePagination(DefaultCursorPagination):
    ordering = ("-completed_at", "-id")  # type: ignore[assignment]


class CustomerPurchaseListView(TenantAPIView, GenericAPIView):
    required_scopes = {"GET": READ}
    serializer_class = PurchaseOutput
    pagination_class = PurchasePagination
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    filterset_class = PurchaseFilter

    def get_queryset(self) -> QuerySet[Purchase]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no tenant
            return Purchase.objects.none()
        return history.purchase_list(selectors.customer_get(self.kwargs["customer_id"]))

    @extend_schema(
        responses=PurchaseOutput(many=True),
        description="The customer's purchases (orders and POS sales), newest first, cursor-paginated.",
    )
    def get(self, request: Request, customer_id: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(PurchaseOutput(page, many=True).data)


class MetricsOutput(serializers.Serializer):
    order_count = serializers.IntegerField()
    lifetime_value = serializers.DecimalField(max_digits=16, decimal_places=2)
    average_order_value = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    first_purchase_at = serializers.DateTimeField(allow_null=True)
    last_purchase_at = serializers.DateTimeField(allow_null=True)
    purchase_frequency_days = serializers.DecimalField(
        max_digits=10, decimal_places=2, allow_null=True, help_text="Average days between purchases."
    )
    days_since_last_purchase = serializers.IntegerField(allow_null=True)


class CustomerMetricsView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=MetricsOutput)
    def get(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        return Response(MetricsOutput(history.customer_metrics_get(customer)).data)
