"""The customer 360 page of the admin: who the customer is, their loyalty, credit, segment, purchases and changes on
one screen, each panel linking to its full list.

Every figure comes from the apps' selectors; this module only lays them out as panels of labelled, formatted
values (money and points by Babel in the tenant's locale, times in the tenant's zone), so the template computes
nothing. The customers list gets tier, segment and credit columns from batched selectors (three queries a page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.admin_display import row_money
from core.backoffice import display_locale, displayed_for
from core.display import date_display, datetime_display, money_display, number_display
from core.tenancy import tenant_cached, tenant_context
from credit import selectors as credit_selectors
from customers import history
from customers.models import Customer
from loyalty import selectors as loyalty_selectors
from segmentation import selectors as segment_selectors
from segmentation.rules import segment_label

RECENT = 5


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indexes aligned right


@dataclass
class Panel:
    key: str
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    progress: int | None = None  # percent, for the tier progress bar


class _Formatter:
    """Money, points and times of one tenant, in its locale and time zone."""

    def __init__(self, tenant: Any) -> None:
        self.currency = tenant.currency
        self.locale = display_locale()
        self.zone = tenant.time_zone

    def money(self, amount: Decimal | None, currency: str | None = None) -> str:
        return money_display(amount, currency or self.currency, self.locale)

    def points(self, value: int | None) -> str:
        return number_display(value, self.locale)

    def when(self, value: Any) -> str:
        return datetime_display(value, self.zone, self.locale)

    def day(self, value: Any) -> str:
        return date_display(value, self.locale)


def _link(user: Any, perm: str, label: str, url: str) -> list[tuple[str, str]]:
    return [(label, url)] if user.has_perm(perm) else []


def identity_panel(customer: Customer, fmt: _Formatter) -> Panel:
    rows = [
        (_("Name"), customer.display_name),
        (_("Type"), customer.get_type_display()),
        (_("Status"), customer.get_status_display()),
        (_("Document"), f"{customer.document_type} {customer.document_number or ''}".strip() or "—"),
        (_("Email"), customer.email or "—"),
        (_("Phone"), customer.phone or "—"),
        (_("Loyalty card"), customer.loyalty_card_number or "—"),
        (_("Customer since"), fmt.when(customer.created_at)),
    ]
    if customer.salesperson or customer.route:
        rows.append(
            (_("Salesperson / route"), " · ".join(v for v in (customer.salesperson, customer.route) if v))
        )
    consents = Table(
        [_("Channel"), _("Consent"), _("Since"), _("Source")],
        [
            [c.get_channel_display(), _("yes") if c.consented else _("no"), fmt.when(c.changed_at), c.source]
            for c in customer.consents.order_by("channel")
        ],
    )
    addresses = Table(
        [_("Kind"), _("Address"), _("Default")],
        [
            [
                a.get_kind_display(),
                ", ".join(p for p in (a.line1, a.city, a.region, a.country) if p),
                _("yes") if a.is_default else "",
            ]
            for a in customer.addresses.order_by("kind", "-is_default")
        ],
    )
    panel = Panel("identity", _("Identity and contact"), rows=rows)
    if consents.rows:
        panel.tables.append((_("Consents"), consents))
    if addresses.rows:
        panel.tables.append((_("Addresses"), addresses))
    return panel


def loyalty_panel(customer: Customer, fmt: _Formatter, user: Any) -> Panel:
    summary = loyalty_selectors.loyalty_summary(customer)
    panel = Panel("loyalty", _("Loyalty"))
    panel.rows = [
        (_("Available points"), fmt.points(summary.points_balance)),
        (_("Pending points"), fmt.points(summary.pending)),
        (_("Worth"), fmt.money(summary.points_value, summary.currency)),
        (_("Tier"), summary.tier_name),
    ]
    if summary.next_tier:
        reached = summary.qualifying_points
        target = reached + summary.points_to_next_tier
        panel.progress = int(100 * reached / target) if target else 100
        panel.rows.append(
            (
                _("Next tier"),
                _("%(tier)s: %(points)s more qualifying points within %(months)s months")
                % {
                    "tier": summary.next_tier.title(),
                    "points": fmt.points(summary.points_to_next_tier),
                    "months": summary.qualifying_window_months,
                },
            )
        )
    else:
        panel.rows.append((_("Next tier"), _("Top tier reached")))
    panel.rows.append(
        (
            _("Expiring within %(days)s days") % {"days": summary.expiring_within_days},
            fmt.points(summary.points_expiring_soon),
        )
    )
    transactions = loyalty_selectors.transactions_for(customer)[:RECENT]
    table = Table(
        [_("When"), _("Type"), _("Points"), _("Balance"), _("Reference")],
        [
            [
                fmt.when(t.created_at),
                t.get_type_display(),
                fmt.points(t.points),
                fmt.points(t.balance_after),
                t.reference,
            ]
            for t in transactions
        ],
        numeric={2, 3},
    )
    if table.rows:
        panel.tables.append((_("Latest transactions"), table))
    cards = loyalty_selectors.stamp_cards_for(customer)
    if cards:
        panel.tables.append(
            (
                _("Stamp cards"),
                Table(
                    [_("Card"), _("Stamps"), _("Rewards ready")],
                    [
                        [c.rule_name, f"{c.stamps} / {c.stamps_per_card}", str(len(c.rewards_available))]
                        for c in cards
                    ],
                    numeric={1, 2},
                ),
            )
        )
    account_id = loyalty_selectors.account_id_for(customer)
    if account_id is not None:
        panel.links += _link(
            user,
            "loyalty.view_loyaltyaccount",
            _("All loyalty transactions"),
            reverse("admin:loyalty_loyaltyaccount_change", args=[account_id]),
        )
    if not summary.has_account:
        panel.note = _("No loyalty activity yet.")
    return panel


def credit_panel(customer: Customer, fmt: _Formatter, user: Any) -> Panel:
    panel = Panel("credit", _("Credit"))
    summary = credit_selectors.credit_summary(customer)
    if summary is None:
        panel.note = _("No credit line.")
        if customer.type == "business":
            panel.links += _link(
                user,
                "credit.add_creditline",
                _("Request a credit line"),
                reverse("admin:credit_creditline_add"),
            )
        return panel
    money = lambda amount: fmt.money(amount, summary.currency)  # noqa: E731
    panel.rows = [
        (_("Line status"), summary.status.replace("_", " ").capitalize()),
        (_("Credit limit"), money(summary.credit_limit)),
        (_("Exposure (used)"), money(summary.used)),
        (_("Available"), money(summary.available)),
        (_("Payment terms"), _("%(days)s days") % {"days": summary.payment_terms_days}),
        (_("Overdue"), money(summary.overdue_amount)),
        (_("Active holds"), money(summary.holds_active)),
    ]
    aging = credit_selectors.credit_aging(customer=customer)
    panel.tables.append(
        (
            _("Aging as of %(date)s") % {"date": fmt.day(aging.as_of)},
            Table(
                [str(AGING_LABELS.get(key, key)) for key in aging.buckets],
                [[money(amount) for amount in aging.buckets.values()]],
                numeric=set(range(len(aging.buckets))),
            ),
        )
    )
    charges = credit_selectors.charge_list(customer=customer).order_by("-created_at")[:RECENT]
    if charges:
        panel.tables.append(
            (
                _("Latest charges"),
                Table(
                    [_("Order"), _("Amount"), _("Outstanding"), _("Due"), _("Status")],
                    [
                        [
                            c.order_id,
                            money(c.amount),
                            money(c.outstanding),
                            fmt.day(c.due_date),
                            c.get_status_display(),
                        ]
                        for c in charges
                    ],
                    numeric={1, 2},
                ),
            )
        )
    payments = credit_selectors.payment_list(customer=customer)[:RECENT]
    if payments:
        panel.tables.append(
            (
                _("Latest payments"),
                Table(
                    [_("Payment"), _("Amount"), _("Received")],
                    [[p.payment_id, money(p.amount), fmt.when(p.received_at)] for p in payments],
                    numeric={1},
                ),
            )
        )
    if summary.credit_line_id:
        panel.links += _link(
            user,
            "credit.view_creditline",
            _("Credit line"),
            reverse("admin:credit_creditline_change", args=[summary.credit_line_id]),
        )
        panel.links += _link(
            user,
            "credit.view_creditcharge",
            _("All charges"),
            reverse("admin:credit_creditcharge_changelist") + f"?line__id__exact={summary.credit_line_id}",
        )
    return panel


AGING_LABELS = {
    "current": gettext_lazy("Current"),
    "1_30": gettext_lazy("1-30 days"),
    "31_60": gettext_lazy("31-60 days"),
    "61_90": gettext_lazy("61-90 days"),
    "over_90": gettext_lazy("Over 90 days"),
}

CHURN_LABELS = {"low": gettext_lazy("low"), "medium": gettext_lazy("medium"), "high": gettext_lazy("high")}


def segment_panel(customer: Customer, fmt: _Formatter, user: Any) -> Panel:
    view = segment_selectors.segment_for_customer(customer)
    panel = Panel("segment", _("Segment"))
    if view.computed_at is None:
        panel.note = _("Not classified yet: segments are computed nightly.")
        return panel
    metrics = history.customer_metrics_get(customer)
    panel.rows = [
        (_("Segment"), str(segment_label(view.segment))),
        (_("R / F / M scores"), f"{view.recency_score} / {view.frequency_score} / {view.monetary_score}"),
        (_("VIP"), _("yes") if view.is_vip else _("no")),
        (_("Churn risk"), str(CHURN_LABELS.get(view.churn_risk, "—"))),
        (
            _("Why"),
            _("last purchase %(days)s days ago, %(orders)s orders, %(value)s in total")
            % {
                "days": metrics.days_since_last_purchase
                if metrics.days_since_last_purchase is not None
                else "—",
                "orders": fmt.points(metrics.order_count),
                "value": fmt.money(metrics.lifetime_value, metrics.currency),
            },
        ),
        (_("In this segment since"), fmt.day(view.segment_since)),
        (_("Computed"), fmt.when(view.computed_at)),
    ]
    changes = segment_selectors.segment_history(customer)[:RECENT]
    if changes:
        panel.tables.append(
            (
                _("History"),
                Table(
                    [_("As of"), _("From"), _("To")],
                    [
                        [
                            fmt.day(c.as_of),
                            str(segment_label(c.old_segment)) if c.old_segment else "—",
                            str(segment_label(c.new_segment)),
                        ]
                        for c in changes
                    ],
                ),
            )
        )
    panel.links += _link(
        user,
        "segmentation.view_segmentchange",
        _("Segment history"),
        reverse("admin:segmentation_segmentchange_changelist") + f"?customer__id__exact={customer.pk}",
    )
    return panel


def purchases_panel(customer: Customer, fmt: _Formatter, user: Any) -> Panel:
    metrics = history.customer_metrics_get(customer)
    panel = Panel("purchases", _("Purchases and metrics"))
    panel.rows = [
        (_("Orders"), fmt.points(metrics.order_count)),
        (_("Lifetime value"), fmt.money(metrics.lifetime_value, metrics.currency)),
        (_("Average order value"), fmt.money(metrics.average_order_value, metrics.currency)),
        (
            _("Purchase frequency"),
            _("every %(days)s days") % {"days": number_display(metrics.purchase_frequency_days, fmt.locale)}
            if metrics.purchase_frequency_days is not None
            else "—",
        ),
        (_("First purchase"), fmt.when(metrics.first_purchase_at)),
        (_("Last purchase"), fmt.when(metrics.last_purchase_at)),
    ]
    purchases = history.purchase_list(customer)[:RECENT]
    if purchases:
        panel.tables.append(
            (
                _("Latest purchases"),
                Table(
                    [_("When"), _("Source"), _("Channel"), _("Total")],
                    [
                        [
                            fmt.when(p.completed_at),
                            f"{p.source} {p.source_id}",
                            p.channel or p.store_id,
                            fmt.money(p.total_amount, p.currency),
                        ]
                        for p in purchases
                    ],
                    numeric={3},
                ),
            )
        )
    panel.links += _link(
        user,
        "customers.view_purchase",
        _("All purchases"),
        reverse("admin:customers_purchase_changelist") + f"?customer__id__exact={customer.pk}",
    )
    return panel


def changes_panel(customer: Customer, fmt: _Formatter, user: Any, change_url: str) -> Panel:
    panel = Panel("changes", _("Change history"))
    changes = customer.changes.all()[:RECENT]
    panel.tables.append(
        (
            "",
            Table(
                [_("When"), _("Action"), _("Fields"), _("By")],
                [[fmt.when(c.created_at), c.action, ", ".join(c.changed_fields), c.actor] for c in changes],
            ),
        )
    )
    panel.links.append((_("Full history"), change_url + "#changes-group"))
    return panel


def customer_panels(customer: Customer, user: Any, change_url: str) -> list[Panel]:
    """Every panel of the 360 page, read inside the customer's tenant."""
    fmt = _Formatter(tenant_cached(customer.tenant_id))
    panels = [identity_panel(customer, fmt), loyalty_panel(customer, fmt, user)]
    if customer.type == "business" or credit_selectors.credit_summary(customer) is not None:
        panels.append(credit_panel(customer, fmt, user))
    panels += [
        segment_panel(customer, fmt, user),
        purchases_panel(customer, fmt, user),
        changes_panel(customer, fmt, user, change_url),
    ]
    return panels


