"""The credit managers' screens: the queue of pending requests, the approval page, lines, documents and aging.

Nothing here changes a balance or a status by itself: every button calls a service, and a refused one (a
`DomainError`) becomes an error message on the page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.admin import TenantScopedAdmin
from core.admin_display import ReadOnlyAdminMixin, ReadOnlyInline, money_field
from core.api import actor_of
from core.backoffice import displayed_for
from core.errors import DomainError
from core.models import Tenant
from core.tenancy import current_tenant_slug, tenant_cached, tenant_context
from credit import selectors, services
from credit.models import (
    CreditCharge,
    CreditHold,
    CreditLedgerEntry,
    CreditLine,
    CreditLineChange,
    CreditLineStatus,
    CreditPayment,
    CreditRequest,
    VolumeDiscountBracket,
)
from customers.models import Customer, CustomerStatus, CustomerType

APPROVE_PERMISSION = "credit.approve_creditline"


def can_approve(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.has_perm(APPROVE_PERMISSION))


class _ServiceRefusalAsMessage(admin.ModelAdmin):
    """The add/change form checks first, but the service has the last word (a concurrent request can change what it
    sees): its refusal rolls the save back and comes back as an error message on the form, never a server error."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class HistoryInline(ReadOnlyInline):
    model = CreditLineChange
    fields = ["created_at", "action", "from_status", "to_status", "from_limit", "to_limit", "actor", "reason"]
    readonly_fields = fields
    verbose_name_plural = "History"


class ChargeInline(ReadOnlyInline):
    model = CreditCharge
    fk_name = "line"
    fields = [
        "order_id",
        "amount",
        "outstanding",
        "charged_on",
        "due_date",
        "status",
        "paid_at",
    ]
    readonly_fields = fields
    ordering = ["-created_at"]


class HoldInline(ReadOnlyInline):
    model = CreditHold
    fields = ["order_id", "amount", "status", "expires_at", "created_at", "ended_at"]
    readonly_fields = fields
    ordering = ["-created_at"]


# --- Requests ------------------------------------------------------------------------------------------------------
class CreditLineRequestForm(forms.ModelForm):
    """Asking for a line in the admin: the staff user becomes its requester (and so can never approve it)."""

    # A search box, not a drop-down of every business customer.
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(),
        widget=AutocompleteSelect(CreditLine._meta.get_field("customer"), admin.site),
    )
    requested_limit = forms.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    payment_terms_days = forms.IntegerField(min_value=0, max_value=services.MAX_TERMS_DAYS, initial=30)
    request_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Reason")

    class Meta:
        model = CreditLine
        fields = ["customer", "requested_limit", "payment_terms_days", "request_reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(  # type: ignore[attr-defined]
            type=CustomerType.BUSINESS, status=CustomerStatus.ACTIVE
        ).order_by("trade_name", "legal_name")

    def clean_customer(self) -> Customer:
        customer: Customer = self.cleaned_data["customer"]
        open_line = selectors.credit_line_open(customer)
        if open_line is not None:
            raise forms.ValidationError(f"This customer already has a {open_line.get_status_display()} line.")
        return customer


