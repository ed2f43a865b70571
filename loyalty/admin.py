"""Loyalty screens: program and tier configuration, accounts with their ledger and tier history (balances
read-only), a manual adjustment form and a tier override form, each guarded by its own permission."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.admin import TenantScopedAdmin
from core.admin_display import ReadOnlyAdminMixin, ReadOnlyInline, points_field
from core.api import actor_of
from core.errors import DomainError
from loyalty import services
from loyalty.models import (
    TIER_ORDER,
    LoyaltyAccount,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTransaction,
    StampReward,
    StampRule,
    TierChange,
    TierCode,
)

INLINE_LIMIT = 100


# --- Program and tiers ----------------------------------------------------------------------------------------
class ProgramForm(forms.ModelForm):
    class Meta:
        model = LoyaltyProgram
        fields = [*services.PROGRAM_FIELDS, "tenant"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        values = {name: cleaned.get(name, getattr(self.instance, name)) for name in services.PROGRAM_FIELDS}
        try:
            services.validate_program(values)
        except DomainError as exc:
            field = exc.details.get("field")
            if field in self.fields:
                self.add_error(field, exc.message)
            else:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


class TierFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        rows = [
            {**f.cleaned_data, "code": f.instance.code}
            for f in self.forms
            if getattr(f, "cleaned_data", None)
        ]
        try:
            services.validate_tiers(rows)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


class TierInline(admin.TabularInline):
    model = LoyaltyTier
    formset = TierFormSet
    fields = ["code", "name", "threshold", "earn_multiplier", "benefits"]
    readonly_fields = ["code"]
    extra = 0
    can_delete = False
    ordering = ["threshold"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(TenantScopedAdmin):
    form = ProgramForm
    list_display = ["name", "earn_rate", "redemption_points_per_unit", "pending_days", "expiry_months"]
    inlines = [TierInline]
    fieldsets = [
        (None, {"fields": ["tenant", "name"]}),
        (
            "Earning",
            {
                "fields": [
                    "earn_rate",
                    "earn_rounding",
                    "pending_days",
                    "expiry_months",
                    "bonus_points_qualify",
                ]
            },
        ),
        (
            "Redeeming",
            {"fields": ["redemption_points_per_unit", "min_redemption_points", "max_redemption_share"]},
        ),
        (
            "Tiers",
            {"fields": ["qualifying_window_months", "review_period_months", "downgrade_policy"]},
        ),
        ("Returns", {"fields": ["negative_balance_policy"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [(name, {"fields": [f for f in opts["fields"] if f != "tenant"]}) for name, opts in fieldsets]

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [TierInline] if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not super().has_add_permission(request):
            return False
        tenant_id = getattr(request.user, "tenant_id", None)
        if request.user.is_superuser or tenant_id is None:
            return bool(request.user.is_superuser)
        return not LoyaltyProgram.objects.filter(tenant_id=tenant_id).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: LoyaltyProgram, form: Any, change: bool) -> None:
        tenant_id = obj.tenant_id if (change or request.user.is_superuser) else request.user.tenant_id  # type: ignore[union-attr]
        data = {
            name: form.cleaned_data[name] for name in services.PROGRAM_FIELDS if name in form.cleaned_data
        }
        saved = services.program_update(tenant_id=tenant_id, data=data, actor=actor_of(request))
        obj.pk = saved.pk
        obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not LoyaltyTier:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # the change message needs what changed; the service saves
        tiers = [
            {
                "code": f.instance.code,
                "name": f.cleaned_data.get("name"),
                "threshold": f.cleaned_data.get("threshold"),
                "earn_multiplier": f.cleaned_data.get("earn_multiplier"),
                "benefits": f.cleaned_data.get("benefits", ""),
            }
            for f in formset.forms
            if getattr(f, "cleaned_data", None)
        ]
        services.program_update(
            tenant_id=form.instance.tenant_id, data={}, tiers=tiers, actor=actor_of(request)
        )
        return None


# --- Accounts -------------------------------------------------------------------------------------------------
class TransactionInline(ReadOnlyInline):
    model = LoyaltyTransaction
    fk_name = "account"
    verbose_name_plural = f"Ledger (latest {INLINE_LIMIT})"
    fields = [
        "created_at",
        "type",
        "points",
        "available_delta",
        "pending_delta",
        "balance_after",
        "reference",
        "source",
        "actor",
        "reason",
        "expires_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LoyaltyTransaction]:
        qs = super().get_queryset(request).order_by("-created_at", "-seq")
        latest = qs.values("pk")[:INLINE_LIMIT]
        return qs.filter(pk__in=latest)


class TierChangeInline(ReadOnlyInline):
    model = TierChange
    verbose_name_plural = "Tier history"
    fields = [
        "created_at",
        "old_tier",
        "new_tier",
        "earned_tier_change",
        "rule",
        "qualifying_points",
        "reason",
    ]
    readonly_fields = fields

    @admin.display(description="Earned tier")
    def earned_tier_change(self, obj: TierChange) -> str:
        return f"{obj.old_earned_tier} → {obj.new_earned_tier}"


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "customer",
        "tier",
        "available_points",
        "pending_points",
        "lifetime_earned_points",
        "redeemed_points",
        "tier_review_at",
    ]
    available_points = points_field("available")
    pending_points = points_field("pending")
    lifetime_earned_points = points_field("lifetime_earned", description="lifetime earned")
    redeemed_points = points_field("redeemed")
    expired_points = points_field("expired")
    adjusted_points = points_field("adjusted")
    unrecovered_points = points_field("unrecovered")
    qualifying_points_points = points_field("qualifying_points", description="qualifying points")
    # Balances shown grouped as the tenant reads numbers (5.875), through the displays above.
    POINTS = {
        "available",
        "pending",
        "lifetime_earned",
        "redeemed",
        "expired",
        "adjusted",
        "unrecovered",
        "qualifying_points",
    }
    list_filter = ["tier", "earned_tier"]
    search_fields = ["customer__email", "customer__phone", "customer__first_name", "customer__last_name"]
    list_select_related = ["customer"]
    inlines = [TransactionInline, TierChangeInline]
    fields = [
        "customer",
        "manual_actions",
        "available",
        "pending",
        "lifetime_earned",
        "redeemed",
        "expired",
        "adjusted",
        "unrecovered",
        "qualifying_points",
        "qualifying_as_of",
        "tier",
        "earned_tier",
        "tier_override",
        "tier_override_expires_at",
        "tier_review_at",
        "tier_changed_at",
        "allow_negative",
    ]
    readonly_fields = fields
    # Balances change only through services; the page is for reading and for the two forms below.

    def _button(self, obj: LoyaltyAccount, action: str) -> str:
        label = {"adjust": _("Adjust points"), "override": _("Override tier")}[action]
        url = reverse(f"admin:loyalty_loyaltyaccount_{action}", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, label)

    @admin.display(description=gettext_lazy("Actions"))
    def manual_actions(self, obj: LoyaltyAccount) -> str:
        return format_html("{}&nbsp;{}", self._button(obj, "adjust"), self._button(obj, "override"))

    @admin.display(description=gettext_lazy("Actions"))
    def adjust_action(self, obj: LoyaltyAccount) -> str:
        return self._button(obj, "adjust")

    @admin.display(description=gettext_lazy("Actions"))
    def override_action(self, obj: LoyaltyAccount) -> str:
        return self._button(obj, "override")

    def _actions_field(self, request: HttpRequest) -> str | None:
        """The buttons the user may press: both, one, or none (a page that refuses is not offered)."""
        adjust = request.user.has_perm("loyalty.adjust_points")
        override = request.user.has_perm("loyalty.override_tier")
        if adjust and override:
            return "manual_actions"
        return "adjust_action" if adjust else "override_action" if override else None

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        chosen = self._actions_field(request)
        return [
            chosen if name == "manual_actions" else f"{name}_points" if name in self.POINTS else name
            for name in self.fields
            if name != "manual_actions" or chosen is not None
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="loyalty_loyaltyaccount_adjust",
            ),
            path(
                "<path:object_id>/override/",
                self.admin_site.admin_view(self.override_view),
                name="loyalty_loyaltyaccount_override",
            ),
            *super().get_urls(),
        ]

    def _form_page(
        self, request: HttpRequest, account: LoyaltyAccount, form: forms.Form, title: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "account": account,
            "opts": self.model._meta,
            "original": account,
            "change_url": reverse("admin:loyalty_loyaltyaccount_change", args=[account.pk]),
        }
        return TemplateResponse(request, "admin/loyalty/account_form.html", context)

    def _account(self, request: HttpRequest, object_id: str) -> LoyaltyAccount:
        # get_object() answers None for an id that is not one (say "abc"), where a plain lookup raises a 500.
        account = self.get_object(request, object_id)
        if account is None:
            raise Http404("No such loyalty account.")
        return account

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm("loyalty.adjust_points"):
            raise PermissionDenied
        account = self._account(request, object_id)
        form = AdjustForm(request.POST or None, initial={"idempotency_key": f"admin-{uuid.uuid4()}"})
        if request.method == "POST" and form.is_valid():
            try:
                result = services.points_adjust(
                    customer=account.customer,
                    idempotency_key=form.cleaned_data["idempotency_key"],
                    points=form.cleaned_data["points"],
                    reason=form.cleaned_data["reason"],
                    actor=actor_of(request),
                    source="admin",
                )
            except DomainError as exc:
                self.message_user(request, f"{exc.message} ({exc.code})", level=messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Adjusted by {result.points:+d} points; available is now {result.points_balance}.",
                )
                return HttpResponseRedirect(reverse("admin:loyalty_loyaltyaccount_change", args=[account.pk]))
        return self._form_page(request, account, form, f"Adjust points of {account.customer}")

    def override_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not request.user.has_perm("loyalty.override_tier"):
            raise PermissionDenied
        account = self._account(request, object_id)
        form = TierOverrideForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                if form.cleaned_data["tier"]:
                    services.tier_override_set(
                        customer=account.customer,
                        tier=form.cleaned_data["tier"],
                        expires_at=form.cleaned_data["expires_at"],
                        reason=form.cleaned_data["reason"],
                        actor=actor_of(request),
                    )
                else:
                    services.tier_override_clear(
                        customer=account.customer, reason=form.cleaned_data["reason"], actor=actor_of(request)
                    )
            except DomainError as exc:
                self.message_user(request, f"{exc.message} ({exc.code})", level=messages.ERROR)
            else:
                self.message_user(request, "Tier override saved.")
                return HttpResponseRedirect(reverse("admin:loyalty_loyaltyaccount_change", args=[account.pk]))
        return self._form_page(request, account, form, f"Override the tier of {account.customer}")


class AdjustForm(forms.Form):
    points = forms.IntegerField(help_text="Positive to add points, negative to take them away.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    # Generated when the form is shown: submitting it twice adjusts once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=200)

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Give a number of points other than zero.")
        return int(points)


class TierOverrideForm(forms.Form):
    tier = forms.ChoiceField(
        choices=[("", "— remove the override —"), *TierCode.choices],
        required=False,
        help_text=f"One of {', '.join(TIER_ORDER)}; empty removes the override.",
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty: until removed.")
    reason = forms.CharField(max_length=500)


@admin.register(LoyaltyTransaction)
class LoyaltyTransactionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "created_at",
        "customer",
        "type",
        "points",
        "available_delta",
        "balance_after",
        "reference",
    ]
    list_filter = ["type", "source"]
    search_fields = ["reference", "idempotency_key", "customer__email", "customer__phone"]
    list_select_related = ["customer"]
    readonly_fields = [f.name for f in LoyaltyTransaction._meta.fields]


# --- Stamp cards ----------------------------------------------------------------------------------------------
class StampRuleForm(forms.ModelForm):
    class Meta:
        model = StampRule
        fields = [
            "tenant",
            "name",
            "skus",
            "categories",
            "stamps_per_card",
            "reward_description",
            "reward_sku",
            "active",
        ]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        # Staff do not see the tenant field, so Django skips the (tenant, name) constraint and the database would
        # refuse the row with a 500; the queryset is already the staff user's tenant (RLS and the manager).
        if "tenant" not in self.fields and (
            StampRule.objects.filter(name=name).exclude(pk=self.instance.pk).exists()
        ):
            raise forms.ValidationError("A stamp rule with this name already exists.")
        return name


@admin.register(StampRule)
class StampRuleAdmin(TenantScopedAdmin):
    form = StampRuleForm
    list_display = ["name", "stamps_per_card", "reward_description", "active"]
    list_filter = ["active"]
    search_fields = ["name"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StampReward)
class StampRewardAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["customer", "rule", "status", "issued_at", "redeemed_at"]
    list_filter = ["status"]
    search_fields = ["customer__email", "customer__phone"]
    readonly_fields = [f.name for f in StampReward._meta.fields]
    actions = ["redeem_selected"]

    @admin.action(description="Redeem selected rewards", permissions=["view"])
    def redeem_selected(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for reward in queryset.select_related("customer"):
            try:
                services.stamp_reward_redeem(
                    customer=reward.customer, reward_id=reward.pk, actor=actor_of(request)
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{reward.pk}: {exc.message}", level=messages.ERROR)
        if done:
            self.message_user(request, f"Redeemed {done} reward(s).")
