"""The nightly jobs, driven by the controllable clock: each iterates tenants and handles each due customer in
its own tenant context; running one twice changes nothing the second time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import clock
from loyalty import tasks
from loyalty.schedule import BEAT_SCHEDULE
from loyalty.services import tier_override_set

pytestmark = pytest.mark.django_db


def test_the_schedule_names_the_three_jobs():
    assert {entry["task"] for entry in BEAT_SCHEDULE.values()} == {
        "loyalty.expire_points",
        "loyalty.release_pending_points",
        "loyalty.review_tiers",
    }
    from config.celery import app

    app.loader.import_default_modules()
    assert {"loyalty.expire_points", "loyalty.release_pending_points", "loyalty.review_tiers"} <= set(
        app.tasks
    )


def test_expiry_runs_for_every_tenant_once(customer_a, customer_b, earn, frozen_clock, account_of):
    earn(customer_a, "100.00")
    earn(customer_b, "200.00")
    assert tasks.expire_points() == {}
    frozen_clock(days=370)
    assert tasks.expire_points() == {
        "tenant-a": {"done": 1, "failed": 0},
        "tenant-b": {"done": 1, "failed": 0},
    }
    assert tasks.expire_points() == {}
    assert (account_of(customer_a).expired, account_of(customer_b).expired) == (100, 200)


def test_pending_release_runs_when_the_window_has_passed(
    customer_a, tenant_a, program_for, earn, frozen_clock, account_of
):
    program_for(tenant_a, pending_days=14)
    earn(customer_a, "1000.00")
    frozen_clock(days=10)
    assert tasks.release_pending_points() == {}
    frozen_clock(days=5)
    assert tasks.release_pending_points() == {"tenant-a": {"done": 1, "failed": 0}}
    account = account_of(customer_a)
    assert (account.available, account.pending, account.tier) == (1000, 0, "silver")


def test_tier_review_applies_the_policy_and_ends_overrides(
    customer_a, customer_b, earn, in_tenant, frozen_clock, account_of
):
    earn(customer_a, "5000.00")
    with in_tenant(customer_b.tenant_id):
        tier_override_set(
            customer=customer_b,
            tier="gold",
            expires_at=clock.now() + timedelta(days=30),
            reason="x",
            actor="s",
        )
    frozen_clock(days=40)
    assert tasks.review_tiers() == {"tenant-b": {"done": 1, "failed": 0}}
    frozen_clock(days=340)
    assert tasks.review_tiers() == {"tenant-a": {"done": 1, "failed": 0}}
    assert (account_of(customer_a).tier, account_of(customer_b).tier) == ("silver", "bronze")
