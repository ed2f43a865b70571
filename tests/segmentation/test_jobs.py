"""The doors of the nightly job: the Celery beat schedule and tasks, and `manage.py rfm_recompute`."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from core.tenancy import tenant_context
from segmentation import tasks
from segmentation.models import CustomerSegment, SegmentRun
from tests.segmentation.conftest import AS_OF

pytestmark = pytest.mark.django_db


def test_the_beat_schedule_runs_the_dispatcher_hourly():
    entry = settings.CELERY_BEAT_SCHEDULE["segmentation-rfm-nightly"]
    assert entry["task"] == "segmentation.rfm_dispatch"
    assert entry["schedule"].minute == {15} and len(entry["schedule"].hour) == 24


def test_the_dispatcher_enqueues_each_tenant_once_its_night_has_come(tenant_a, tenant_b, monkeypatch):
    # tenant-a: America/Santiago (UTC-3 in March); tenant-b: UTC.
    from core.models import Tenant

    Tenant.objects.filter(slug=tenant_b.slug).update(time_zone="UTC")
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.rfm_recompute_tenant, "delay", lambda *args: sent.append(args))
    monkeypatch.setattr(tasks.timezone, "now", lambda: datetime(2025, 3, 12, 4, 30, tzinfo=UTC))
    # 04:30 UTC: 01:30 in Santiago (not yet), 04:30 in UTC (due, as of yesterday).
    assert tasks.rfm_dispatch() == ["tenant-b"]
    assert sent == [("tenant-b", "2025-03-11")]

    tasks.rfm_recompute_tenant("tenant-b", "2025-03-11")
    sent.clear()
    monkeypatch.setattr(tasks.timezone, "now", lambda: datetime(2025, 3, 12, 7, 15, tzinfo=UTC))
    # 07:15 UTC: 04:15 in Santiago (due); tenant-b already has its run.
    assert tasks.rfm_dispatch() == ["tenant-a"]
    assert sent == [("tenant-a", "2025-03-11")]


def test_the_task_recomputes_inside_the_tenants_context_and_is_idempotent(tenant_a, hand):
    first = tasks.rfm_recompute_tenant(tenant_a.slug, AS_OF.isoformat())
    assert first["created"] is True and first["customers"] == 12 and first["segment_changes"] == 12
    again = tasks.rfm_recompute_tenant(tenant_a.slug, AS_OF.isoformat())
    assert again["created"] is False
    earlier = tasks.rfm_recompute_tenant(tenant_a.slug, "2025-01-01")
    assert earlier["refused"] == "rfm_as_of_before_latest_run"


def test_the_command_recomputes_one_tenant_with_a_progress_bar(tenant_a, tenant_b, hand):
    out, err = StringIO(), StringIO()
    call_command(
        "rfm_recompute", "--tenant", tenant_a.slug, "--as-of", AS_OF.isoformat(), stdout=out, stderr=err
    )
    with tenant_context(tenant_a):
        assert SegmentRun.objects.get().as_of == AS_OF
        assert CustomerSegment.objects.count() == 12
    with tenant_context(tenant_b):
        assert not SegmentRun.objects.exists()
    assert "3/3" in err.getvalue()  # tqdm writes its bar to stderr


def test_the_command_runs_every_tenant_and_rejects_bad_arguments(tenant_a, tenant_b):
    call_command("rfm_recompute", "--as-of", AS_OF.isoformat(), stdout=StringIO(), stderr=StringIO())
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            assert SegmentRun.objects.filter(as_of=AS_OF).count() == 1
    with pytest.raises(CommandError, match="No tenant"):
        call_command("rfm_recompute", "--tenant", "nobody", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="refused"):
        call_command("rfm_recompute", "--as-of", "2024-01-01", stdout=StringIO(), stderr=StringIO())
