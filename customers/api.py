"""REST views of customers: validate, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.filters import OrderingFilter
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DefaultCursorPagination, StrictFieldsMixin, TenantAPIView, actor_of
from core.filters import IsoDateTimeFilter, StrictDjangoFilterBackend, refuse_unknown_query_params
from core.tenancy import current_tenant, tenant_cached
from customers import selectors, services
from customers.identifiers import EXTERNAL_ID_PATTERN
from customers.models import (
    Address,
    AddressKind,
    Channel,
    ChannelConsent,
    Customer,
    CustomerChange,
    CustomerPreferences,
    CustomerStatus,
    CustomerType,
    FavouriteOrder,
)

READ = ["customers:read"]
WRITE = ["customers:write"]


class CustomerOutput(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)
    segment = serializers.SerializerMethodField(help_text="The segment of the latest nightly run.")

    class Meta:
        model = Customer
        fields = [
            "id",
            "type",
            "display_name",
            *services.EDITABLE_FIELDS[1:],
            "segment",
            "created_at",
            "updated_at",
        ]

    def get_segment(self, customer: Customer) -> str:
        return selectors.customer_segment_name(customer)


class CustomerInput(StrictFieldsMixin, serializers.Serializer):
    # a person has a first name, a business a legal name (the service: invalid_customer)
    schema_one_of = [
        {
            "required": ["type", "first_name"],
            "properties": {"type": {"enum": ["individual"]}, "first_name": {"pattern": r"\S"}},
        },
        {
            "required": ["type", "legal_name"],
            "properties": {"type": {"enum": ["business"]}, "legal_name": {"pattern": r"\S"}},
        },
    ]
    type = serializers.ChoiceField(choices=CustomerType.choices)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    legal_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    trade_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True, allow_null=True)
    document_type = serializers.CharField(max_length=16, required=False, allow_blank=True)
    document_number = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    loyalty_card_number = serializers.CharField(
        max_length=64, required=False, allow_blank=True, allow_null=True
    )
    external_id = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    salesperson = serializers.CharField(max_length=100, required=False, allow_blank=True)
    route = serializers.CharField(max_length=100, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=[CustomerStatus.ACTIVE, CustomerStatus.BLOCKED], required=False)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)


CHURN_RISKS = [("low", "Low"), ("medium", "Medium"), ("high", "High")]


class CustomerFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Free text over name, email, phone and document")
    type = django_filters.ChoiceFilter(choices=CustomerType.choices)
    status = django_filters.ChoiceFilter(
        choices=[(s.value, s.label) for s in (CustomerStatus.ACTIVE, CustomerStatus.BLOCKED)]
    )
    salesperson = django_filters.CharFilter()
    route = django_filters.CharFilter()
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    segment = django_filters.CharFilter(
        method="filter_segment",
        max_length=32,
        label="The segment of the latest run (e.g. champions); `unclassified`: not yet reached by a run",
    )
    vip = django_filters.ChoiceFilter(
        method="filter_vip", choices=[("true", "true"), ("false", "false")], label="VIP in the latest run"
    )
    churn_risk = django_filters.ChoiceFilter(
        field_name="segment__churn_risk", choices=CHURN_RISKS, label="Churn risk of the latest run"
    )

    class Meta:
        model = Customer
        fields = ["q", "type", "status", "salesperson", "route"]

    def search(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        tenant = current_tenant()
        return selectors.customer_search(queryset, value, region=tenant.phone_region)

    def filter_segment(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        return selectors.customer_filter_segment(queryset, value.strip())

    def filter_vip(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        return selectors.customer_filter_vip(queryset, value == "true")


class CustomerListView(TenantAPIView, GenericAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}
    serializer_class = CustomerOutput
    pagination_class = DefaultCursorPagination
    filter_backends = [StrictDjangoFilterBackend, OrderingFilter]
    filterset_class = CustomerFilter
    ordering_fields = ["created_at", "updated_at", "last_name", "legal_name", "email"]
    ordering = ["-created_at"]

    def get_queryset(self) -> QuerySet[Customer]:
        return selectors.customer_list()

    @extend_schema(responses=CustomerOutput(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(CustomerOutput(page, many=True).data)

    @extend_schema(request=CustomerInput, responses={201: CustomerOutput})
    def post(self, request: Request) -> Response:
        data = CustomerInput(data=request.data)
        data.is_valid(raise_exception=True)
        customer = services.customer_create(
            tenant=tenant_cached(self.tenant_slug),
            data=dict(data.validated_data),
            actor=actor_of(self),
        )
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailView(TenantAPIView):
    required_scopes = {"GET": READ, "PATCH": WRITE, "DELETE": WRITE}

    @extend_schema(responses=CustomerOutput)
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(CustomerOutput(selectors.customer_get(customer_id)).data)

    @extend_schema(request=CustomerInput(partial=True), responses=CustomerOutput)
    def patch(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        data = CustomerInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        customer = services.customer_update(
            customer=customer, data=dict(data.validated_data), actor=actor_of(self)
        )
        return Response(CustomerOutput(customer).data)

    @extend_schema(responses={204: None}, description="GDPR erasure: personal data anonymised, records kept.")
    def delete(self, request: Request, customer_id: str) -> Response:
        services.customer_erase(customer=selectors.customer_get(customer_id), actor=actor_of(self))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerLookupView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        parameters=[
            OpenApiParameter("phone", str),
            OpenApiParameter("email", str),
            OpenApiParameter("document", str),
            OpenApiParameter("card", str),
            OpenApiParameter("external_id", str, description="The customer's id in the business's CRM."),
        ],
        responses=CustomerOutput,
        description="Point-of-sale lookup by exactly one identifier.",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        refuse_unknown_query_params(params, LOOKUP_PARAMS)
        customer = selectors.customer_find(
            tenant=tenant_cached(self.tenant_slug),
            phone=params.get("phone"),
            email=params.get("email"),
            document=params.get("document"),
            card=params.get("card"),
            external_id=params.get("external_id"),
        )
        return Response(CustomerOutput(customer).data)


LOOKUP_PARAMS = ("phone", "email", "document", "card", "external_id")


class PhoneCandidateOutput(serializers.Serializer):
    id = serializers.UUIDField(source="customer_id")
    display_name = serializers.CharField(
        help_text="A person's first name and last initial; a business's name."
    )
    phone = serializers.CharField(help_text="Masked: the country code and the last four digits.")


class PhoneCandidatesOutput(serializers.Serializer):
    candidates = PhoneCandidateOutput(many=True)
    more = serializers.BooleanField(help_text="More customers match: ask for more digits.")


class PhoneCandidatesView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "digits",
                {"type": "string", "pattern": r"^[0-9]{4,15}$"},
                required=True,
                description="The last digits of the phone (4 to 15).",
            )
        ],
        responses=PhoneCandidatesOutput,
        description=(
            "The cashier's lookup by the last digits of a phone: at most "
            f"{selectors.PHONE_SUFFIX_MAX_CANDIDATES} masked candidates to confirm with the person "
            "(`more` when others match too)."
        ),
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_query_params(request.query_params, ["digits"])
        found = selectors.customer_phone_candidates(digits=request.query_params.get("digits", ""))
        return Response(PhoneCandidatesOutput(found).data)


# --- CRM sync: the upsert keyed by the CRM's id, and the change feed ------------------------------------------
class CustomerUpsertInput(CustomerInput):
    """The CRM's representation of a customer; the path names its external_id. Fields left out keep their values."""

    type = serializers.ChoiceField(choices=CustomerType.choices, required=False)
    external_id = None  # type: ignore[assignment]


