"""Writes of the segmentation app: the nightly RFM recomputation and the configuration of its rule table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.models import Tenant
from core.tenancy import require_tenant_slug
from customers.cache import customer_cache_invalidate, customer_cache_invalidate_tenant
from segmentation.errors import AsOfBeforeLatestRun
from segmentation.models import SegmentationSettings, SegmentChange, SegmentRule, SegmentRun
from segmentation.rfm import RfmCounts, RfmParameters, rfm_execute
from segmentation.rules import DEFAULT_RULES, uncovered_cells

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
STAGES = ("prepare", "score", "finish")


@dataclass(frozen=True)
class RfmRunResult:
    run: SegmentRun
    created: bool  # False: this as-of date and rule version were already computed; nothing was written


def rfm_default_as_of(tenant: Tenant, *, now: datetime | None = None) -> date:
    """The last complete day in the tenant's time zone: a run at night scores everything bought up to yesterday."""
    moment = now or timezone.now()
    return moment.astimezone(ZoneInfo(tenant.time_zone)).date() - timedelta(days=1)


@transaction.atomic
def segmentation_settings_ensure() -> SegmentationSettings:
    """The current tenant's RFM settings, created with the default rule table the first time they are needed."""
    slug = require_tenant_slug()
    config, created = SegmentationSettings.objects.get_or_create(tenant_id=slug)
    if created and not SegmentRule.objects.exists():
        SegmentRule.objects.bulk_create(
            SegmentRule(
                tenant_id=slug,
                priority=spec.priority,
                segment=spec.segment,
                label=spec.label,
                r_min=spec.r[0],
                r_max=spec.r[1],
                f_min=spec.f[0],
                f_max=spec.f[1],
                m_min=spec.m[0],
                m_max=spec.m[1],
            )
            for spec in DEFAULT_RULES
        )
    return config


@transaction.atomic
def segment_rules_changed() -> int:
    """Bump the rule version after the rule table or the settings changed, so the next run recomputes."""
    config = segmentation_settings_ensure()
    SegmentationSettings.objects.filter(pk=config.pk).update(rule_version=F("rule_version") + 1)
    config.refresh_from_db(fields=["rule_version"])
    return config.rule_version


def _lock_tenant_job(slug: str) -> None:
    """Serialise runs of one tenant (the second waits, then finds its as-of date done)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"segmentation.rfm:{slug}"])


def _set_local(name: str, value: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        previous, _ = cursor.fetchone()
    return str(previous)


def _rules_snapshot(config: SegmentationSettings) -> dict[str, Any]:
    rules = [
        {
            "priority": rule.priority,
            "segment": rule.segment,
            "label": rule.label,
            "r_min": rule.r_min,
            "r_max": rule.r_max,
            "f_min": rule.f_min,
            "f_max": rule.f_max,
            "m_min": rule.m_min,
            "m_max": rule.m_max,
        }
        for rule in SegmentRule.objects.order_by("priority", "id")
    ]
    return {
        "rules": rules,
        "window_days": config.window_days,
        "vip_rule": config.vip_rule,
        "vip_min_monetary_score": config.vip_min_monetary_score,
        "vip_top_percent": str(config.vip_top_percent),
        "churn_medium_ratio": str(config.churn_medium_ratio),
        "churn_high_ratio": str(config.churn_high_ratio),
        "default_interval_days": config.default_interval_days,
    }


@transaction.atomic
def rfm_recompute(
    *,
    tenant: Tenant,
    as_of: date | None = None,
    triggered_by: str = "",
    progress: Progress | None = None,
) -> RfmRunResult:
    """Recompute the tenant's RFM segments as of a date in one SQL statement, recording only what changed."""
    slug = require_tenant_slug()
    if slug != tenant.slug:
        raise RuntimeError(f"rfm_recompute for {tenant.slug} called inside the tenant context of {slug}")
    step = progress or (lambda stage: None)
    as_of = as_of or rfm_default_as_of(tenant)

    _lock_tenant_job(slug)
    config = segmentation_settings_ensure()
    done = SegmentRun.objects.filter(as_of=as_of, rule_version=config.rule_version).first()
    if done is not None:
        for stage in STAGES:
            step(stage)
        return RfmRunResult(run=done, created=False)
    latest = SegmentRun.objects.order_by("-as_of", "-rule_version").first()
    if latest is not None and latest.as_of > as_of:
        raise AsOfBeforeLatestRun(as_of=as_of.isoformat(), latest_as_of=latest.as_of.isoformat())

    snapshot = _rules_snapshot(config)
    if uncovered_cells(SegmentRule.objects.all()):
        logger.warning("Tenant %s: the rule table leaves cells uncovered; they are 'unclassified'", slug)
    started = timezone.now()
    run = SegmentRun.objects.create(
        tenant_id=slug,
        as_of=as_of,
        rule_version=config.rule_version,
        window_days=config.window_days,
        rules=snapshot,
        started_at=started,
        finished_at=started,
        triggered_by=triggered_by[:64],
    )
    step("prepare")

    zone = ZoneInfo(tenant.time_zone)
    next_day = as_of + timedelta(days=1)
    params = RfmParameters(
        tenant_id=slug,
        time_zone=tenant.time_zone,
        as_of=as_of,
        cutoff=datetime.combine(next_day, time.min, tzinfo=zone),
        window_start=datetime.combine(next_day - timedelta(days=config.window_days), time.min, tzinfo=zone),
        run_id=run.pk,
        rule_version=config.rule_version,
        rules=snapshot["rules"],
        vip_rule=config.vip_rule,
        vip_min_monetary_score=config.vip_min_monetary_score,
        vip_top_percent=config.vip_top_percent,
        churn_medium_ratio=config.churn_medium_ratio,
        churn_high_ratio=config.churn_high_ratio,
        default_interval_days=config.default_interval_days,
        now=started,
    )
    # Three sorts of every customer: with less memory they spill to disk and take about twice as long.
    previous_work_mem = _set_local("work_mem", settings.SEGMENTATION_WORK_MEM)
    previous_jit = _set_local("jit", "off")
    counts = rfm_execute(params)
    _set_local("work_mem", previous_work_mem)
    _set_local("jit", previous_jit)
    step("score")

    _record_counts(run, counts)
    _invalidate_customer_cache(slug, run, counts.segment_changes)
    step("finish")
    return RfmRunResult(run=run, created=True)


def _record_counts(run: SegmentRun, counts: RfmCounts) -> None:
    run.finished_at = timezone.now()
    run.customers_total = counts.customers_total
    run.customers_scored = counts.customers_scored
    run.rows_written = counts.rows_written
    run.segment_changes = counts.segment_changes
    run.vip_count = counts.vip_count
    run.distribution = counts.distribution
    run.churn_distribution = counts.churn_distribution
    run.save(
        update_fields=[
            "finished_at",
            "customers_total",
            "customers_scored",
            "rows_written",
            "segment_changes",
            "vip_count",
            "distribution",
            "churn_distribution",
        ]
    )


def _invalidate_customer_cache(slug: str, run: SegmentRun, changes: int) -> None:
    """`GetCustomer` shows the segment: drop the cached customers whose segment changed, after commit. Past a
    threshold, one tenant-wide invalidation instead of one per customer (a first run changes everyone)."""
    if changes == 0:
        return
    if changes > settings.SEGMENTATION_CACHE_BULK_THRESHOLD:
        customer_cache_invalidate_tenant(tenant_id=slug)
        return
    for customer_id in SegmentChange.objects.filter(run=run).values_list("customer_id", flat=True):
        customer_cache_invalidate(tenant_id=slug, customer_id=customer_id)