@admin.register(CreditLine)
class CreditLineAdmin(_ServiceRefusalAsMessage, TenantScopedAdmin):
    list_display = [
        "customer",
        "status",
        "approved_limit",
        "exposure",
        "available_display",
        "payment_terms_days",
        "status_changed_at",
    ]  # who asked and who decided: on the line's page (the list fits 1366 px)
    list_filter = ["status"]
    search_fields = ["customer__legal_name", "customer__trade_name", "customer__document_number"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer"]
    inlines = [HistoryInline, ChargeInline, HoldInline]
    actions = ["suspend_selected", "reinstate_selected", "close_selected"]
    change_list_template = "admin/credit/creditline/change_list.html"
    readonly_fields = [
        "id",
        "customer",
        "status",
        "currency",
        "requested_limit",
        "approved_limit",
        "exposure",
        "excess_allowance",
        "available_display",
        "payment_terms_days",
        "requested_by",
        "request_reason",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_comment",
        "status_reason",
        "status_changed_at",
        "decision_link",
    ]
    available_display = money_field("available", ordering="exposure")

    @admin.display(description="decision")
    def decision_link(self, obj: CreditLine) -> str:
        if obj.status != CreditLineStatus.REQUESTED:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:credit_creditrequest_decide", args=[obj.pk]),
            _("Review and decide"),
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = CreditLineRequestForm
            kwargs["fields"] = CreditLineRequestForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        # The link to the decision page only for who may decide.
        fields = super().get_readonly_fields(request, obj)
        return [f for f in fields if f != "decision_link" or can_approve(request)]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": CreditLineRequestForm.Meta.fields})]
        return super().get_fieldsets(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else []

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a line changes only through the decision page, the actions and the services

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not can_approve(request):
            for name in ("suspend_selected", "reinstate_selected", "close_selected"):
                actions.pop(name, None)
        return actions

    def save_model(self, request: HttpRequest, obj: CreditLine, form: Any, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        line = services.credit_line_request(
            customer=data["customer"],
            requested_limit=data["requested_limit"],
            payment_terms_days=data["payment_terms_days"],
            requested_by=actor_of(request),
            reason=data.get("request_reason") or "",
        )
        obj.pk = line.pk
        obj.refresh_from_db()

    def _each(self, request: HttpRequest, queryset: Any, verb: str, call: Any) -> None:
        """Call the service for each selected line. The admin request is one transaction that keeps every line it
        touched locked until it ends, so lines are taken in primary-key order, the one order in which anything
        locks several lines at once: two bulk actions on overlapping selections can never deadlock."""
        done = 0
        for line in queryset.order_by("pk"):
            try:
                call(line)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{line.customer}: {exc.message}", level=messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} credit line(s).")

    @admin.action(description="Suspend selected lines")
    def suspend_selected(self, request: HttpRequest, queryset: Any) -> None:
        reason = f"Suspended in the admin by {request.user.get_username()}."
        self._each(
            request,
            queryset,
            "Suspended",
            lambda line: services.credit_line_suspend(line=line, actor=actor_of(request), reason=reason),
        )

    @admin.action(description="Reinstate selected suspended lines")
    def reinstate_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._each(
            request,
            queryset,
            "Reinstated",
            lambda line: services.credit_line_reinstate(line=line, actor=actor_of(request)),
        )

    @admin.action(description="Close selected lines (nothing owed or held)")
    def close_selected(self, request: HttpRequest, queryset: Any) -> None:
        reason = f"Closed in the admin by {request.user.get_username()}."
        self._each(
            request,
            queryset,
            "Closed",
            lambda line: services.credit_line_close(line=line, actor=actor_of(request), reason=reason),
        )

    # --- Aging report ---------------------------------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        custom = [
            path("aging/", self.admin_site.admin_view(self.aging_view), name="credit_creditline_aging"),
        ]
        return custom + super().get_urls()

    def aging_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenants: list[Tenant] = []
        if request.user.is_superuser:
            # Superusers see every tenant: pick one (amounts of different currencies never add up).
            tenants = list(Tenant.objects.order_by("name", "slug"))
            slug = request.GET.get("tenant") or (tenants[0].slug if tenants else None)
            if slug is None or not any(t.slug == slug for t in tenants):
                raise Http404("No such tenant")
        else:
            # Staff see their own tenant only; staff of no tenant see none (never one picked from the URL).
            slug = current_tenant_slug()
            if slug is None:
                raise PermissionDenied
        with tenant_context(slug):
            report = selectors.credit_aging()
            rows = selectors.credit_aging_by_customer(today=report.as_of)
            kpis = selectors.credit_kpis()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Credit aging"),
            "report": report,
            "rows": rows,
            "kpis": kpis,
            "tenant_slug": slug,
            "tenants": tenants,
            "bucket_labels": BUCKET_LABELS,
        }
        with displayed_for(tenant_cached(slug)):
            return TemplateResponse(request, "admin/credit/aging.html", context).render()


