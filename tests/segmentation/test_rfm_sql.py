"""The job's statement against real PostgreSQL: set-based (a fixed number of statements however many customers), an
incremental night gives what a run from scratch gives, and the database refuses rows naming another tenant's
customer (the composite foreign keys the job's writes are checked with)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.tenancy import tenant_context
from segmentation.models import CustomerSegment, SegmentChange, SegmentRun
from segmentation.services import rfm_recompute
from tests.factories import CustomerFactory
from tests.segmentation.conftest import AS_OF, HAND_FIXTURE, make_customers, seed_hand_fixture
from tests.segmentation.factories import purchase, purchases

pytestmark = pytest.mark.django_db

WRITES = re.compile(
    r"\b(INSERT INTO|UPDATE)\s+\"?(segmentation_customersegment|segmentation_segmentchange|core_outboxevent)\b"
)


def _run_captured(tenant: Any, as_of: Any = AS_OF) -> list[str]:
    with tenant_context(tenant), CaptureQueriesContext(connection) as captured:
        rfm_recompute(tenant=tenant, as_of=as_of, triggered_by="test")
    return [query["sql"] for query in captured.captured_queries]


def _current(tenant: Any) -> dict[Any, tuple[Any, ...]]:
    with tenant_context(tenant):
        return {
            row.customer_id: (
                row.segment,
                row.recency_score,
                row.frequency_score,
                row.monetary_score,
                row.is_vip,
                row.churn_risk,
            )
            for row in CustomerSegment.objects.all()
        }


def test_the_job_sends_the_same_statements_whatever_the_number_of_customers(tenant_a, tenant_b):
    seed_hand_fixture(tenant_a)  # 12 customers
    people = make_customers(tenant_b, [f"P{i}" for i in range(30)])
    for i, customer in enumerate(people.values()):
        purchases(
            tenant_b, customer, last=AS_OF - timedelta(days=i + 1), n=1 + i % 4, total=str(100 + 10 * i)
        )

    small, large = _run_captured(tenant_a), _run_captured(tenant_b)

    assert len(small) == len(large)
    # Every row the job writes (segments, history, events) is written by one statement, the scoring one.
    for statements in (small, large):
        writing = [sql for sql in statements if WRITES.search(sql)]
        assert len(writing) == 1 and "ntile(5)" in writing[0]


def test_an_incremental_night_equals_a_run_from_scratch(tenant_a):
    people = seed_hand_fixture(tenant_a)
    rfm_run = lambda as_of: _run_captured(tenant_a, as_of)  # noqa: E731
    rfm_run(AS_OF)
    # Over the next nights some customers come back, one new customer buys, and one changes only its churn risk.
    later = AS_OF + timedelta(days=3)
    purchase(tenant_a, people["I"], "50", AS_OF + timedelta(days=1))
    purchase(tenant_a, people["N1"], "3000", AS_OF + timedelta(days=2))
    purchase(tenant_a, people["H"], "10", later)
    newcomer = CustomerFactory(tenant=tenant_a, first_name="New")
    purchase(tenant_a, newcomer, "75", later)
    rfm_run(AS_OF + timedelta(days=1))
    rfm_run(later)
    incremental = _current(tenant_a)
    with tenant_context(tenant_a):
        latest = SegmentRun.objects.get(as_of=later)
        assert latest.rows_written > 0

    with tenant_context(tenant_a):
        SegmentChange.objects.all().delete()
        CustomerSegment.objects.all().delete()
        SegmentRun.objects.all().delete()
    rfm_run(later)

    assert _current(tenant_a) == incremental
    assert len(incremental) == len(HAND_FIXTURE) + 3  # the ten buyers, N1, N2 and the newcomer


def _immediately(write: Any) -> None:
    """Run `write` with the (deferred) foreign keys checked at once, inside a savepoint the refusal rolls back."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        write()


def test_the_database_refuses_segment_rows_naming_another_tenants_customer(tenant_a, tenant_b):
    theirs = CustomerFactory(tenant=tenant_b)
    ours = CustomerFactory(tenant=tenant_a)
    now = timezone.now()
    with tenant_context(tenant_a):
        run = SegmentRun.objects.create(
            tenant=tenant_a, as_of=AS_OF, rule_version=1, window_days=365, started_at=now, finished_at=now
        )

        def segment(customer: Any) -> None:
            CustomerSegment.objects.create(
                tenant=tenant_a, customer=customer, segment="lost", segment_since=AS_OF, updated_at=now
            )

        def change(customer: Any) -> None:
            SegmentChange.objects.create(
                tenant=tenant_a,
                customer=customer,
                run=run,
                as_of=AS_OF,
                rule_version=1,
                old_segment="unclassified",
                new_segment="lost",
                recency_score=1,
                frequency_score=1,
                monetary_score=1,
                event_id="00000000-0000-7000-8000-000000000000",
                created_at=now,
            )

        for write in (segment, change):
            with pytest.raises(IntegrityError, match="tenant_customer_fk"):
                _immediately(lambda write=write: write(theirs))
            _immediately(lambda write=write: write(ours))
        assert CustomerSegment.objects.get().customer_id == ours.id
        assert SegmentChange.objects.get().customer_id == ours.id


def test_the_event_envelope_is_valid_json_whatever_the_segment_name(tenant_a):
    from core.models import OutboxEvent
    from segmentation.models import SegmentRule
    from segmentation.services import segment_rules_changed, segmentation_settings_ensure

    people = seed_hand_fixture(tenant_a)
    odd = 'top "spenders" \\ ñ'  # not a slug: the database does not insist, the envelope must still be right
    with tenant_context(tenant_a):
        segmentation_settings_ensure()
        SegmentRule.objects.create(tenant=tenant_a, priority=1, segment=odd, m_min=5)
        segment_rules_changed()
    _run_captured(tenant_a)
    with tenant_context(tenant_a):
        event = OutboxEvent.objects.get(
            aggregate_id=str(people["A"].id), event_type="customer.segment.changed"
        )
    assert event.payload["data"]["new_segment"] == odd
    assert event.payload["data"]["old_segment"] == "unclassified"
    assert event.payload["event_id"] == str(event.event_id)
    assert event.payload["tenant_id"] == tenant_a.slug


def test_deleting_a_run_through_the_orm_still_deletes_its_changes(tenant_a):
    seed_hand_fixture(tenant_a)
    _run_captured(tenant_a)
    with tenant_context(tenant_a):
        assert SegmentChange.objects.count() == 12
        SegmentRun.objects.get().delete()
        assert not SegmentChange.objects.exists()


def test_the_current_segments_leave_room_on_each_page_for_hot_updates():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'segmentation_customersegment'")
        [(options,)] = cursor.fetchall()
    assert "fillfactor=90" in options
