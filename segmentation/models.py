"""RFM segmentation: per-tenant settings and rule table, nightly runs, each customer's current segment and the
history of its changes (with the reason: scores, as-of date and rule version)."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.display import money_display, tenant_locale
from core.models import Tenant, TenantOwned
from core.tenancy import tenant_cached
from customers.models import Customer

# Segments that no rule produces: customers without any purchase up to the as-of date, and customers never scored.
NO_PURCHASES = "no_purchases"
UNCLASSIFIED = "unclassified"

SCORE = [MinValueValidator(1), MaxValueValidator(5)]


class VipRule(models.TextChoices):
    NONE = "none", "No VIPs"
    MONETARY_SCORE = "monetary_score", "Monetary score at or above a threshold"
    TOP_PERCENT = "top_percent", "Top share of customers by lifetime value"


class ChurnRisk(models.TextChoices):
    NONE = "", "—"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class SegmentationSettings(TenantOwned):
    """The tenant's RFM parameters. Any change to them or to the rule table bumps `rule_version`."""

    window_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3660)],
        help_text="Frequency and monetary value count the purchases of this many days up to the as-of date.",
    )
    vip_rule = models.CharField(max_length=16, choices=VipRule.choices, default=VipRule.MONETARY_SCORE)
    vip_min_monetary_score = models.PositiveSmallIntegerField(
        default=5, validators=SCORE, help_text="With the monetary-score rule: VIP at this M score or above."
    )
    vip_top_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
        help_text="With the top-share rule: this percentage of buyers, by lifetime value up to the as-of date.",
    )
    churn_medium_ratio = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("1.50"),
        help_text="Medium risk once the days since the last purchase exceed this multiple of the customer's "
        "usual interval between purchases.",
    )
    churn_high_ratio = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("3.00"), help_text="High risk beyond this multiple."
    )
    default_interval_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Usual interval assumed for one-purchase customers when no customer of the tenant has bought "
        "twice (otherwise the tenant's median interval is used).",
    )
    rule_version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "segmentation settings"
        verbose_name_plural = "segmentation settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="segmentation_settings_one_per_tenant"),
            models.CheckConstraint(
                condition=Q(churn_high_ratio__gte=F("churn_medium_ratio")) & Q(churn_medium_ratio__gt=0),
                name="segmentation_settings_churn_ratios",
            ),
            models.CheckConstraint(
                condition=Q(vip_min_monetary_score__gte=1) & Q(vip_min_monetary_score__lte=5),
                name="segmentation_settings_vip_score_range",
            ),
        ]

    def __str__(self) -> str:
        return f"RFM settings (rule version {self.rule_version})"


class SegmentRule(TenantOwned):
    """One row of the rule table: the first rule (by priority) whose score ranges all match names the segment."""

    priority = models.PositiveSmallIntegerField(help_text="Lower is evaluated first.")
    segment = models.SlugField(max_length=32, db_index=False)
    label = models.CharField(max_length=64, blank=True)
    r_min = models.PositiveSmallIntegerField(default=1, validators=SCORE)
    r_max = models.PositiveSmallIntegerField(default=5, validators=SCORE)
    f_min = models.PositiveSmallIntegerField(default=1, validators=SCORE)
    f_max = models.PositiveSmallIntegerField(default=5, validators=SCORE)
    m_min = models.PositiveSmallIntegerField(default=1, validators=SCORE)
    m_max = models.PositiveSmallIntegerField(default=5, validators=SCORE)

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "priority"], name="segment_rule_priority_unique"),
            models.CheckConstraint(
                condition=Q(
                    r_min__gte=1, f_min__gte=1, m_min__gte=1, r_max__lte=5, f_max__lte=5, m_max__lte=5
                )
                & Q(r_min__lte=F("r_max"), f_min__lte=F("f_max"), m_min__lte=F("m_max")),
                name="segment_rule_score_ranges",
            ),
            models.CheckConstraint(
                condition=~Q(segment__in=[NO_PURCHASES, UNCLASSIFIED]), name="segment_rule_reserved_names"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.segment}: R{self.r_min}-{self.r_max} F{self.f_min}-{self.f_max} M{self.m_min}-{self.m_max}"

    def matches(self, r: int, f: int, m: int) -> bool:
        return (
            self.r_min <= r <= self.r_max and self.f_min <= f <= self.f_max and self.m_min <= m <= self.m_max
        )


