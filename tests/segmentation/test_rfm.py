"""The nightly RFM job: scores and segments computed by hand (ties included), history and events only on change,
idempotence per as-of date, rule versions, cache invalidation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.errors import Conflict
from core.models import OutboxEvent
from core.outbox import outbox_record
from core.tenancy import tenant_context
from customers.cache import customer_snapshot_generation, customer_snapshot_get, customer_snapshot_set
from segmentation.models import (
    CustomerSegment,
    SegmentationSettings,
    SegmentChange,
    SegmentRule,
    SegmentRun,
    VipRule,
)
from segmentation.rules import DEFAULT_RULES, uncovered_cells
from segmentation.services import rfm_recompute, segment_rules_changed, segmentation_settings_ensure
from tests.factories import CustomerFactory
from tests.segmentation.conftest import AS_OF
from tests.segmentation.factories import purchase

pytestmark = pytest.mark.django_db

SEGMENT_EVENT = "customer.segment.changed"


def run(tenant: Any, as_of: Any = AS_OF) -> Any:
    with tenant_context(tenant):
        return rfm_recompute(tenant=tenant, as_of=as_of, triggered_by="test")


def current(tenant: Any) -> dict[Any, CustomerSegment]:
    with tenant_context(tenant):
        return {row.customer_id: row for row in CustomerSegment.objects.all()}


def events(tenant: Any) -> list[OutboxEvent]:
    with tenant_context(tenant):
        return list(OutboxEvent.objects.filter(event_type=SEGMENT_EVENT).order_by("created_at"))


def tie(people: dict[str, Any], x: str, y: str) -> tuple[str, str]:
    """Ties are broken by customer id: the smaller id gets the lower score."""
    return (x, y) if people[x].id < people[y].id else (y, x)


def test_default_rules_give_every_score_combination_exactly_one_segment() -> None:
    assert uncovered_cells(SegmentRule(**_ranges(spec)) for spec in DEFAULT_RULES) == []
    for r in range(1, 6):
        for f in range(1, 6):
            matching = [s.segment for s in DEFAULT_RULES if s.r[0] <= r <= s.r[1] and s.f[0] <= f <= s.f[1]]
            assert len(matching) == 1, (r, f, matching)
    assert {s.segment for s in DEFAULT_RULES} == {
        "champions",
        "loyal",
        "potential_loyalists",
        "new",
        "promising",
        "need_attention",
        "at_risk",
        "cant_lose",
        "hibernating",
        "lost",
    }


def _ranges(spec: Any) -> dict[str, int]:
    return {
        "r_min": spec.r[0],
        "r_max": spec.r[1],
        "f_min": spec.f[0],
        "f_max": spec.f[1],
        "m_min": spec.m[0],
        "m_max": spec.m[1],
    }


def test_scores_and_segments_match_the_hand_computation_including_ties(tenant_a, hand):
    result = run(tenant_a)
    rows = current(tenant_a)
    lo_fg, hi_fg = tie(hand, "F", "G")  # tied on recency (60 d) and frequency (3) at positions 4 and 5
    lo_hi, hi_hi = tie(hand, "H", "I")  # tied on spend (200) at positions 2 and 3
    expected = {
        # name: (R, F, M, segment, VIP, churn)
        "A": (5, 5, 5, "champions", True, "low"),
        "B": (5, 5, 5, "champions", True, "low"),
        "C": (4, 4, 4, "loyal", False, "low"),
        "D": (4, 4, 4, "loyal", False, "low"),  # 10 d / 7 d = 1.43 <= 1.5
        "E": (3, 3, 3, "need_attention", False, "medium"),  # 20 / 7 = 2.86
        lo_fg: (2, 2, None, "hibernating", False, "high"),
        hi_fg: (3, 3, None, "need_attention", False, "high"),
        "H": (2, 2, None, "hibernating", False, "high"),
        "I": (1, 1, None, "lost", False, "high"),  # one purchase: the tenant's median interval (7 d)
        "J": (1, 1, 1, "lost", False, "low"),  # its own interval is 200 d: 300 / 200 = 1.5
    }
    monetary = {"F": 3, "G": 2, lo_hi: 1, hi_hi: 2}
    for name, (r, f, m, segment, vip, churn) in expected.items():
        row = rows[hand[name].id]
        m = m if m is not None else monetary[name]
        got = (
            row.recency_score,
            row.frequency_score,
            row.monetary_score,
            row.segment,
            row.is_vip,
            row.churn_risk,
        )
        assert got == (r, f, m, segment, vip, churn), name
    for name in ("N1", "N2"):
        row = rows[hand[name].id]
        assert (row.segment, row.recency_score, row.frequency_score, row.monetary_score) == (
            "no_purchases",
            0,
            0,
            0,
        )
        assert (row.is_vip, row.churn_risk) == (False, "")

    run_row = result.run
    assert result.created is True
    assert (run_row.as_of, run_row.rule_version, run_row.window_days) == (AS_OF, 1, 365)
    assert (run_row.customers_total, run_row.customers_scored, run_row.vip_count) == (12, 10, 2)
    assert run_row.distribution == {
        "champions": 2,
        "hibernating": 2,
        "lost": 2,
        "loyal": 2,
        "need_attention": 2,
        "no_purchases": 2,
    }
    assert run_row.churn_distribution == {"high": 4, "low": 5, "medium": 1}
    assert [rule["segment"] for rule in run_row.rules["rules"]] == [s.segment for s in DEFAULT_RULES]


def test_ties_are_split_the_same_way_on_every_run(tenant_a, hand):
    run(tenant_a)
    first = {k: (v.recency_score, v.frequency_score, v.monetary_score) for k, v in current(tenant_a).items()}
    with tenant_context(tenant_a):
        CustomerSegment.objects.all().delete()
        SegmentChange.objects.all().delete()
        SegmentRun.objects.all().delete()
    run(tenant_a)
    again = {k: (v.recency_score, v.frequency_score, v.monetary_score) for k, v in current(tenant_a).items()}
    assert again == first


def test_history_rows_carry_the_reason_of_each_change(tenant_a, hand):
    result = run(tenant_a)
    with tenant_context(tenant_a):
        change = SegmentChange.objects.get(customer=hand["J"])
    assert (change.old_segment, change.new_segment) == ("unclassified", "lost")
    assert (change.as_of, change.rule_version, change.run_id) == (AS_OF, 1, result.run.pk)
    assert (change.recency_score, change.frequency_score, change.monetary_score) == (1, 1, 1)
    # The purchase 500 days ago is outside the 365-day window: not in frequency or spend.
    assert (change.recency_days, change.frequency, str(change.monetary)) == (300, 1, "100.00")
    assert "R1 F1 M1" in change.reason and "rule version 1" in change.reason


def test_a_change_emits_one_event_in_the_outbox_envelope(tenant_a, hand):
    run(tenant_a)
    recorded = events(tenant_a)
    assert len(recorded) == 12  # every customer went from "unclassified" to a segment
    with tenant_context(tenant_a):
        changes = {c.customer_id: c for c in SegmentChange.objects.all()}
        reference = outbox_record(
            tenant_id=tenant_a.slug, event_type="customer.updated", data={"customer_id": "x"}
        ).payload
    event = next(e for e in recorded if e.aggregate_id == str(hand["A"].id))
    envelope = event.payload
    assert set(envelope) == set(reference)
    assert envelope["event_id"] == str(event.event_id) == str(changes[hand["A"].id].event_id)
    assert envelope["event_type"] == SEGMENT_EVENT == event.event_type
    assert envelope["tenant_id"] == tenant_a.slug == event.tenant_id
    assert envelope["version"] == reference["version"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", envelope["occurred_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", reference["occurred_at"])
    assert datetime.fromisoformat(envelope["occurred_at"]) == event.occurred_at
    assert envelope["data"] == {
        "customer_id": str(hand["A"].id),
        "old_segment": "unclassified",
        "new_segment": "champions",
        "recency_score": 5,
        "frequency_score": 5,
        "monetary_score": 5,
        "is_vip": True,
        "churn_risk": "low",
        "as_of": AS_OF.isoformat(),
        "rule_version": 1,
        "run_id": changes[hand["A"].id].run_id,
    }
    assert event.published_at is None and event.attempts == 0


def test_the_same_as_of_date_twice_changes_nothing_the_second_time(tenant_a, hand):
    first = run(tenant_a)
    before = {k: (v.segment, v.updated_at, v.segment_since) for k, v in current(tenant_a).items()}
    n_events = len(events(tenant_a))
    second = run(tenant_a)
    assert second.created is False and second.run.pk == first.run.pk
    assert {k: (v.segment, v.updated_at, v.segment_since) for k, v in current(tenant_a).items()} == before
    assert len(events(tenant_a)) == n_events
    with tenant_context(tenant_a):
        assert SegmentRun.objects.count() == 1
        assert SegmentChange.objects.count() == 12


def test_a_later_run_without_segment_changes_emits_nothing(tenant_a, hand):
    run(tenant_a)
    n_events = len(events(tenant_a))
    result = run(tenant_a, AS_OF + timedelta(days=1))
    # One day later everybody's recency grows alike: the same scores and segments. D (11/7 d) and J (301/200 d)
    # cross the medium churn threshold: their rows are rewritten, but their segment is the same.
    assert (result.run.segment_changes, result.run.rows_written) == (0, 2)
    assert len(events(tenant_a)) == n_events
    rows = current(tenant_a)
    assert rows[hand["D"].id].churn_risk == rows[hand["J"].id].churn_risk == "medium"
    assert rows[hand["D"].id].segment_since == AS_OF  # still the date it entered "loyal"


def test_events_and_history_exactly_for_the_customers_whose_segment_changed(tenant_a, hand):
    run(tenant_a)
    before = {k: v.segment for k, v in current(tenant_a).items()}
    n_events = len(events(tenant_a))
    purchase(tenant_a, hand["I"], "50", AS_OF + timedelta(days=2))  # I comes back
    later = AS_OF + timedelta(days=2)
    result = run(tenant_a, later)
    after = {k: v.segment for k, v in current(tenant_a).items()}
    moved = {k for k in after if after[k] != before[k]}
    assert hand["I"].id in moved and before[hand["I"].id] == "lost"

    new_events = events(tenant_a)[n_events:]
    assert {e.payload["data"]["customer_id"] for e in new_events} == {str(k) for k in moved}
    assert len(new_events) == len(moved) == result.run.segment_changes
    with tenant_context(tenant_a):
        history = list(SegmentChange.objects.filter(run=result.run))
    assert {(h.customer_id, h.old_segment, h.new_segment) for h in history} == {
        (k, before[k], after[k]) for k in moved
    }
    assert all(h.as_of == later for h in history)
    for event in new_events:
        data = event.payload["data"]
        key = hand_id(hand, data["customer_id"])
        assert (data["old_segment"], data["new_segment"]) == (before[key], after[key])


def hand_id(hand: dict[str, Any], customer_id: str) -> Any:
    return next(c.id for c in hand.values() if str(c.id) == customer_id)


def test_a_run_as_of_an_earlier_date_than_the_latest_is_refused(tenant_a, hand):
    run(tenant_a)
    with pytest.raises(Conflict) as raised:
        run(tenant_a, AS_OF - timedelta(days=1))
    assert raised.value.code == "rfm_as_of_before_latest_run"


def test_changing_the_rules_bumps_the_version_and_recomputes_the_same_as_of(tenant_a, hand):
    run(tenant_a)
    with tenant_context(tenant_a):
        # A rule ahead of the others: the top spenders are "whales", whatever their R and F.
        SegmentRule.objects.create(tenant=tenant_a, priority=1, segment="whales", label="Whales", m_min=5)
        assert segment_rules_changed() == 2
    result = run(tenant_a)
    assert result.created is True and result.run.rule_version == 2
    rows = current(tenant_a)
    assert rows[hand["A"].id].segment == rows[hand["B"].id].segment == "whales"
    assert result.run.segment_changes == 2
    with tenant_context(tenant_a):
        change = SegmentChange.objects.get(customer=hand["A"], run=result.run)
    assert (change.old_segment, change.new_segment, change.rule_version) == ("champions", "whales", 2)


def test_vip_by_top_share_of_lifetime_value(tenant_a, hand):
    with tenant_context(tenant_a):
        config = segmentation_settings_ensure()
        SegmentationSettings.objects.filter(pk=config.pk).update(
            vip_rule=VipRule.TOP_PERCENT, vip_top_percent=10
        )
    result = run(tenant_a)
    rows = current(tenant_a)
    # 10 % of 10 buyers: one, the largest lifetime value: J (5,000 before the window + 100 in it).
    assert [name for name, c in hand.items() if rows[c.id].is_vip] == ["J"]
    assert result.run.vip_count == 1


def cache_snapshots(tenant: Any, customers: Any) -> None:
    for customer in customers:
        generation = customer_snapshot_generation(tenant.slug, customer.id)
        customer_snapshot_set(tenant.slug, customer.id, b"cached", generation=generation)


def is_cached(tenant: Any, customer: Any) -> bool:
    return customer_snapshot_get(tenant.slug, customer.id).data == b"cached"


def test_changed_customers_are_dropped_from_the_customer_cache_after_commit(
    tenant_a, hand, django_capture_on_commit_callbacks, clear_cache
):
    run(tenant_a)
    cache_snapshots(tenant_a, hand.values())
    purchase(tenant_a, hand["I"], "50", AS_OF + timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = run(tenant_a, AS_OF + timedelta(days=2))
    assert all(is_cached(tenant_a, c) for c in hand.values())  # nothing dropped before the commit
    for callback in callbacks:
        callback()
    with tenant_context(tenant_a):
        moved = set(SegmentChange.objects.filter(run=result.run).values_list("customer_id", flat=True))
    assert moved and len(callbacks) == len(moved)
    for name, customer in hand.items():
        assert is_cached(tenant_a, customer) == (customer.id not in moved), name


def test_many_changes_drop_the_tenants_cache_at_once(
    tenant_a, tenant_b, hand, settings, django_capture_on_commit_callbacks, clear_cache
):
    settings.SEGMENTATION_CACHE_BULK_THRESHOLD = 3
    cache_snapshots(tenant_a, hand.values())
    customer_b = CustomerFactory(tenant=tenant_b)
    cache_snapshots(tenant_b, [customer_b])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run(tenant_a)
    assert len(callbacks) == 1  # one tenant-wide invalidation, not one per customer
    assert not any(is_cached(tenant_a, c) for c in hand.values())
    assert is_cached(tenant_b, customer_b)


def test_rfm_recompute_refuses_to_run_in_another_tenants_context(tenant_a, tenant_b, hand):
    with tenant_context(tenant_b), pytest.raises(RuntimeError):
        rfm_recompute(tenant=tenant_a, as_of=AS_OF)
