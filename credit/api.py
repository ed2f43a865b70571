"""REST views of commercial credit: validate, call a service or selector, serialize. Nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import (
    AMOUNT_OR_ZERO_SCHEMA,
    AMOUNT_SCHEMA,
    IDEMPOTENCY_KEY,
    DefaultCursorPagination,
    TenantAPIView,
    actor_of,
    idempotency_key_from,
    replayable_response,
)
from core.api import StrictInput as Input
from core.errors import InvalidAmount
from core.money import parse_amount
from credit import selectors, services
from credit.errors import CreditLineNotFound
from credit.models import (
    CreditCharge,
    CreditChargeStatus,
    CreditHold,
    CreditHoldStatus,
    CreditLine,
    CreditLineChange,
    CreditLineStatus,
    CreditPayment,
    VolumeDiscountBracket,
)
from customers.models import Customer
from customers.selectors import customer_get

READ = ["credit:read"]
WRITE = ["credit:write"]
APPROVE = ["credit:approve"]


class Money(serializers.DecimalField):
    """Money out: a decimal string with two decimals (no digit cap: tenant totals add up many lines)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=None, decimal_places=2, **kwargs)


@extend_schema_field(AMOUNT_SCHEMA)
class MoneyInput(serializers.Field):
    """Money in: a decimal string, parsed at the door by `parse_amount`, so every bad amount (blank, negative,
    too long, a float) is `invalid_amount` as at every other door."""

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any) -> None:
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_amount(data, field=self.field_name or "amount", allow_zero=self.allow_zero)
        except InvalidAmount as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from exc

    def to_representation(self, value: Any) -> str:
        return str(value)


@extend_schema_field(AMOUNT_OR_ZERO_SCHEMA)
class MoneyOrZeroInput(MoneyInput):
    """Money in that may be zero (a minimum amount)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_zero=True, **kwargs)


def status_param(request: Request, choices: list[str]) -> str | None:
    """The optional `?status=` filter of a list, one of `choices`."""
    value = request.query_params.get("status") or None
    if value and value not in choices:
        raise serializers.ValidationError({"status": [f"Expected one of {', '.join(choices)}"]})
    return value


def validated(input_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    data = input_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class _CustomerListView(TenantAPIView, GenericAPIView):
    """A cursor-paginated list of one of the customer's documents, filtered by `?status=`."""

    required_scopes = {"GET": READ}
    pagination_class = DefaultCursorPagination
    filter_backends: list[Any] = []
    statuses: list[str] = []

    def documents(self, customer: Customer, status: str | None) -> QuerySet[Any]:
        raise NotImplementedError

    def list_response(self, request: Request, customer_id: str) -> Response:
        qs = self.documents(customer_get(customer_id), status_param(request, self.statuses))
        serializer = self.get_serializer_class()
        return self.get_paginated_response(serializer(self.paginate_queryset(qs), many=True).data)


class _IdempotentWriteView(TenantAPIView):
    """A write that changes exposure: needs an Idempotency-Key; a replay answers with the first status code (201
    when the first call created something, 200 when it found it) and `Idempotent-Replayed: true`."""

    required_scopes = {"POST": WRITE}

    def write(
        self,
        request: Request,
        customer_id: str,
        input_class: type[serializers.Serializer] | None,
        call: Callable[..., Any],
        output_class: type[serializers.Serializer],
        *,
        creates: bool = True,
    ) -> Response:
        key = idempotency_key_from(request)
        customer = customer_get(customer_id)
        values = validated(input_class, request) if input_class is not None else {}
        result = call(customer=customer, idempotency_key=key, actor=actor_of(self), **values)
        # A replay answers with the first answer's status: 201 when that one created something, else 200.
        created = creates and getattr(result, "created", False)
        return replayable_response(
            output_class(result).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            replayed=bool(getattr(result, "replayed", False)),
        )


# --- Lines ------------------------------------------------------------------------------------------------------
class CreditLineChangeOutput(serializers.ModelSerializer):
    class Meta:
        model = CreditLineChange
        fields = [
            "action",
            "from_status",
            "to_status",
            "from_limit",
            "to_limit",
            "from_terms_days",
            "to_terms_days",
            "actor",
            "reason",
            "created_at",
        ]