EXTERNAL_ID_PARAM = OpenApiParameter(
    "external_id",
    {"type": "string", "pattern": EXTERNAL_ID_PATTERN},
    OpenApiParameter.PATH,
    description="The customer's id in the business's CRM.",
)


class CustomerByExternalIdView(TenantAPIView):
    required_scopes = {"GET": READ, "PUT": WRITE}

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAM],
        responses=CustomerOutput,
        description="The customer with this id in the business's CRM.",
    )
    def get(self, request: Request, external_id: str) -> Response:
        refuse_unknown_query_params(request.query_params, [])
        customer = selectors.customer_find(tenant=tenant_cached(self.tenant_slug), external_id=external_id)
        return Response(CustomerOutput(customer).data)

    @extend_schema(
        parameters=[EXTERNAL_ID_PARAM],
        request=CustomerUpsertInput,
        responses={201: CustomerOutput, 200: CustomerOutput},
        description=(
            "The CRM's idempotent write: creates the customer with this external_id (201) or updates it (200); "
            "fields left out keep their values; a repeat changes nothing. Another customer with the email, phone "
            "or document: 409 `duplicate_customer` with `details.field` and `details.customer_id`."
        ),
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = CustomerUpsertInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.customer_upsert_by_external_id(
            tenant=tenant_cached(self.tenant_slug),
            external_id=external_id,
            data=dict(data.validated_data),
            actor=actor_of(self),
        )
        if not result.created:
            return Response(CustomerOutput(result.customer).data)
        headers = {"Location": f"/api/v1/customers/{result.customer.id}/"}
        return Response(CustomerOutput(result.customer).data, status=status.HTTP_201_CREATED, headers=headers)


SYNC_ACTIONS = ["created", "updated", "blocked", "unblocked", "erased"]


class SyncChangeOutput(serializers.Serializer):
    cursor = serializers.SerializerMethodField(help_text="The feed position of this change.")
    action = serializers.ChoiceField(choices=SYNC_ACTIONS)
    changed_fields = serializers.ListField(child=serializers.CharField())
    occurred_at = serializers.DateTimeField()
    customer = CustomerOutput(help_text="The customer as it is now (erased customers anonymised).")

    def get_cursor(self, change: Any) -> str:
        return str(selectors.FeedPosition(change.transaction_id, change.id))


class SyncChangesOutput(serializers.Serializer):
    changes = SyncChangeOutput(many=True)
    next_cursor = serializers.CharField(help_text="Pass as `since` for the next poll.")
    has_more = serializers.BooleanField()


class CustomerSyncChangesView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since",
                {"type": "string", "pattern": selectors.FEED_CURSOR_PATTERN},
                description="The `next_cursor` of the previous poll; absent: from the beginning.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": selectors.FEED_MAX_LIMIT, "default": 100},
            ),
        ],
        responses=SyncChangesOutput,
        description=(
            "The change feed a CRM polls: every write of a customer (created, updated, blocked, unblocked, "
            "erased) after `since`, in the order of the writing transactions, only once those transactions have "
            "ended, so that a poller's cursor never passes over a change that commits later."
        ),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        refuse_unknown_query_params(params, ["since", "limit"])
        since = selectors.FeedPosition.parse(params.get("since"))
        try:
            limit = serializers.IntegerField(min_value=1, max_value=selectors.FEED_MAX_LIMIT).run_validation(
                params.get("limit", "100")
            )
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"limit": exc.detail}) from exc
        page = selectors.customer_changes_since(since=since, limit=limit)
        return Response(SyncChangesOutput(page).data)