BUCKET_LABELS = {
    "current": gettext_lazy("Current"),
    "1_30": gettext_lazy("1-30 days"),
    "31_60": gettext_lazy("31-60 days"),
    "61_90": gettext_lazy("61-90 days"),
    "over_90": gettext_lazy("Over 90 days"),
}


# --- The queue and the approval page ---------------------------------------------------------------------------------
class ApproveForm(forms.Form):
    approved_limit = forms.DecimalField(
        label=gettext_lazy("Credit limit"), max_digits=14, decimal_places=2, min_value=Decimal("0.01")
    )
    payment_terms_days = forms.IntegerField(
        label=gettext_lazy("Payment terms (days)"), min_value=0, max_value=services.MAX_TERMS_DAYS
    )
    comment = forms.CharField(
        label=gettext_lazy("Comment"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )


class RejectForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 2}))


@admin.register(CreditRequest)
class CreditRequestAdmin(TenantScopedAdmin):
    """Pending requests, oldest first; each opens the approval page. Only credit managers see it."""

    list_display = [
        "customer",
        "requested_limit",
        "payment_terms_days",
        "requested_by",
        "requested_at",
        "review",
    ]
    list_display_links = None
    search_fields = ["customer__legal_name", "customer__trade_name", "customer__document_number"]
    list_select_related = ["customer"]
    ordering = ["requested_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(status=CreditLineStatus.REQUESTED)

    @admin.display(description="")
    def review(self, obj: CreditLine) -> str:
        return format_html(
            '<a class="button" href="{}">{}</a>',
            reverse("admin:credit_creditrequest_decide", args=[obj.pk]),
            _("Review"),
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_approve(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_approve(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<uuid:line_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="credit_creditrequest_decide",
            ),
        ]
        return custom + super().get_urls()

    def decide_view(self, request: HttpRequest, line_id: Any) -> HttpResponse:
        """What a credit manager needs to decide, and the Approve / Reject buttons (both call services)."""
        if not can_approve(request):
            raise PermissionDenied
        line = CreditLine.objects.select_related("customer").filter(pk=line_id).first()
        if line is None:
            raise Http404("No such credit line")
        approve_form = ApproveForm(
            initial={"approved_limit": line.requested_limit, "payment_terms_days": line.payment_terms_days}
        )
        reject_form = RejectForm()
        if request.method == "POST":
            action = request.POST.get("action")
            if action == "approve":
                approve_form = ApproveForm(request.POST)
                if approve_form.is_valid():
                    done = self._decide(
                        request,
                        line,
                        lambda: services.credit_line_approve(
                            line=line,
                            decided_by=actor_of(request),
                            approved_limit=approve_form.cleaned_data["approved_limit"],
                            payment_terms_days=approve_form.cleaned_data["payment_terms_days"],
                            comment=approve_form.cleaned_data["comment"],
                        ),
                        _("approved"),
                    )
                    if done:
                        return done
            elif action == "reject":
                reject_form = RejectForm(request.POST)
                if reject_form.is_valid():
                    done = self._decide(
                        request,
                        line,
                        lambda: services.credit_line_reject(
                            line=line, decided_by=actor_of(request), reason=reject_form.cleaned_data["reason"]
                        ),
                        _("rejected"),
                    )
                    if done:
                        return done
            line.refresh_from_db()
        customer = line.customer
        is_own_request = services.same_actor(line.requested_by, actor_of(request))
        is_pending = line.status == CreditLineStatus.REQUESTED
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Credit request of %(customer)s") % {"customer": customer},
            "line": line,
            "customer": customer,
            "summary": selectors.credit_summary(customer),
            "behaviour": selectors.payment_behaviour(customer),
            "aging": selectors.credit_aging(customer=customer),
            "bucket_labels": BUCKET_LABELS,
            "history": line.changes.all(),
            "previous_lines": CreditLine.objects.filter(customer=customer).exclude(pk=line.pk),
            "approve_form": approve_form,
            "reject_form": reject_form,
            "is_own_request": is_own_request,
            "is_pending": is_pending,
            # Approve / Reject are offered only to someone who may decide this request (the service checks again).
            "can_decide": is_pending and not is_own_request,
            "customer_url": reverse("admin:customers_customer_360", args=[customer.pk]),
        }
        with displayed_for(tenant_cached(line.tenant_id)):
            # Rendered here, in the tenant's locale and time zone.
            return TemplateResponse(request, "admin/credit/creditline/decide.html", context).render()

    def _decide(self, request: HttpRequest, line: CreditLine, call: Any, verb: str) -> HttpResponse | None:
        try:
            call()
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return None
        self.message_user(
            request,
            _("The credit line of %(customer)s was %(verb)s.") % {"customer": line.customer, "verb": verb},
            level=messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:credit_creditrequest_changelist"))


# --- Documents (read-only) ----------------------------------------------------------------------------------------------
@admin.register(CreditCharge)
class CreditChargeAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "order_id",
        "line",
        "amount",
        "outstanding",
        "due_date",
        "status",
        "paid_at",
    ]
    list_filter = ["status"]
    search_fields = ["order_id", "line__customer__legal_name", "line__customer__trade_name"]
    list_select_related = ["line__customer"]


@admin.register(CreditHold)
class CreditHoldAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["order_id", "line", "amount", "status", "expires_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["order_id"]
    list_select_related = ["line__customer"]


@admin.register(CreditPayment)
class CreditPaymentAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["payment_id", "line", "amount", "unapplied_amount", "received_at"]
    search_fields = ["payment_id", "order_id"]
    list_select_related = ["line__customer"]


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "created_at",
        "line",
        "kind",
        "amount",
        "exposure_after",
        "order_id",
        "actor",
    ]
    list_filter = ["kind"]
    search_fields = ["order_id"]
    list_select_related = ["line__customer"]


# --- Commercial terms ---------------------------------------------------------------------------------------------------
class VolumeDiscountBracketForm(forms.ModelForm):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(),
        widget=AutocompleteSelect(VolumeDiscountBracket._meta.get_field("customer"), admin.site),
    )

    class Meta:
        model = VolumeDiscountBracket
        fields = ["customer", "category", "min_amount", "discount_percent"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(  # type: ignore[attr-defined]
            type=CustomerType.BUSINESS
        ).exclude(status=CustomerStatus.ERASED)

    def clean(self) -> dict[str, Any]:
        """The service's own checks (range, normalised category, no clash), shown on the form."""
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            services.volume_discount_bracket_check(
                customer=cleaned["customer"],
                category=cleaned.get("category") or "",
                min_amount=cleaned["min_amount"],
                discount_percent=cleaned["discount_percent"],
                bracket=self.instance,
            )
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc
        return cleaned

    def validate_unique(self) -> None:
        pass  # checked in clean() with the normalised category; the service saves


@admin.register(VolumeDiscountBracket)
class VolumeDiscountBracketAdmin(_ServiceRefusalAsMessage, TenantScopedAdmin):
    form = VolumeDiscountBracketForm
    list_display = [
        "customer",
        "category",
        "min_amount",
        "discount_percent",
        "updated_by",
        "updated_at",
    ]
    autocomplete_fields = ["customer"]
    search_fields = ["customer__legal_name", "customer__trade_name", "category"]
    list_select_related = ["customer"]

    def save_model(self, request: HttpRequest, obj: VolumeDiscountBracket, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.volume_discount_bracket_save(
            customer=data["customer"],
            category=data.get("category") or "",
            min_amount=data["min_amount"],
            discount_percent=data["discount_percent"],
            actor=actor_of(request),
            bracket=obj if change else None,
        )
        obj.pk = saved.pk
        obj.refresh_from_db()