class CreditLineOutput(serializers.ModelSerializer):
    customer_id = serializers.UUIDField(read_only=True)
    customer_name = serializers.CharField(source="customer.display_name", read_only=True)
    credit_limit = Money(source="approved_limit", read_only=True)
    used = Money(source="exposure", read_only=True)
    available = Money(read_only=True)

    class Meta:
        model = CreditLine
        fields = [
            "id",
            "customer_id",
            "customer_name",
            "status",
            "currency",
            "requested_limit",
            "credit_limit",
            "used",
            "available",
            "payment_terms_days",
            "requested_by",
            "request_reason",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_comment",
            "status_reason",
            "status_changed_at",
            "created_at",
            "updated_at",
        ]


class CreditLineDetailOutput(CreditLineOutput):
    history = CreditLineChangeOutput(source="changes", many=True, read_only=True)

    class Meta(CreditLineOutput.Meta):
        fields = [*CreditLineOutput.Meta.fields, "history"]


class CreditLineRequestInput(Input):
    customer_id = serializers.UUIDField()
    requested_limit = MoneyInput()
    payment_terms_days = serializers.IntegerField(min_value=0, max_value=services.MAX_TERMS_DAYS)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CreditLineApproveInput(Input):
    credit_limit = MoneyInput(required=False, help_text="Defaults to the requested limit.")
    payment_terms_days = serializers.IntegerField(
        min_value=0, max_value=services.MAX_TERMS_DAYS, required=False
    )
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ReasonInput(Input):
    reason = serializers.CharField(max_length=2000)


class OptionalReasonInput(Input):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CreditLimitInput(Input):
    credit_limit = MoneyInput()
    payment_terms_days = serializers.IntegerField(
        min_value=0, max_value=services.MAX_TERMS_DAYS, required=False
    )
    reason = serializers.CharField(max_length=2000)


class CreditLineListView(TenantAPIView, GenericAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}
    serializer_class = CreditLineOutput
    pagination_class = DefaultCursorPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[CreditLine]:
        line_status = status_param(self.request, CreditLineStatus.values)
        customer_id = self.request.query_params.get("customer_id") or None
        customer = customer_get(customer_id) if customer_id else None
        return selectors.credit_line_list(status=line_status, customer_id=customer.pk if customer else None)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=CreditLineStatus.values),
            OpenApiParameter("customer_id", str),
        ],
        responses=CreditLineOutput(many=True),
        description="Credit lines of the business; `?status=requested` is the approval queue.",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CreditLineOutput(page, many=True).data)

    @extend_schema(request=CreditLineRequestInput, responses={201: CreditLineOutput})
    def post(self, request: Request) -> Response:
        values = validated(CreditLineRequestInput, request)
        line = services.credit_line_request(
            customer=customer_get(values["customer_id"]),
            requested_limit=values["requested_limit"],
            payment_terms_days=values["payment_terms_days"],
            requested_by=actor_of(self),
            reason=values["reason"],
        )
        return Response(CreditLineOutput(line).data, status=status.HTTP_201_CREATED)


class CreditLineDetailView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=CreditLineDetailOutput)
    def get(self, request: Request, line_id: str) -> Response:
        return Response(CreditLineDetailOutput(selectors.credit_line_get(line_id)).data)


class _LineActionView(TenantAPIView):
    required_scopes = {"POST": APPROVE}
    input_class: type[serializers.Serializer] = ReasonInput

    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        raise NotImplementedError

    def post(self, request: Request, line_id: str) -> Response:
        line = selectors.credit_line_get(line_id)
        line = self.act(line, validated(self.input_class, request))
        return Response(CreditLineDetailOutput(selectors.credit_line_get(line.pk)).data)


@extend_schema(request=CreditLineApproveInput, responses=CreditLineDetailOutput)
class CreditLineApproveView(_LineActionView):
    """Approve a request (scope credit:approve); nobody approves their own request."""

    input_class = CreditLineApproveInput

    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_approve(
            line=line,
            decided_by=actor_of(self),
            approved_limit=values.get("credit_limit"),
            payment_terms_days=values.get("payment_terms_days"),
            comment=values["comment"],
        )


@extend_schema(request=ReasonInput, responses=CreditLineDetailOutput)
class CreditLineRejectView(_LineActionView):
    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_reject(line=line, decided_by=actor_of(self), reason=values["reason"])


@extend_schema(request=ReasonInput, responses=CreditLineDetailOutput)
class CreditLineSuspendView(_LineActionView):
    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_suspend(line=line, actor=actor_of(self), reason=values["reason"])