class SegmentRun(TenantOwned):
    """One recomputation of a tenant's segments as of a date, under one rule version."""

    as_of = models.DateField()
    rule_version = models.PositiveIntegerField()
    window_days = models.PositiveIntegerField()
    rules = models.JSONField(default=dict, help_text="The rule table and VIP/churn settings the run used.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    customers_total = models.PositiveIntegerField(default=0)
    customers_scored = models.PositiveIntegerField(
        default=0, help_text="Customers with at least one purchase."
    )
    rows_written = models.PositiveIntegerField(
        default=0,
        help_text="Current-segment rows inserted or updated (segment, scores, VIP or churn changed).",
    )
    segment_changes = models.PositiveIntegerField(default=0)
    vip_count = models.PositiveIntegerField(default=0)
    distribution = models.JSONField(default=dict, help_text="Customers per segment.")
    churn_distribution = models.JSONField(default=dict, help_text="Customers per churn risk.")
    triggered_by = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-as_of", "-rule_version"]
        get_latest_by = ["as_of", "rule_version"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "as_of", "rule_version"], name="segment_run_once_per_as_of_and_rules"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "-as_of", "-rule_version"], name="segment_run_latest_idx")]

    def __str__(self) -> str:
        return f"RFM as of {self.as_of} (rules v{self.rule_version})"

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


class CustomerSegment(TenantOwned):
    """A customer's segment as of the latest run. Rewritten only when something in it changes."""

    # The nightly job rewrites up to every row: only the indexes reads need (the primary key and tenant+segment,
    # which also serves the tenant's own lookups), none on tenant or segment alone. In the database the tenant and
    # the customer are one composite foreign key, (tenant_id, customer_id) -> customers (tenant_id, id) (migration
    # 0004): one check per row written instead of two, and a row can only belong to its customer's tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="segment", db_constraint=False
    )
    segment = models.SlugField(max_length=32, db_index=False)
    recency_score = models.PositiveSmallIntegerField(default=0, help_text="1-5; 0 without purchases.")
    frequency_score = models.PositiveSmallIntegerField(default=0)
    monetary_score = models.PositiveSmallIntegerField(default=0)
    is_vip = models.BooleanField(default=False)
    churn_risk = models.CharField(max_length=8, choices=ChurnRisk.choices, blank=True, default="")
    segment_since = models.DateField(help_text="As-of date of the run that put the customer in this segment.")
    updated_at = models.DateTimeField(help_text="When a run last changed this row.")

    class Meta:
        indexes = [models.Index(fields=["tenant", "segment"], name="customer_segment_segment_idx")]

    def __str__(self) -> str:
        return f"{self.customer}: {self.segment}"


class SegmentChange(TenantOwned):
    """A change of a customer's segment, with why: the scores and raw values, the as-of date and rule version."""

    # Every foreign key is covered by a composite index below or not searched on: fewer indexes to maintain for
    # each change the nightly job records. Tenant and customer are one composite foreign key in the database, as
    # on CustomerSegment.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="segment_changes",
        db_index=False,
        db_constraint=False,
    )
    # No key in the database to the run (migration 0005): the job inserts the run row and then its changes in the
    # same transaction, from the id it just got, and runs are never deleted (read-only in the admin; a deletion
    # through the ORM still cascades). The key cost one check per change at commit, a million at a first run.
    run = models.ForeignKey(
        SegmentRun, on_delete=models.CASCADE, related_name="changes", db_index=False, db_constraint=False
    )
    as_of = models.DateField()
    rule_version = models.PositiveIntegerField()
    old_segment = models.SlugField(max_length=32, db_index=False)
    new_segment = models.SlugField(max_length=32, db_index=False)
    recency_score = models.PositiveSmallIntegerField()
    frequency_score = models.PositiveSmallIntegerField()
    monetary_score = models.PositiveSmallIntegerField()
    recency_days = models.IntegerField(null=True, blank=True, help_text="Days since the last purchase.")
    frequency = models.PositiveIntegerField(default=0, help_text="Purchases in the window.")
    monetary = models.DecimalField(
        max_digits=16, decimal_places=2, default=Decimal("0"), help_text="Spend in the window."
    )
    is_vip = models.BooleanField(default=False)
    churn_risk = models.CharField(max_length=8, choices=ChurnRisk.choices, blank=True, default="")
    event_id = models.UUIDField(help_text="The customer.segment.changed event recorded for this change.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-as_of", "-created_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-as_of"], name="segment_change_customer_idx"),
            models.Index(fields=["run", "old_segment", "new_segment"], name="segment_change_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer}: {self.old_segment} → {self.new_segment} ({self.as_of})"

    def _monetary_shown(self) -> str:
        """The spend as the tenant reads it (`$175.000` for a Chilean business)."""
        tenant = tenant_cached(self.tenant_id)
        return money_display(self.monetary, tenant.currency, tenant_locale(tenant))

    @property
    def reason(self) -> str:
        if self.new_segment == NO_PURCHASES:
            return f"No purchase up to {self.as_of} (rule version {self.rule_version})."
        return (
            f"R{self.recency_score} F{self.frequency_score} M{self.monetary_score} as of {self.as_of} "
            f"({self.recency_days} days since the last purchase, {self.frequency} purchases and "
            f"{self._monetary_shown()} spent in the window) matched '{self.new_segment}' under rule version "
            f"{self.rule_version}."
        )