class Customer360Mixin:
    """Adds the 360 page (`<id>/360/`) and the tier, segment and credit columns to the customer admin."""

    admin_site: admin.AdminSite

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:object_id>/360/",
                self.admin_site.admin_view(self.overview_view),
                name="customers_customer_360",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def overview_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        customer = self.get_queryset(request).filter(pk=object_id).first()  # type: ignore[attr-defined]
        if customer is None:
            raise Http404(_("No such customer."))
        if not self.has_view_permission(request, customer):  # type: ignore[attr-defined]
            raise PermissionDenied
        tenant = tenant_cached(customer.tenant_id)
        change_url = reverse("admin:customers_customer_change", args=[customer.pk])
        with tenant_context(customer.tenant_id), displayed_for(tenant):
            context = {
                **self.admin_site.each_context(request),
                "opts": Customer._meta,
                "title": customer.display_name,
                "subtitle": _("Customer 360"),
                "customer": customer,
                "tenant": tenant,
                "panels": customer_panels(customer, request.user, change_url),
                "change_url": change_url,
                "can_change": self.has_change_permission(request, customer),  # type: ignore[attr-defined]
            }
            # Rendered here: the locale and time zone of the tenant apply while the template renders.
            return TemplateResponse(request, "admin/customers/customer/overview.html", context).render()

    # --- The list's columns ----------------------------------------------------------------------------------------
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            rows = list(changelist.result_list)
            ids = [row.pk for row in rows]
            tiers = loyalty_selectors.tiers_by_customer(ids)
            segments = segment_selectors.segments_by_customer(ids)
            lines = credit_selectors.open_lines_by_customer(ids)
            for row in rows:
                row.list_tier = tiers.get(row.pk, "")
                row.list_segment = segments.get(row.pk)
                row.list_line = lines.get(row.pk)
        return response

    @admin.display(description=gettext_lazy("name"), ordering="last_name")
    def name_360(self, obj: Customer) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:customers_customer_360", args=[obj.pk]), obj.display_name
        )

    @admin.display(description=gettext_lazy("contact"), ordering="email")
    def contact(self, obj: Customer) -> str:
        return format_html('{}<br><span class="quiet">{}</span>', obj.email or "—", obj.phone or "")

    def get_list_display(self, request: HttpRequest) -> Any:
        # A superuser's extra tenant column shows the short slug: the list still fits 1366 px.
        return ["tenant_id" if name == "tenant" else name for name in super().get_list_display(request)]  # type: ignore[misc]

    @admin.display(description=gettext_lazy("tier"))
    def tier_column(self, obj: Customer) -> str:
        return (getattr(obj, "list_tier", "") or "—").title()

    @admin.display(description=gettext_lazy("segment"))
    def segment_column(self, obj: Customer) -> str:
        row = getattr(obj, "list_segment", None)
        if row is None:
            return "—"
        segment, is_vip = row
        label = str(segment_label(segment))
        return format_html("{} <strong>VIP</strong>", label) if is_vip else label

    @admin.display(description=gettext_lazy("credit available"))
    def credit_column(self, obj: Customer) -> str:
        line = getattr(obj, "list_line", None)
        if line is None:
            return "—"
        if line.status != "approved":
            return line.get_status_display()
        return row_money(line, line.available)
