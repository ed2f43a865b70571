"""Admin screens: the rule table (complete, versioned), runs and history, read-only and scoped to the tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from core.models import User
from core.tenancy import all_tenants_context, tenant_context
from segmentation.models import SegmentationSettings, SegmentRule
from segmentation.services import rfm_recompute, segmentation_settings_ensure
from tests.segmentation.conftest import AS_OF

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_a(client: Any, tenant_a: Any) -> Any:
    user = User.objects.create_user("staff-a", password="pw-123456", tenant=tenant_a)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="segmentation"))
    client.force_login(user)
    return client


def _version(tenant: Any) -> int:
    with tenant_context(tenant):
        return SegmentationSettings.objects.get().rule_version


def test_the_settings_screen_creates_the_default_rule_table_for_the_staffs_tenant(
    staff_a, tenant_a, tenant_b
):
    response = staff_a.get("/admin/segmentation/segmentationsettings/")
    assert response.status_code == 200
    with tenant_context(tenant_a):
        assert SegmentRule.objects.count() == 10
    with all_tenants_context():
        assert not SegmentRule.objects.filter(tenant=tenant_b).exists()
    assert staff_a.get("/admin/segmentation/segmentrule/").status_code == 200


def test_editing_a_rule_bumps_the_version_and_a_gap_is_refused(staff_a, tenant_a):
    staff_a.get("/admin/segmentation/segmentationsettings/")
    with tenant_context(tenant_a):
        lost = SegmentRule.objects.get(segment="lost")
    form = {
        "priority": lost.priority,
        "segment": "lost",
        "label": "Gone",
        "r_min": 1,
        "r_max": 1,
        "f_min": 1,
        "f_max": 2,
        "m_min": 1,
        "m_max": 5,
    }
    response = staff_a.post(f"/admin/segmentation/segmentrule/{lost.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _version(tenant_a) == 2

    response = staff_a.post(f"/admin/segmentation/segmentrule/{lost.pk}/change/", {**form, "f_max": 1})
    assert response.status_code == 200
    assert "would match no rule" in response.content.decode()
    assert _version(tenant_a) == 2
    with tenant_context(tenant_a):
        assert SegmentRule.objects.get(pk=lost.pk).f_max == 2


def test_runs_segments_and_history_are_read_only_screens(staff_a, tenant_a, hand):
    with tenant_context(tenant_a):
        run = rfm_recompute(tenant=tenant_a, as_of=AS_OF).run
    for path in ("segmentrun", "customersegment", "segmentchange"):
        response = staff_a.get(f"/admin/segmentation/{path}/")
        assert response.status_code == 200, path
    page = staff_a.get(
        f"/admin/segmentation/segmentchange/?customer__id__exact={hand['A'].id}"
    ).content.decode()
    assert "champions" in page and "R5 F5 M5" in page
    assert staff_a.get(f"/admin/segmentation/segmentrun/{run.pk}/change/").status_code == 200
    assert staff_a.get("/admin/segmentation/segmentrun/add/").status_code == 403


def test_a_superuser_sees_every_tenants_rules_and_can_add_settings_for_a_tenant(client, tenant_a, tenant_b):
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(admin_user)
    with tenant_context(tenant_a):
        segmentation_settings_ensure()
    assert client.get("/admin/segmentation/segmentrule/").status_code == 200
    page = client.get("/admin/segmentation/segmentationsettings/add/")
    assert page.status_code == 200 and 'name="tenant"' in page.content.decode()
    response = client.post(
        "/admin/segmentation/segmentationsettings/add/",
        {
            "tenant": tenant_b.slug,
            "window_days": 180,
            "vip_rule": "monetary_score",
            "vip_min_monetary_score": 5,
            "vip_top_percent": "5.00",
            "churn_medium_ratio": "1.50",
            "churn_high_ratio": "3.00",
            "default_interval_days": 30,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(tenant_b):
        assert SegmentationSettings.objects.get().window_days == 180
