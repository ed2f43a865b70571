"""Overdue: the nightly job marks charges overdue and, past the grace period, holds the line; paying up releases
it. Driven by the credit clock, never by sleeping."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core.tenancy import tenant_context
from credit import services
from credit.errors import CreditOnHold
from credit.models import CreditCharge, CreditLine, CreditLineChange
from credit.tasks import credit_holds_expire_task, credit_overdue_task
from tests.credit.conftest import T0
from tests.credit.factories import APPROVER, credit_line_approved

pytestmark = pytest.mark.django_db

D = Decimal


def line_status(line):
    with tenant_context(line.tenant_id):
        return CreditLine.objects.get(pk=line.pk).status


def run_job(tenant):
    with tenant_context(tenant):
        return services.credit_overdue_process()


def test_overdue_hold_and_release(business_a, approved_line, clock_at, settings, invalidations):
    settings.CREDIT_OVERDUE_GRACE_DAYS = 5
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("400"), order_id="A")  # due T0 + 30 days
        services.credit_use(customer=business_a, amount=D("100"), order_id="B")

    clock_at(T0 + timedelta(days=30))  # due today: not overdue yet
    assert run_job(business_a.tenant).charges_marked_overdue == 0

    clock_at(T0 + timedelta(days=31))
    result = run_job(business_a.tenant)
    assert (result.charges_marked_overdue, result.lines_put_on_hold) == (2, 0)
    assert line_status(approved_line) == "approved"  # within the grace period uses still pass
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("10"), order_id="C")
        assert set(CreditCharge.objects.values_list("order_id", "status")) == {
            ("A", "overdue"),
            ("B", "overdue"),
            ("C", "open"),
        }

    clock_at(T0 + timedelta(days=36))  # 6 days overdue > 5 days of grace
    invalidations.clear()
    assert run_job(business_a.tenant).lines_put_on_hold == 1
    assert line_status(approved_line) == "on_hold"
    assert (business_a.tenant_id, str(business_a.id)) in invalidations
    with tenant_context(business_a.tenant_id):
        with pytest.raises(CreditOnHold) as exc:
            services.credit_use(customer=business_a, amount=D("1"), order_id="D")
        assert exc.value.code == "credit_on_hold"
        assert services.credit_check(customer=business_a, amount=D("1")).reason == "credit_on_hold"
        # A partial payment that leaves an overdue charge keeps the hold...
        paid = services.payment_record(customer=business_a, payment_id="P1", amount=D("450"))
        assert paid.line_status == "on_hold"
    assert line_status(approved_line) == "on_hold"
    with tenant_context(business_a.tenant_id):
        # ...paying the rest of what is overdue releases it at once, without waiting for the job.
        paid = services.payment_record(customer=business_a, payment_id="P2", amount=D("50"))
        assert paid.line_status == "approved"
        services.credit_use(customer=business_a, amount=D("1"), order_id="D")
        actions = list(CreditLineChange.objects.filter(line=approved_line).values_list("action", "actor"))
    assert actions[-2:] == [("put_on_hold", "system:overdue"), ("hold_released", "system:payment")]
    assert line_status(approved_line) == "approved"


def test_cancelling_the_overdue_charge_also_releases_the_hold(business_a, approved_line, clock_at, settings):
    settings.CREDIT_OVERDUE_GRACE_DAYS = 0
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("400"), order_id="A")
    clock_at(T0 + timedelta(days=31))
    run_job(business_a.tenant)
    assert line_status(approved_line) == "on_hold"
    with tenant_context(business_a.tenant_id):
        services.credit_charge_cancel(customer=business_a, order_id="A", reason="credit note")
    assert line_status(approved_line) == "approved"


def test_a_suspended_line_stays_suspended_and_reinstating_puts_it_on_hold(
    business_a, approved_line, clock_at, settings
):
    settings.CREDIT_OVERDUE_GRACE_DAYS = 0
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("400"), order_id="A")
        services.credit_line_suspend(line=approved_line, actor=APPROVER, reason="review")
    clock_at(T0 + timedelta(days=31))
    run_job(business_a.tenant)
    assert line_status(approved_line) == "suspended"
    with tenant_context(business_a.tenant_id):
        services.credit_line_reinstate(line=approved_line, actor=APPROVER)
    assert line_status(approved_line) == "on_hold"


def test_the_tasks_run_every_tenant_in_its_own_context(
    business_a, business_b, approved_line, clock_at, settings
):
    settings.CREDIT_OVERDUE_GRACE_DAYS = 0
    line_b = credit_line_approved(business_b, limit="100.00", terms=0)
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("10"), order_id="A")
        services.credit_hold_place(customer=business_a, amount=D("20"), order_id="H")
    with tenant_context(business_b.tenant_id):
        services.credit_use(customer=business_b, amount=D("10"), order_id="A")
    clock_at(T0 + timedelta(days=31))
    overdue = credit_overdue_task()
    assert overdue[business_a.tenant_id]["lines_put_on_hold"] == 1
    assert overdue[business_b.tenant_id]["lines_put_on_hold"] == 1
    assert line_status(approved_line) == line_status(line_b) == "on_hold"
    assert credit_holds_expire_task() == {
        business_a.tenant_id: {"holds_expired": 1, "lines_failed": 0},
        business_b.tenant_id: {"holds_expired": 0, "lines_failed": 0},
    }
    with tenant_context(business_a.tenant_id):
        assert CreditLine.objects.get(pk=approved_line.pk).exposure == D("10")


def test_the_beat_schedule_declares_both_jobs():
    from django.conf import settings

    from credit.schedule import beat_schedule

    schedule = beat_schedule({"CREDIT_HOLD_EXPIRY_INTERVAL_SECONDS": 300.0})
    tasks = {entry["task"] for entry in schedule.values()}
    assert tasks == {"credit.overdue_process", "credit.holds_expire"}

    assert {"credit.overdue", "credit.holds-expire"} <= set(settings.CELERY_BEAT_SCHEDULE)


@pytest.mark.django_db(transaction=True)
def test_the_jobs_commit_line_by_line_so_one_failing_line_undoes_nothing_else(
    tenant_a, clock_at, settings, monkeypatch
):
    """Each line is its own short transaction: locked only while it is processed, and a line that fails (logged)
    neither rolls back nor blocks the other lines of its tenant."""
    from tests.factories import BusinessCustomerFactory

    settings.CREDIT_OVERDUE_GRACE_DAYS = 0
    customers = [BusinessCustomerFactory(tenant=tenant_a) for _ in range(3)]
    lines = sorted((credit_line_approved(c, terms=0) for c in customers), key=lambda line: line.pk)
    with tenant_context(tenant_a):
        for i, line in enumerate(lines):
            services.credit_use(customer=line.customer, amount=D("10"), order_id=f"O-{i}")
            services.credit_hold_place(customer=line.customer, amount=D("5"), order_id=f"H-{i}")
    broken = lines[1].pk
    real_process, real_expire = services.credit_line_overdue_process, services.credit_line_holds_expire

    # The broken line fails after its work was done: what it did must roll back with its own transaction.
    def process(*, line_id, **kwargs):
        result = real_process(line_id=line_id, **kwargs)
        if line_id == broken:
            raise RuntimeError("a line the job cannot process")
        return result

    def expire(*, line_id, **kwargs):
        result = real_expire(line_id=line_id, **kwargs)
        if line_id == broken:
            raise RuntimeError("a line the job cannot process")
        return result

    monkeypatch.setattr(services, "credit_line_overdue_process", process)
    monkeypatch.setattr(services, "credit_line_holds_expire", expire)
    clock_at(T0 + timedelta(days=2))
    overdue = credit_overdue_task()[tenant_a.slug]
    assert (overdue["lines_put_on_hold"], overdue["lines_failed"]) == (2, 1)
    assert [line_status(line) for line in lines] == ["on_hold", "approved", "on_hold"]
    with tenant_context(tenant_a):
        # The failed line's charge was not half-processed either: its own transaction rolled back.
        assert CreditCharge.objects.get(line_id=broken).status == "open"
    assert credit_holds_expire_task()[tenant_a.slug] == {"holds_expired": 2, "lines_failed": 1}
    with tenant_context(tenant_a):
        exposures = [CreditLine.objects.get(pk=line.pk).exposure for line in lines]
    assert exposures == [D("10"), D("15"), D("10")]
