"""The job for one tenant never reads or writes another's rows: Row-Level Security scopes its statement."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from core.models import OutboxEvent
from core.tenancy import all_tenants_context, tenant_context
from segmentation.models import CustomerSegment, SegmentationSettings, SegmentChange, SegmentRule, SegmentRun
from segmentation.rfm import scoring_sql
from segmentation.services import rfm_recompute
from tests.segmentation.conftest import AS_OF, make_customers
from tests.segmentation.factories import purchases

pytestmark = pytest.mark.django_db

SEGMENTATION_MODELS = (SegmentationSettings, SegmentRule, SegmentRun, CustomerSegment, SegmentChange)


def _counts(tenant: Any) -> dict[str, int]:
    with all_tenants_context():
        counts = {m.__name__: m.objects.filter(tenant=tenant).count() for m in SEGMENTATION_MODELS}
        counts["events"] = OutboxEvent.objects.filter(
            tenant=tenant, event_type="customer.segment.changed"
        ).count()
    return counts


def _scores(tenant: Any) -> dict[Any, tuple[int, int, int, str]]:
    with tenant_context(tenant):
        return {
            r.customer_id: (r.recency_score, r.frequency_score, r.monetary_score, r.segment)
            for r in CustomerSegment.objects.all()
        }


@pytest.fixture
def big_spenders_b(tenant_b: Any) -> dict[str, Any]:
    """Tenant B's customers buy more, more often and more recently than all of A's: were B's rows read by A's
    job, A's quintiles would shift."""
    people = make_customers(tenant_b, [f"b{i}" for i in range(15)])
    for i, customer in enumerate(people.values()):
        purchases(tenant_b, customer, last=AS_OF, n=20 + i, total=f"{100000 + i}", every_days=1)
    return people


def test_one_tenants_job_neither_reads_nor_writes_another_tenants_rows(
    tenant_a, tenant_b, hand, big_spenders_b
):
    with tenant_context(tenant_a):
        alone = rfm_recompute(tenant=tenant_a, as_of=AS_OF)
    assert (alone.run.customers_total, alone.run.customers_scored) == (12, 10)
    assert _counts(tenant_b) == dict.fromkeys(
        ["SegmentationSettings", "SegmentRule", "SegmentRun", "CustomerSegment", "SegmentChange", "events"], 0
    )
    scores_a = _scores(tenant_a)
    assert set(scores_a) == {c.id for c in hand.values()}
    assert scores_a[hand["A"].id] == (5, 5, 5, "champions")  # not pushed down by B's bigger customers
    counts_a = _counts(tenant_a)

    with tenant_context(tenant_b):
        result_b = rfm_recompute(tenant=tenant_b, as_of=AS_OF + timedelta(days=3))
    assert (result_b.run.customers_total, result_b.run.customers_scored) == (15, 15)
    assert set(_scores(tenant_b)) == {c.id for c in big_spenders_b.values()}
    # B's run (as of a later date) neither rewrote A's segments nor added A history, runs or events.
    assert _scores(tenant_a) == scores_a
    assert _counts(tenant_a) == counts_a
    with all_tenants_context():
        assert not SegmentChange.objects.filter(tenant=tenant_b, customer__tenant=tenant_a).exists()
        assert set(
            CustomerSegment.objects.filter(tenant=tenant_b).values_list("customer__tenant", flat=True)
        ) == {tenant_b.slug}


def test_the_scoring_statement_is_bound_by_row_level_security_alone(tenant_a, tenant_b, hand, big_spenders_b):
    """The statement names no tenant when it reads: what it sees is what the database's policy lets it see."""
    sql = scoring_sql(" SELECT count(*) FROM scored WHERE bought")
    zone = ZoneInfo("UTC")
    params = {
        "tz": "UTC",
        "as_of": AS_OF,
        "cutoff": datetime.combine(AS_OF + timedelta(days=1), time.min, tzinfo=zone),
        "window_start": datetime.combine(AS_OF - timedelta(days=364), time.min, tzinfo=zone),
    }

    def scored() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    assert scored() == 0  # no tenant set: nothing visible
    with tenant_context(tenant_a):
        assert scored() == 10
    with tenant_context(tenant_b):
        assert scored() == 15
    with all_tenants_context():
        assert scored() == 25


def test_the_database_refuses_a_segment_row_for_another_tenant(tenant_a, tenant_b, hand, big_spenders_b):
    from django.db import DatabaseError, transaction

    with tenant_context(tenant_a):
        run = rfm_recompute(tenant=tenant_a, as_of=AS_OF).run
        customer_b = next(iter(big_spenders_b.values()))
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            CustomerSegment.objects.create(
                tenant_id=tenant_b.slug,
                customer_id=customer_b.id,
                segment="lost",
                segment_since=AS_OF,
                updated_at=run.finished_at,
            )