@extend_schema(request=OptionalReasonInput, responses=CreditLineDetailOutput)
class CreditLineReinstateView(_LineActionView):
    input_class = OptionalReasonInput

    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_reinstate(line=line, actor=actor_of(self), reason=values["reason"])


@extend_schema(request=ReasonInput, responses=CreditLineDetailOutput)
class CreditLineCloseView(_LineActionView):
    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_close(line=line, actor=actor_of(self), reason=values["reason"])


@extend_schema(request=CreditLimitInput, responses=CreditLineDetailOutput)
class CreditLineLimitView(_LineActionView):
    input_class = CreditLimitInput

    def act(self, line: CreditLine, values: dict[str, Any]) -> CreditLine:
        return services.credit_line_limit_change(
            line=line,
            actor=actor_of(self),
            approved_limit=values["credit_limit"],
            payment_terms_days=values.get("payment_terms_days"),
            reason=values["reason"],
        )


# --- A customer's credit -------------------------------------------------------------------------------------------
class VolumeDiscountOutput(serializers.ModelSerializer):
    min_amount = Money()
    discount_percent = serializers.DecimalField(max_digits=5, decimal_places=2)

    class Meta:
        model = VolumeDiscountBracket
        fields = ["category", "min_amount", "discount_percent"]


class CreditSummaryOutput(serializers.Serializer):
    credit_line_id = serializers.UUIDField()
    status = serializers.CharField()
    currency = serializers.CharField()
    requested_limit = Money()
    credit_limit = Money()
    used = Money()
    available = Money()
    charges_outstanding = Money()
    holds_active = Money()
    overdue_amount = Money()
    unapplied_credit = Money()
    payment_terms_days = serializers.IntegerField()
    volume_discounts = VolumeDiscountOutput(many=True)


class CustomerCreditView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        responses=CreditSummaryOutput,
        description="The customer's credit line: limit, used (unpaid charges + active holds), available, terms, "
        "and the volume discount brackets the Pricing service applies.",
    )
    def get(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        summary = selectors.credit_summary(customer)
        if summary is None:
            raise CreditLineNotFound(customer_id=str(customer.pk))
        body = {**asdict(summary), "volume_discounts": selectors.commercial_terms(customer).volume_discounts}
        return Response(CreditSummaryOutput(body).data)


class CommercialTermsOutput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    currency = serializers.CharField()
    credit_status = serializers.CharField()
    payment_terms_days = serializers.IntegerField(allow_null=True)
    volume_discounts = VolumeDiscountOutput(many=True)


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^(100(\.00?)?|[1-9][0-9]?(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
        "example": "2.50",
    }
)
class PercentInput(MoneyInput):
    """A discount percent: above zero, at most 100, at most two decimals (the service checks the bound)."""


class VolumeDiscountInput(Input):
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    min_amount = MoneyOrZeroInput()
    discount_percent = PercentInput()


class CommercialTermsInput(Input):
    volume_discounts = serializers.ListField(child=VolumeDiscountInput(), max_length=100)


class CommercialTermsView(TenantAPIView):
    required_scopes = {"GET": READ, "PUT": APPROVE}

    @extend_schema(responses=CommercialTermsOutput, description="Payment terms and volume discount brackets.")
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(CommercialTermsOutput(selectors.commercial_terms(customer_get(customer_id))).data)

    @extend_schema(request=CommercialTermsInput, responses=CommercialTermsOutput)
    def put(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        values = validated(CommercialTermsInput, request)
        services.volume_discounts_replace(
            customer=customer, brackets=[dict(b) for b in values["volume_discounts"]], actor=actor_of(self)
        )
        return Response(CommercialTermsOutput(selectors.commercial_terms(customer)).data)


class CreditCheckOutput(serializers.Serializer):
    available = serializers.BooleanField()
    credit_limit = Money()
    used = Money()
    available_amount = Money()
    currency = serializers.CharField()
    status = serializers.CharField()
    payment_terms_days = serializers.IntegerField()
    reason = serializers.CharField()


class CreditCheckView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        parameters=[OpenApiParameter("amount", AMOUNT_SCHEMA, required=True)],
        responses=CreditCheckOutput,
        description="Would this amount fit now? Changes nothing; a later use is checked again.",
    )
    def get(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(customer_id)
        amount = parse_amount(request.query_params.get("amount", ""))
        result = services.credit_check(customer=customer, amount=amount)
        return Response(CreditCheckOutput(result).data)


class UsageInput(Input):
    amount = MoneyInput()
    order_id = serializers.CharField(max_length=100)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True, default="")


class UsageOutput(serializers.Serializer):
    usage_id = serializers.UUIDField()
    order_id = serializers.CharField()
    amount = Money()
    available_amount = Money()
    due_date = serializers.DateField()
    currency = serializers.CharField()
    replayed = serializers.BooleanField()


class CreditUseView(_IdempotentWriteView):
    @extend_schema(
        request=UsageInput,
        responses={201: UsageOutput, 200: UsageOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Charge an order to credit (converting its hold). Idempotent by order id and key; "
        "409 credit_limit_exceeded / credit_line_not_active / credit_on_hold.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        return self.write(request, customer_id, UsageInput, services.credit_use, UsageOutput)


class ChargeOutput(serializers.ModelSerializer):
    usage_id = serializers.UUIDField(source="id")

    class Meta:
        model = CreditCharge
        fields = [
            "usage_id",
            "order_id",
            "amount",
            "outstanding",
            "currency",
            "charged_on",
            "due_date",
            "status",
            "paid_at",
            "cancelled_at",
            "cancel_reason",
            "created_at",
        ]


class CreditChargeListView(_CustomerListView):
    serializer_class = ChargeOutput
    statuses = CreditChargeStatus.values

    def documents(self, customer: Customer, status: str | None) -> QuerySet[CreditCharge]:
        return selectors.charge_list(customer=customer, status=status)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=CreditChargeStatus.values)],
        responses=ChargeOutput(many=True),
    )
    def get(self, request: Request, customer_id: str) -> Response:
        return self.list_response(request, customer_id)