# --- Addresses ------------------------------------------------------------------------------------------------
class AddressSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=AddressKind.choices)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", max_length=2)

    class Meta:
        model = Address
        fields = [
            "id",
            "kind",
            "is_default",
            "label",
            "line1",
            "line2",
            "city",
            "region",
            "postal_code",
            "country",
            "delivery_notes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_country(self, value: str) -> str:
        return value.upper()


class AddressListView(TenantAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(responses=AddressSerializer(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        return Response(AddressSerializer(customer.addresses.all(), many=True).data)

    @extend_schema(request=AddressSerializer, responses={201: AddressSerializer})
    def post(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        data = AddressSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        address = services.address_create(
            customer=customer, data=dict(data.validated_data), actor=actor_of(self)
        )
        return Response(AddressSerializer(address).data, status=status.HTTP_201_CREATED)


class AddressDetailView(TenantAPIView):
    required_scopes = {"GET": READ, "PATCH": WRITE, "DELETE": WRITE}

    @extend_schema(responses=AddressSerializer)
    def get(self, request: Request, customer_id: str, address_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        return Response(
            AddressSerializer(services.address_get(customer=customer, address_id=address_id)).data
        )

    @extend_schema(request=AddressSerializer(partial=True), responses=AddressSerializer)
    def patch(self, request: Request, customer_id: str, address_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        address = services.address_get(customer=customer, address_id=address_id)
        data = AddressSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        address = services.address_update(
            address=address, data=dict(data.validated_data), actor=actor_of(self)
        )
        return Response(AddressSerializer(address).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, customer_id: str, address_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        services.address_delete(
            address=services.address_get(customer=customer, address_id=address_id), actor=actor_of(self)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Preferences ----------------------------------------------------------------------------------------------
class ConsentSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = ChannelConsent
        fields = ["channel", "consented", "changed_at", "source"]


class PreferencesOutput(serializers.Serializer):
    categories = serializers.ListField(child=serializers.CharField())
    restrictions = serializers.ListField(child=serializers.CharField())
    language = serializers.CharField()
    consents = ConsentSerializer(many=True)


class PreferencesInput(StrictFieldsMixin, serializers.Serializer):
    categories = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )
    restrictions = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=100
    )
    language = serializers.CharField(max_length=16, required=False, allow_blank=True)
    consents = serializers.DictField(child=serializers.BooleanField(), required=False)
    consent_source = serializers.CharField(max_length=64, required=False, allow_blank=True, default="api")

    def validate_consents(self, value: dict[str, bool]) -> dict[str, bool]:
        unknown = set(value) - set(Channel.values)
        if unknown:
            raise serializers.ValidationError(
                f"Unknown channels: {', '.join(sorted(unknown))}; expected {', '.join(Channel.values)}",
                code="invalid_channel",
            )
        return value


def _preferences_body(customer: Customer) -> dict[str, Any]:
    prefs = CustomerPreferences.objects.filter(customer=customer).first()
    return PreferencesOutput(
        {
            "categories": prefs.categories if prefs else [],
            "restrictions": prefs.restrictions if prefs else [],
            "language": prefs.language if prefs else "",
            "consents": ChannelConsent.objects.filter(customer=customer).order_by("channel"),
        }
    ).data


class PreferencesView(TenantAPIView):
    required_scopes = {"GET": READ, "PATCH": WRITE, "PUT": WRITE}

    @extend_schema(responses=PreferencesOutput)
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(_preferences_body(selectors.customer_get(customer_id)))

    @extend_schema(request=PreferencesInput, responses=PreferencesOutput)
    def patch(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        data = PreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        services.preferences_update(
            customer=customer,
            actor=actor_of(self),
            categories=values.get("categories"),
            restrictions=values.get("restrictions"),
            language=values.get("language"),
            consents=values.get("consents"),
            consent_source=values.get("consent_source", "api"),
        )
        return Response(_preferences_body(customer))

    put = patch


class FavouriteOrderSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    items = serializers.ListField(child=serializers.DictField(), max_length=200)

    class Meta:
        model = FavouriteOrder
        fields = ["id", "name", "items", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            if not isinstance(item.get("sku"), str) or not item["sku"]:
                raise serializers.ValidationError("Every item needs a sku.", code="invalid_item")
            qty = item.get("quantity", 1)
            if not isinstance(qty, int | float) or isinstance(qty, bool) or qty <= 0:
                raise serializers.ValidationError("quantity must be a positive number.", code="invalid_item")
        return items


class FavouriteOrderListView(TenantAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(responses=FavouriteOrderSerializer(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        return Response(FavouriteOrderSerializer(customer.favourite_orders.order_by("name"), many=True).data)

    @extend_schema(request=FavouriteOrderSerializer, responses={201: FavouriteOrderSerializer})
    def post(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        data = FavouriteOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        favourite = services.favourite_order_create(
            customer=customer,
            name=data.validated_data["name"],
            items=data.validated_data["items"],
            actor=actor_of(self),
        )
        return Response(FavouriteOrderSerializer(favourite).data, status=status.HTTP_201_CREATED)


class FavouriteOrderDetailView(TenantAPIView):
    required_scopes = {"DELETE": WRITE}

    @extend_schema(responses={204: None})
    def delete(self, request: Request, customer_id: str, favourite_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        services.favourite_order_delete(customer=customer, favourite_id=favourite_id, actor=actor_of(self))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerChange
        fields = ["action", "changed_fields", "actor", "created_at"]


class CustomerChangesView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=CustomerChangeSerializer(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        customer = selectors.customer_get(customer_id)
        return Response(CustomerChangeSerializer(customer.changes.all()[:200], many=True).data)
