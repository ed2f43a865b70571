"""Segmentation screens: the rule table and RFM settings, the runs, current segments and their history.

Runs, segments and history are written only by the nightly job: read-only here. A rule edit must leave every score
combination with a segment (checked across the whole table); saving the settings or the rule table calls
`segment_rules_changed`, which bumps the rule version, so the next run recomputes even for an as-of date already
done.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.forms.models import BaseModelFormSet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from core.admin import TenantScopedAdmin
from core.admin_display import ReadOnlyAdminMixin
from core.tenancy import tenant_context
from segmentation import services
from segmentation.models import CustomerSegment, SegmentationSettings, SegmentChange, SegmentRule, SegmentRun
from segmentation.rules import uncovered_cells


def _coverage_error(rules: list[Any]) -> str | None:
    missing = uncovered_cells(rules)
    if not missing:
        return None
    sample = ", ".join(f"R{r}F{f}M{m}" for r, f, m in missing[:8])
    return f"{len(missing)} score combinations would match no rule (e.g. {sample}); keep a rule for each."


class SegmentRuleForm(forms.ModelForm):
    """A rule change must leave every R/F/M combination with a segment."""

    class Meta:
        model = SegmentRule
        fields = [
            "priority",
            "segment",
            "label",
            "r_min",
            "r_max",
            "f_min",
            "f_max",
            "m_min",
            "m_max",
            "tenant",
        ]

    request_user: Any = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for prefix in ("r", "f", "m"):
            low, high = cleaned.get(f"{prefix}_min"), cleaned.get(f"{prefix}_max")
            if low is not None and high is not None and low > high:
                self.add_error(f"{prefix}_max", "The maximum is below the minimum.")
        if self.errors:
            return cleaned
        tenant_id = self.instance.tenant_id or (cleaned.get("tenant") and cleaned["tenant"].slug)
        tenant_id = tenant_id or getattr(self.request_user, "tenant_id", None)
        if tenant_id:
            candidate = SegmentRule(
                **{k: cleaned[k] for k in ("r_min", "r_max", "f_min", "f_max", "m_min", "m_max")}
            )
            others = list(SegmentRule.objects.filter(tenant_id=tenant_id).exclude(pk=self.instance.pk))
            error = _coverage_error([*others, candidate])
            if error:
                raise forms.ValidationError(error)
        return cleaned


class RuleTableFormSet(BaseModelFormSet):
    """The changelist's inline edits, checked together (rules not on the page count too)."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        edited = {form.instance.pk: form.instance for form in self.forms}
        tenants = {rule.tenant_id for rule in edited.values()}
        for tenant_id in tenants:
            rules = [edited.get(rule.pk, rule) for rule in SegmentRule.objects.filter(tenant_id=tenant_id)]
            error = _coverage_error(rules)
            if error:
                raise forms.ValidationError(f"{tenant_id}: {error}")


@admin.register(SegmentationSettings)
class SegmentationSettingsAdmin(TenantScopedAdmin):
    list_display = [
        "__str__",
        "window_days",
        "vip_rule",
        "churn_medium_ratio",
        "churn_high_ratio",
        "updated_at",
    ]
    readonly_fields = ["rule_version", "rule_table", "updated_at"]
    fieldsets = [
        ("Window", {"fields": ["window_days"]}),
        ("VIP", {"fields": ["vip_rule", "vip_min_monetary_score", "vip_top_percent"]}),
        ("Churn risk", {"fields": ["churn_medium_ratio", "churn_high_ratio", "default_interval_days"]}),
        ("Rule table", {"fields": ["rule_table", "rule_version", "updated_at"]}),
    ]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A staff user's settings are created with the defaults when first shown (see changelist_view).
        return bool(request.user.is_superuser)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None and request.user.is_superuser:
            fieldsets.insert(0, ("Tenant", {"fields": ["tenant"]}))
        return fieldsets

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tenant_id = getattr(request.user, "tenant_id", None)
        if tenant_id and not request.user.is_superuser:
            with tenant_context(tenant_id):
                services.segmentation_settings_ensure()
        return super().changelist_view(request, extra_context)

    @admin.display(description="Segment rules")
    def rule_table(self, obj: SegmentationSettings) -> str:
        url = reverse("admin:segmentation_segmentrule_changelist")
        return format_html('<a href="{}">Edit the rule table</a> (first matching rule by priority wins)', url)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            with tenant_context(obj.tenant_id):
                version = services.segment_rules_changed()
            self.message_user(
                request, f"Rule version is now {version}; the next run recomputes every segment."
            )


@admin.register(SegmentRule)
class SegmentRuleAdmin(TenantScopedAdmin):
    form = SegmentRuleForm
    list_display = ["priority", "segment", "label", "r_min", "r_max", "f_min", "f_max", "m_min", "m_max"]
    list_display_links = ["priority", "segment"]
    list_editable = ["r_min", "r_max", "f_min", "f_max", "m_min", "m_max"]
    ordering = ["priority"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request_user": request.user})

    def get_changelist_formset(self, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("formset", RuleTableFormSet)
        return super().get_changelist_formset(request, **kwargs)

    def _bump(self, request: HttpRequest, tenant_id: str) -> None:
        with tenant_context(tenant_id):
            version = services.segment_rules_changed()
            missing = uncovered_cells(SegmentRule.objects.all())
        if missing:
            self.message_user(
                request,
                f"{len(missing)} score combinations match no rule: those customers become 'unclassified'.",
                level=messages.WARNING,
            )
        self.message_user(request, f"Rule version is now {version}; the next run recomputes every segment.")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._bump(request, obj.tenant_id)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        tenant_id = obj.tenant_id
        super().delete_model(request, obj)
        self._bump(request, tenant_id)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        tenants = set(queryset.values_list("tenant_id", flat=True))
        super().delete_queryset(request, queryset)
        for tenant_id in tenants:
            self._bump(request, tenant_id)


@admin.register(SegmentRun)
class SegmentRunAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "as_of",
        "rule_version",
        "customers_total",
        "customers_scored",
        "segment_changes",
        "rows_written",
        "vip_count",
        "duration",
        "triggered_by",
        "finished_at",
    ]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in SegmentRun._meta.fields]

    @admin.display(description="seconds")
    def duration(self, obj: SegmentRun) -> str:
        return f"{obj.duration_seconds:.2f}"


@admin.register(CustomerSegment)
class CustomerSegmentAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "customer",
        "segment",
        "recency_score",
        "frequency_score",
        "monetary_score",
        "is_vip",
        "churn_risk",
        "segment_since",
        "history",
    ]
    list_filter = ["segment", "is_vip", "churn_risk"]
    search_fields = ["customer__id", "customer__email", "customer__last_name", "customer__legal_name"]
    list_select_related = ["customer"]
    readonly_fields = [f.name for f in CustomerSegment._meta.fields]

    @admin.display(description="history")
    def history(self, obj: CustomerSegment) -> str:
        url = reverse("admin:segmentation_segmentchange_changelist")
        return format_html('<a href="{}?customer__id__exact={}">changes</a>', url, obj.customer_id)


@admin.register(SegmentChange)
class SegmentChangeAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = [
        "as_of",
        "customer",
        "old_segment",
        "new_segment",
        "recency_score",
        "frequency_score",
        "monetary_score",
        "rule_version",
        "reason",
    ]
    list_filter = ["new_segment", "old_segment", "as_of"]
    search_fields = ["customer__id", "customer__email", "customer__last_name", "customer__legal_name"]
    list_select_related = ["customer"]
    readonly_fields = [*(f.name for f in SegmentChange._meta.fields), "reason"]