class CreditChargeCancelView(_IdempotentWriteView):
    @extend_schema(
        request=ReasonInput,
        responses=ChargeOutput,
        parameters=[IDEMPOTENCY_KEY],
        description="Release an unpaid charge (order cancelled, full credit note).",
    )
    def post(self, request: Request, customer_id: str, usage_id: str) -> Response:
        def cancel(**values: Any) -> CreditCharge:
            return services.credit_charge_cancel(charge_id=usage_id, **values)

        return self.write(request, customer_id, ReasonInput, cancel, ChargeOutput, creates=False)


class HoldInput(Input):
    amount = MoneyInput()
    order_id = serializers.CharField(max_length=100)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class HoldResultOutput(serializers.Serializer):
    hold_id = serializers.UUIDField()
    order_id = serializers.CharField()
    amount = Money()
    currency = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    available_amount = Money()
    replayed = serializers.BooleanField()


class HoldOutput(serializers.ModelSerializer):
    hold_id = serializers.UUIDField(source="id")

    class Meta:
        model = CreditHold
        fields = [
            "hold_id",
            "order_id",
            "amount",
            "currency",
            "status",
            "expires_at",
            "created_at",
            "ended_at",
        ]


class CreditHoldListView(_CustomerListView, _IdempotentWriteView):
    required_scopes = {"GET": READ, "POST": WRITE}
    serializer_class = HoldOutput
    statuses = CreditHoldStatus.values

    def documents(self, customer: Customer, status: str | None) -> QuerySet[CreditHold]:
        return selectors.hold_list(customer=customer, status=status)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=CreditHoldStatus.values)],
        responses=HoldOutput(many=True),
    )
    def get(self, request: Request, customer_id: str) -> Response:
        return self.list_response(request, customer_id)

    @extend_schema(
        request=HoldInput,
        responses={201: HoldResultOutput, 200: HoldResultOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Reserve credit for an order during checkout, until expires_at (default: one hour).",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        return self.write(request, customer_id, HoldInput, services.credit_hold_place, HoldResultOutput)


class CreditHoldReleaseView(_IdempotentWriteView):
    @extend_schema(request=None, responses=HoldResultOutput, parameters=[IDEMPOTENCY_KEY])
    def post(self, request: Request, customer_id: str, hold_id: str) -> Response:
        def release(**values: Any) -> services.HoldResult:
            return services.credit_hold_release(hold_id=hold_id, **values)

        return self.write(request, customer_id, None, release, HoldResultOutput, creates=False)


class PaymentInput(Input):
    payment_id = serializers.CharField(max_length=100)
    amount = MoneyInput()
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True, default="")
    order_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    received_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class AllocationOutput(serializers.Serializer):
    usage_id = serializers.UUIDField()
    order_id = serializers.CharField()
    amount = Money()


class PaymentResultOutput(serializers.Serializer):
    payment_id = serializers.CharField()
    amount = Money()
    applied_amount = Money()
    unapplied_amount = Money()
    allocations = AllocationOutput(many=True)
    available_amount = Money()
    currency = serializers.CharField()
    line_status = serializers.CharField()
    replayed = serializers.BooleanField()


class PaymentOutput(serializers.ModelSerializer):
    allocations = serializers.SerializerMethodField()

    class Meta:
        model = CreditPayment
        fields = [
            "payment_id",
            "amount",
            "unapplied_amount",
            "currency",
            "order_id",
            "received_at",
            "allocations",
        ]

    def get_allocations(self, payment: CreditPayment) -> list[dict[str, Any]]:
        return [
            {"usage_id": str(a.charge_id), "order_id": a.charge.order_id, "amount": str(a.amount)}
            for a in payment.allocations.all()
        ]


class CreditPaymentListView(_CustomerListView, _IdempotentWriteView):
    required_scopes = {"GET": READ, "POST": WRITE}
    serializer_class = PaymentOutput

    def documents(self, customer: Customer, status: str | None) -> QuerySet[CreditPayment]:
        return selectors.payment_list(customer=customer)

    @extend_schema(responses=PaymentOutput(many=True))
    def get(self, request: Request, customer_id: str) -> Response:
        return self.list_response(request, customer_id)

    @extend_schema(
        request=PaymentInput,
        responses={201: PaymentResultOutput, 200: PaymentResultOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Record a payment: to the order's charge when given, else oldest due first; the excess stays "
        "as unapplied credit. Idempotent by payment_id.",
    )
    def post(self, request: Request, customer_id: str) -> Response:
        return self.write(request, customer_id, PaymentInput, services.payment_record, PaymentResultOutput)


# --- Reports ---------------------------------------------------------------------------------------------------------
class AgingBucketsOutput(serializers.Serializer):
    current = Money()
    days_1_30 = Money(source="1_30")
    days_31_60 = Money(source="31_60")
    days_61_90 = Money(source="61_90")
    over_90 = Money()


class AgingOutput(serializers.Serializer):
    as_of = serializers.DateField()
    currency = serializers.CharField()
    total = Money()
    buckets = AgingBucketsOutput()


class CustomerAgingOutput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    customer_name = serializers.CharField()
    aging = AgingOutput()


class TenantAgingOutput(AgingOutput):
    customers = CustomerAgingOutput(many=True)


class CustomerAgingView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=AgingOutput, description="Unpaid charges by days past due.")
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(AgingOutput(selectors.credit_aging(customer=customer_get(customer_id))).data)


class PaymentBehaviourOutput(serializers.Serializer):
    charges_paid = serializers.IntegerField()
    paid_on_time = serializers.IntegerField()
    paid_late = serializers.IntegerField()
    average_days_late = serializers.DecimalField(max_digits=8, decimal_places=1)
    max_days_late = serializers.IntegerField()
    unpaid_overdue = serializers.IntegerField()
    oldest_overdue_days = serializers.IntegerField()


class PaymentBehaviourView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=PaymentBehaviourOutput, description="Days late on the customer's past charges.")
    def get(self, request: Request, customer_id: str) -> Response:
        return Response(PaymentBehaviourOutput(selectors.payment_behaviour(customer_get(customer_id))).data)


class TenantAgingView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=TenantAgingOutput, description="The business's aging, total and per customer.")
    def get(self, request: Request) -> Response:
        report = selectors.credit_aging()
        body = {**asdict(report), "customers": selectors.credit_aging_by_customer(today=report.as_of)}
        return Response(TenantAgingOutput(body).data)


class CreditKpisOutput(serializers.Serializer):
    limit_total = Money()
    used_total = Money()
    available_total = Money()
    lines_active = serializers.IntegerField()
    lines_on_hold = serializers.IntegerField()
    lines_pending = serializers.IntegerField()


class CreditKpisView(TenantAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(responses=CreditKpisOutput, description="Credit used vs available across the business.")
    def get(self, request: Request) -> Response:
        return Response(CreditKpisOutput(selectors.credit_kpis()).data)
