"""Credit services: the lifecycle of a line, checks, holds, uses, payments and cancellations, on real PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from core import clock
from core.errors import IdempotencyKeyReused, InvalidAmount, InvalidCurrency
from core.models import OutboxEvent
from core.tenancy import tenant_context
from credit import selectors, services
from credit.errors import (
    CreditBusinessOnly,
    CreditChargeNotCancellable,
    CreditHoldExists,
    CreditLimitExceeded,
    CreditLineExists,
    CreditLineHasExposure,
    CreditLineNotActive,
    CreditLineNotFound,
    CreditLineTransitionInvalid,
    CreditOrderAlreadyCharged,
    InvalidPaymentTerms,
    SelfApprovalForbidden,
)
from credit.models import (
    CreditCharge,
    CreditHold,
    CreditLedgerEntry,
    CreditLine,
    CreditLineChange,
)
from customers.errors import CustomerBlocked
from tests.credit.conftest import T0
from tests.credit.factories import APPROVER, REQUESTER, credit_line_approved, credit_line_requested

pytestmark = pytest.mark.django_db

D = Decimal


def events(tenant, event_type):
    with tenant_context(tenant):
        return [e.payload for e in OutboxEvent.objects.filter(event_type=event_type).order_by("created_at")]


def fresh(line):
    with tenant_context(line.tenant_id):
        return CreditLine.objects.get(pk=line.pk)


def ledger_sum(line):
    with tenant_context(line.tenant_id):
        return sum((e.amount for e in CreditLedgerEntry.objects.filter(line_id=line.pk)), D("0"))


# --- Requests and decisions ----------------------------------------------------------------------------------------
def test_request_is_for_business_customers_only(customer_a):
    with pytest.raises(CreditBusinessOnly) as exc, tenant_context(customer_a.tenant_id):
        services.credit_line_request(
            customer=customer_a, requested_limit=D("100"), payment_terms_days=30, requested_by="api:x"
        )
    assert exc.value.code == "credit_business_only"


def test_request_records_history_and_one_open_line_per_customer(business_a, tenant_a):
    line = credit_line_requested(business_a, limit="5000.00", terms=60)
    assert (line.status, line.requested_limit, line.payment_terms_days) == ("requested", D("5000.00"), 60)
    assert line.currency == tenant_a.currency
    assert line.requested_by == REQUESTER
    with tenant_context(tenant_a):
        [change] = CreditLineChange.objects.filter(line=line)
        assert (change.action, change.to_status, change.actor) == ("requested", "requested", REQUESTER)
        with pytest.raises(CreditLineExists):
            services.credit_line_request(
                customer=business_a, requested_limit=D("1"), payment_terms_days=30, requested_by="api:y"
            )


@pytest.mark.parametrize("terms", [-1, 366, "abc", 1.5, True])
def test_request_refuses_bad_terms(business_a, terms):
    with pytest.raises(InvalidPaymentTerms), tenant_context(business_a.tenant_id):
        services.credit_line_request(
            customer=business_a, requested_limit=D("10"), payment_terms_days=terms, requested_by="api:x"
        )


def test_nobody_approves_their_own_request(business_a):
    line = credit_line_requested(business_a, requested_by="admin:alice")
    with pytest.raises(SelfApprovalForbidden) as exc, tenant_context(business_a.tenant_id):
        services.credit_line_approve(line=line, decided_by="ADMIN:Alice ")
    assert exc.value.code == "self_approval_forbidden"
    assert fresh(line).status == "requested"


def test_approve_sets_limit_terms_history_event_and_invalidates_the_cache(business_a, invalidations):
    line = credit_line_requested(business_a, limit="5000.00", terms=30)
    with tenant_context(business_a.tenant_id):
        services.credit_line_approve(
            line=line, decided_by=APPROVER, approved_limit=D("4000"), payment_terms_days=60, comment="fine"
        )
    line = fresh(line)
    assert (line.status, line.approved_limit, line.payment_terms_days) == ("approved", D("4000.00"), 60)
    assert (line.decided_by, line.decision_comment) == (APPROVER, "fine")
    with tenant_context(business_a.tenant_id):
        actions = list(
            CreditLineChange.objects.filter(line=line).values_list("action", "from_limit", "to_limit")
        )
    assert actions == [("requested", None, D("0.00")), ("approved", D("0.00"), D("4000.00"))]
    [event] = events(business_a.tenant, "credit.approved")
    assert event["data"]["customer_id"] == str(business_a.id)
    assert event["data"]["credit_limit"] == "4000.00"
    assert event["data"]["payment_terms_days"] == 60
    assert (business_a.tenant_id, str(business_a.id)) in invalidations


def test_reject_needs_a_reason_and_only_a_request_can_be_decided(business_a):
    line = credit_line_requested(business_a)
    with tenant_context(business_a.tenant_id):
        with pytest.raises(Exception) as exc:
            services.credit_line_reject(line=line, decided_by=APPROVER, reason="  ")
        assert exc.value.code == "reason_required"
        services.credit_line_reject(line=line, decided_by=APPROVER, reason="No trade references")
        with pytest.raises(CreditLineTransitionInvalid):
            services.credit_line_approve(line=line, decided_by=APPROVER)
    line = fresh(line)
    assert (line.status, line.status_reason) == ("rejected", "No trade references")
    with tenant_context(business_a.tenant_id):
        # A rejected request is history: the customer may ask again.
        again = services.credit_line_request(
            customer=business_a, requested_limit=D("10"), payment_terms_days=30, requested_by="api:x"
        )
    assert again.status == "requested"


def test_suspend_reinstate_and_close(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        services.credit_line_suspend(line=approved_line, actor=APPROVER, reason="risk review")
        with pytest.raises(CreditLineNotActive):
            services.credit_use(customer=business_a, amount=D("1"), order_id="o-1")
        services.credit_line_reinstate(line=approved_line, actor=APPROVER)
        services.credit_use(customer=business_a, amount=D("10"), order_id="o-2")
        with pytest.raises(CreditLineHasExposure):
            services.credit_line_close(line=approved_line, actor=APPROVER, reason="customer left")
        services.payment_record(customer=business_a, payment_id="p-1", amount=D("10"))
        services.credit_line_close(line=approved_line, actor=APPROVER, reason="customer left")
        actions = list(CreditLineChange.objects.filter(line=approved_line).values_list("action", flat=True))
    assert actions == ["requested", "approved", "suspended", "reinstated", "closed"]
    assert fresh(approved_line).status == "closed"


# --- Check -------------------------------------------------------------------------------------------------------
def test_check_reports_without_changing_anything(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        ok = services.credit_check(customer=business_a, amount=D("999.99"))
        too_much = services.credit_check(customer=business_a, amount=D("1000.01"))
    assert ok.available is True and ok.reason == ""
    assert (ok.credit_limit, ok.used, ok.available_amount, ok.currency) == (
        D("1000"),
        D("0"),
        D("1000"),
        "CLP",
    )
    assert (ok.status, ok.payment_terms_days) == ("approved", 30)
    assert (too_much.available, too_much.reason) == (False, "credit_limit_exceeded")
    assert fresh(approved_line).exposure == 0


def test_check_of_a_request_and_of_a_customer_without_a_line(business_a, customer_a):
    credit_line_requested(business_a)
    with tenant_context(business_a.tenant_id):
        result = services.credit_check(customer=business_a, amount=D("1"))
        assert (result.available, result.status, result.reason) == (
            False,
            "requested",
            "credit_line_not_active",
        )
        # No line is an answer ("may not buy on credit"), not "not found".
        none = services.credit_check(customer=customer_a, amount=D("1"))
        assert (none.available, none.status, none.reason, none.credit_limit) == (
            False,
            "",
            "no_credit_line",
            D("0"),
        )
        with pytest.raises(InvalidAmount):
            services.credit_check(customer=business_a, amount=D("-1"))


# --- Use -----------------------------------------------------------------------------------------------------------
def test_use_charges_the_order_due_after_the_terms(business_a, approved_line, clock_at, invalidations):
    with tenant_context(business_a.tenant_id):
        result = services.credit_use(
            customer=business_a, amount=D("250.50"), order_id="ORD-1", idempotency_key="k1", actor="api:pos"
        )
    assert result.amount == D("250.50")
    assert result.available_amount == D("749.50")
    assert result.due_date == date(2026, 3, 2) + timedelta(days=30)
    assert (result.currency, result.replayed) == ("CLP", False)
    line = fresh(approved_line)
    assert line.exposure == D("250.50") == ledger_sum(line)
    [event] = events(business_a.tenant, "credit.used")
    assert event["data"]["usage_id"] == str(result.usage_id)
    assert event["data"]["order_id"] == "ORD-1"
    assert event["data"]["available"] == "749.50"
    assert (business_a.tenant_id, str(business_a.id)) in invalidations


def test_a_replayed_order_id_charges_once(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        first = services.credit_use(customer=business_a, amount=D("100"), order_id="ORD-1")
        again = services.credit_use(customer=business_a, amount=D("100"), order_id="ORD-1")
        by_key = services.credit_use(
            customer=business_a, amount=D("50"), order_id="ORD-2", idempotency_key="k"
        )
        by_key_again = services.credit_use(
            customer=business_a, amount=D("50"), order_id="ORD-2", idempotency_key="k"
        )
    assert again.usage_id == first.usage_id and again.replayed
    assert again.available_amount == first.available_amount == D("900")
    assert by_key_again == services.CreditUsageResult(**{**by_key.__dict__, "replayed": True})
    assert fresh(approved_line).exposure == D("150")
    assert len(events(business_a.tenant, "credit.used")) == 2


def test_an_order_id_or_key_reused_with_another_payload_is_refused(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("100"), order_id="ORD-1", idempotency_key="k")
        with pytest.raises(IdempotencyKeyReused) as exc:
            services.credit_use(customer=business_a, amount=D("101"), order_id="ORD-1")
        assert exc.value.code == "idempotency_key_reused"
        with pytest.raises(IdempotencyKeyReused):
            services.credit_use(customer=business_a, amount=D("100"), order_id="ORD-2", idempotency_key="k")
    assert fresh(approved_line).exposure == D("100")


def test_a_use_beyond_the_limit_is_refused_but_recorded(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("600"), order_id="ORD-1")
    with pytest.raises(CreditLimitExceeded) as exc, tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("400.01"), order_id="ORD-2")
    assert exc.value.code == "credit_limit_exceeded"
    # The first use stays; the refused one rolled back and left only its event, written after the rollback.
    assert fresh(approved_line).exposure == D("600")
    with tenant_context(business_a.tenant_id):
        assert not CreditCharge.objects.filter(order_id="ORD-2").exists()
    [event] = events(business_a.tenant, "credit.limit.exceeded")
    assert event["data"] == {
        "credit_line_id": str(approved_line.pk),
        "customer_id": str(business_a.id),
        "order_id": "ORD-2",
        "operation": "use",
        "amount": "400.01",
        "currency": "CLP",
        "credit_limit": "1000.00",
        "used": "600.00",
        "available": "400.00",
    }


def test_use_refusals(business_a, customer_a, approved_line):
    with tenant_context(business_a.tenant_id):
        with pytest.raises(CreditLineNotFound):
            services.credit_use(customer=customer_a, amount=D("1"), order_id="o")
        with pytest.raises(InvalidCurrency):
            services.credit_use(customer=business_a, amount=D("1"), order_id="o", currency="USD")
        with pytest.raises(InvalidAmount):
            services.credit_use(customer=business_a, amount=D("1.001"), order_id="o")
        with pytest.raises(Exception) as exc:
            services.credit_use(customer=business_a, amount=D("1"), order_id="  ")
        assert exc.value.code == "invalid_order_id"
        from customers.services import customer_update

        blocked = customer_update(customer=business_a, data={"status": "blocked"}, actor="t")
        with pytest.raises(CustomerBlocked):
            services.credit_use(customer=blocked, amount=D("1"), order_id="o")


def test_another_tenants_order_ids_are_independent(business_a, business_b, approved_line):
    line_b = credit_line_approved(business_b, limit="10.00")
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("5"), order_id="SAME")
    with tenant_context(business_b.tenant_id):
        services.credit_use(customer=business_b, amount=D("7"), order_id="SAME")
    assert (fresh(approved_line).exposure, fresh(line_b).exposure) == (D("5"), D("7"))


def test_an_order_id_of_another_customer_is_refused(business_a, tenant_a, approved_line):
    from tests.factories import BusinessCustomerFactory

    other = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(other)
    with tenant_context(tenant_a):
        services.credit_use(customer=business_a, amount=D("5"), order_id="ORD-X")
        with pytest.raises(IdempotencyKeyReused):
            services.credit_use(customer=other, amount=D("5"), order_id="ORD-X")


# --- Holds ---------------------------------------------------------------------------------------------------------
def test_a_hold_reserves_credit_and_the_use_converts_it(business_a, approved_line, clock_at):
    with tenant_context(business_a.tenant_id):
        hold = services.credit_hold_place(customer=business_a, amount=D("300"), order_id="ORD-1")
        assert hold.expires_at == clock.now() + services.hold_ttl()
        assert services.credit_check(customer=business_a, amount=D("701")).reason == "credit_limit_exceeded"
        # The same hold again is a replay; another amount for the same order is refused.
        assert services.credit_hold_place(customer=business_a, amount=D("300"), order_id="ORD-1").replayed
        with pytest.raises(CreditHoldExists):
            services.credit_hold_place(customer=business_a, amount=D("301"), order_id="ORD-1")
        # The order is charged for a little more than it held: only the difference must fit.
        used = services.credit_use(customer=business_a, amount=D("320"), order_id="ORD-1")
        assert used.available_amount == D("680")
        assert CreditHold.objects.get(pk=hold.hold_id).status == "converted"
        with pytest.raises(CreditOrderAlreadyCharged):
            services.credit_hold_place(customer=business_a, amount=D("1"), order_id="ORD-1")
    line = fresh(approved_line)
    assert line.exposure == D("320") == ledger_sum(line)


def test_a_hold_beyond_the_limit_is_refused_and_recorded(business_a, approved_line):
    with pytest.raises(CreditLimitExceeded), tenant_context(business_a.tenant_id):
        services.credit_hold_place(customer=business_a, amount=D("1000.01"), order_id="ORD-1")
    [event] = events(business_a.tenant, "credit.limit.exceeded")
    assert event["data"]["operation"] == "hold"


def test_a_released_hold_gives_its_amount_back_once(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        hold = services.credit_hold_place(customer=business_a, amount=D("300"), order_id="ORD-1")
        released = services.credit_hold_release(customer=business_a, hold_id=hold.hold_id)
        again = services.credit_hold_release(customer=business_a, hold_id=hold.hold_id)
    assert (released.status, released.available_amount) == ("released", D("1000"))
    assert again.replayed
    line = fresh(approved_line)
    assert line.exposure == 0 == ledger_sum(line)


def test_expired_holds_are_released_by_the_job_and_ignored_by_a_use(business_a, approved_line, clock_at):
    with tenant_context(business_a.tenant_id):
        services.credit_hold_place(customer=business_a, amount=D("900"), order_id="ORD-1")
        services.credit_hold_place(
            customer=business_a, amount=D("50"), order_id="ORD-2", expires_at=clock.now() + timedelta(hours=5)
        )
    clock_at(clock.now() + services.hold_ttl() + timedelta(seconds=1))
    with tenant_context(business_a.tenant_id):
        # Under the line's lock a use first lets expired holds go: the 900 no longer counts.
        services.credit_use(customer=business_a, amount=D("940"), order_id="ORD-3")
    assert fresh(approved_line).exposure == D("990")
    clock_at(clock.now() + timedelta(hours=5))
    with tenant_context(business_a.tenant_id):
        assert services.credit_holds_expire() == 1
        statuses = dict(CreditHold.objects.values_list("order_id", "status"))
    assert statuses == {"ORD-1": "expired", "ORD-2": "expired"}
    line = fresh(approved_line)
    assert line.exposure == D("940") == ledger_sum(line)


# --- Payments ------------------------------------------------------------------------------------------------------
def test_a_payment_goes_to_its_order_then_oldest_due_first_and_keeps_the_excess(
    business_a, approved_line, clock_at
):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("100"), order_id="OLD")
        clock_at(clock.now() + timedelta(days=3))
        services.credit_use(customer=business_a, amount=D("200"), order_id="MID")
        clock_at(clock.now() + timedelta(days=3))
        services.credit_use(customer=business_a, amount=D("300"), order_id="NEW")
        paid = services.payment_record(customer=business_a, payment_id="P1", amount=D("350"), order_id="NEW")
        assert [(a.order_id, a.amount) for a in paid.allocations] == [("NEW", D("300")), ("OLD", D("50"))]
        assert (paid.applied_amount, paid.unapplied_amount, paid.available_amount) == (D("350"), 0, D("750"))
        rest = services.payment_record(customer=business_a, payment_id="P2", amount=D("500"))
        assert [(a.order_id, a.amount) for a in rest.allocations] == [("OLD", D("50")), ("MID", D("200"))]
        assert rest.unapplied_amount == D("250")
        statuses = dict(CreditCharge.objects.values_list("order_id", "status"))
        summary = selectors.credit_summary(business_a)
    assert statuses == {"OLD": "paid", "MID": "paid", "NEW": "paid"}
    assert summary.unapplied_credit == D("250") and summary.used == 0
    line = fresh(approved_line)
    assert line.exposure == 0 == ledger_sum(line)


def test_a_payment_is_idempotent_by_payment_id(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("100"), order_id="O")
        first = services.payment_record(customer=business_a, payment_id="P1", amount=D("40"))
        again = services.payment_record(customer=business_a, payment_id="P1", amount=D("40"))
        with pytest.raises(IdempotencyKeyReused):
            services.payment_record(customer=business_a, payment_id="P1", amount=D("41"))
    assert again.replayed and again.allocations == first.allocations
    assert fresh(approved_line).exposure == D("60")


# --- Cancel ---------------------------------------------------------------------------------------------------------
def test_cancel_releases_an_unpaid_charge_but_not_a_partly_paid_one(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        a = services.credit_use(customer=business_a, amount=D("100"), order_id="A")
        services.credit_use(customer=business_a, amount=D("100"), order_id="B")
        services.payment_record(customer=business_a, payment_id="P", amount=D("10"), order_id="B")
        charge = services.credit_charge_cancel(
            customer=business_a, charge_id=a.usage_id, reason="order cancelled"
        )
        assert (
            services.credit_charge_cancel(customer=business_a, order_id="A", reason="again").status
            == "cancelled"
        )
        with pytest.raises(CreditChargeNotCancellable):
            services.credit_charge_cancel(customer=business_a, order_id="B", reason="x")
    assert (charge.status, charge.outstanding) == ("cancelled", 0)
    line = fresh(approved_line)
    assert line.exposure == D("90") == ledger_sum(line)


# --- Limits and the database's own guard ---------------------------------------------------------------------------
def test_lowering_the_limit_below_the_exposure_refuses_uses_until_paid_down(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("800"), order_id="A")
        services.credit_line_limit_change(
            line=approved_line, actor=APPROVER, approved_limit=D("500"), reason="risk"
        )
        line = CreditLine.objects.get(pk=approved_line.pk)
        assert (line.exposure, line.approved_limit, line.excess_allowance, line.available) == (
            D("800"),
            D("500"),
            D("300"),
            0,
        )
        with pytest.raises(CreditLimitExceeded):
            services.credit_use(customer=business_a, amount=D("0.01"), order_id="B")
    with tenant_context(business_a.tenant_id):
        services.payment_record(customer=business_a, payment_id="P", amount=D("400"))
        line = CreditLine.objects.get(pk=approved_line.pk)
        assert (line.exposure, line.excess_allowance) == (D("400"), 0)
        services.credit_use(customer=business_a, amount=D("100"), order_id="C")
        with pytest.raises(CreditLimitExceeded):
            services.credit_use(customer=business_a, amount=D("0.01"), order_id="D")
        [change] = CreditLineChange.objects.filter(line=approved_line, action="limit_changed")
        assert (change.from_limit, change.to_limit) == (D("1000"), D("500"))


def test_the_database_refuses_an_exposure_above_the_limit(business_a, approved_line, raw_sql):
    with tenant_context(business_a.tenant_id):
        with pytest.raises(IntegrityError, match="credit_line_exposure_within_limit"), transaction.atomic():
            raw_sql(
                "UPDATE credit_creditline SET exposure = approved_limit + 0.01 WHERE id = %s",
                [approved_line.pk],
            )
        with pytest.raises(IntegrityError, match="credit_line_exposure_within_limit"), transaction.atomic():
            # Even over the excess a limit decrease left behind, a use cannot grow the exposure.
            raw_sql(
                "UPDATE credit_creditline SET exposure = 900, approved_limit = 500, excess_allowance = 400 "
                "WHERE id = %s",
                [approved_line.pk],
            )
            raw_sql("UPDATE credit_creditline SET exposure = exposure + 1 WHERE id = %s", [approved_line.pk])


def test_rows_of_another_tenant_are_invisible(business_a, business_b, approved_line):
    with tenant_context(business_b.tenant_id):
        assert not CreditLine.objects.filter(pk=approved_line.pk).exists()
        assert selectors.credit_summary(business_a) is None
        with pytest.raises(CreditLineNotFound):
            selectors.credit_line_get(approved_line.pk)


# --- Reads ---------------------------------------------------------------------------------------------------------
def test_summary_and_kpis(business_a, business_b, approved_line, tenant_a):
    from tests.factories import BusinessCustomerFactory

    held = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(held, limit="200.00")
    credit_line_requested(BusinessCustomerFactory(tenant=tenant_a))
    credit_line_approved(business_b, limit="99999.00")  # another tenant: never counted
    with tenant_context(tenant_a):
        services.credit_use(customer=business_a, amount=D("300"), order_id="A")
        services.credit_hold_place(customer=business_a, amount=D("100"), order_id="B")
        services.credit_use(customer=held, amount=D("150"), order_id="C")
        line = CreditLine.objects.get(customer=held)
        services.credit_line_suspend(line=line, actor=APPROVER, reason="x")
        summary = selectors.credit_summary(business_a)
        kpis = selectors.credit_kpis()
    assert summary.status == "approved"
    assert (summary.credit_limit, summary.used, summary.available) == (D("1000"), D("400"), D("600"))
    assert (summary.charges_outstanding, summary.holds_active) == (D("300"), D("100"))
    assert summary.payment_terms_days == 30 and summary.currency == "CLP"
    assert kpis == {
        "limit_total": D("1200"),
        "used_total": D("550"),
        "available_total": D("600"),
        "lines_active": 1,
        "lines_on_hold": 0,
        "lines_pending": 1,
        "overdue_total": D("0"),
    }


def test_summary_is_none_without_a_line(customer_a):
    with tenant_context(customer_a.tenant_id):
        assert selectors.credit_summary(customer_a) is None


def test_aging_per_customer_and_tenant(business_a, approved_line, tenant_a, clock_at):
    from tests.factories import BusinessCustomerFactory

    other = BusinessCustomerFactory(tenant=tenant_a)
    credit_line_approved(other, terms=0)
    with tenant_context(tenant_a):
        # Terms are 30 days: charged 150 days ago is 120 days late, 100 -> 70, 70 -> 40, 40 -> 10.
        for days_ago, order, amount in [(150, "A", "10"), (100, "B", "20"), (70, "C", "30"), (40, "D", "40")]:
            clock_at(T0 - timedelta(days=days_ago))
            services.credit_use(customer=business_a, amount=D(amount), order_id=order)
        clock_at(T0)
        services.credit_use(customer=business_a, amount=D("50"), order_id="E")
        services.credit_use(customer=other, amount=D("7"), order_id="F")  # due today: current
        customer_report = selectors.credit_aging(customer=business_a)
        tenant_report = selectors.credit_aging()
        rows = selectors.credit_aging_by_customer()
    assert customer_report.buckets == {
        "current": D("50"),
        "1_30": D("40"),
        "31_60": D("30"),
        "61_90": D("20"),
        "over_90": D("10"),
    }
    assert customer_report.total == D("150") and customer_report.as_of == T0.date()
    assert tenant_report.buckets["current"] == D("57") and tenant_report.total == D("157")
    assert [(r.customer_id, r.aging.total) for r in rows] == [(business_a.id, D("150")), (other.id, D("7"))]


def test_payment_behaviour_counts_days_late(business_a, approved_line, clock_at):
    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("10"), order_id="ON-TIME")
        services.credit_use(customer=business_a, amount=D("10"), order_id="LATE")
        services.credit_use(customer=business_a, amount=D("10"), order_id="UNPAID")
        services.payment_record(customer=business_a, payment_id="P1", amount=D("10"), order_id="ON-TIME")
        clock_at(T0 + timedelta(days=42))  # due on day 30: 12 days late
        services.payment_record(customer=business_a, payment_id="P2", amount=D("10"), order_id="LATE")
        behaviour = selectors.payment_behaviour(business_a)
    assert (behaviour.charges_paid, behaviour.paid_on_time, behaviour.paid_late) == (2, 1, 1)
    assert (behaviour.max_days_late, behaviour.average_days_late) == (12, D("6.0"))
    assert (behaviour.unpaid_overdue, behaviour.oldest_overdue_days) == (1, 12)
    assert behaviour.late_charges[0]["order_id"] == "LATE"


# --- Commercial terms ---------------------------------------------------------------------------------------------
def test_volume_discounts_are_replaced_and_validated(business_a, customer_a):
    with tenant_context(business_a.tenant_id):
        services.volume_discounts_replace(
            customer=business_a,
            brackets=[
                {"min_amount": "1000", "discount_percent": "5"},
                {"min_amount": "0", "discount_percent": "2.5", "category": " Cement "},
            ],
            actor="api:x",
        )
        terms = selectors.commercial_terms(business_a)
        assert [(b.category, b.min_amount, b.discount_percent) for b in terms.volume_discounts] == [
            ("", D("1000"), D("5")),
            ("cement", D("0"), D("2.5")),
        ]
        with pytest.raises(Exception) as exc:
            services.volume_discounts_replace(
                customer=business_a, brackets=[{"min_amount": "1", "discount_percent": "101"}], actor="x"
            )
        assert exc.value.code == "invalid_discount_bracket"
        with pytest.raises(Exception) as exc:
            services.volume_discounts_replace(
                customer=business_a,
                brackets=[
                    {"min_amount": "1", "discount_percent": "1"},
                    {"min_amount": "1.00", "discount_percent": "2"},
                ],
                actor="x",
            )
        assert exc.value.code == "invalid_discount_bracket"
        with pytest.raises(CreditBusinessOnly):
            services.volume_discounts_replace(customer=customer_a, brackets=[], actor="x")
        assert len(selectors.commercial_terms(business_a).volume_discounts) == 2


# --- Setup pieces ----------------------------------------------------------------------------------------------------
def test_the_data_migration_creates_the_credit_managers_group():
    from django.contrib.auth.models import Group, Permission

    from tests.credit.conftest import create_credit_managers_group

    Group.objects.filter(name="credit managers").delete()
    group = create_credit_managers_group()
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"approve_creditline", "view_creditline", "add_creditline", "view_creditcharge"} <= codenames
    assert Permission.objects.get(codename="approve_creditline").content_type.app_label == "credit"
    assert create_credit_managers_group().pk == group.pk  # running it again changes nothing


def test_demo_seed_gives_the_demo_business_an_approved_line_and_is_idempotent(tenant_a):
    from credit import demo
    from customers.services import customer_create

    with tenant_context(tenant_a):
        andes = customer_create(
            tenant=tenant_a,
            data={"type": "business", "legal_name": "Andes", "email": demo.APPROVED_CUSTOMER_EMAIL},
            actor="t",
        )
        cafe = customer_create(
            tenant=tenant_a,
            data={"type": "business", "legal_name": "Café", "email": demo.PENDING_CUSTOMER_EMAIL},
            actor="t",
        )
        demo.seed(tenant_a)
        demo.seed(tenant_a)
        assert CreditLine.objects.get(customer=andes).status == "approved"
        assert CreditLine.objects.get(customer=cafe).status == "requested"
        assert services.credit_use(customer=andes, amount=D("1000"), order_id="DEMO-1").amount == D("1000")
        assert len(selectors.commercial_terms(andes).volume_discounts) == 3


@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "x" * 101, "   "])
def test_order_and_payment_references_are_validated_at_every_door(business_a, approved_line, bad):
    """References from events or gRPC reach the services without a serializer: control characters (NUL breaks
    SQL) and over-long ids are refused, never truncated into another order's id."""
    from credit.errors import InvalidOrderId, InvalidPaymentId

    with tenant_context(business_a.tenant_id):
        services.credit_use(customer=business_a, amount=D("10"), order_id="x" * 100)
        with pytest.raises(InvalidOrderId):
            services.credit_use(customer=business_a, amount=D("1"), order_id=bad)
        with pytest.raises(InvalidOrderId):
            services.credit_hold_place(customer=business_a, amount=D("1"), order_id=bad)
        with pytest.raises(InvalidPaymentId):
            services.payment_record(customer=business_a, payment_id=bad, amount=D("1"))
        if bad.strip():
            with pytest.raises(InvalidOrderId):
                services.payment_record(customer=business_a, payment_id="P", amount=D("1"), order_id=bad)
        assert not CreditCharge.objects.filter(order_id="x" * 100, status="paid").exists()
    assert fresh(approved_line).exposure == D("10")


def test_a_hold_key_reused_with_another_expiry_is_refused(business_a, approved_line, clock_at):
    first = clock.now() + timedelta(hours=2)
    with tenant_context(business_a.tenant_id):
        hold = services.credit_hold_place(
            customer=business_a, amount=D("10"), order_id="O", expires_at=first, idempotency_key="k"
        )
        again = services.credit_hold_place(
            customer=business_a, amount=D("10"), order_id="O", expires_at=first, idempotency_key="k"
        )
        assert again.replayed and again.hold_id == hold.hold_id
        with pytest.raises(IdempotencyKeyReused):
            services.credit_hold_place(
                customer=business_a,
                amount=D("10"),
                order_id="O",
                expires_at=first + timedelta(hours=1),
                idempotency_key="k",
            )
        assert CreditHold.objects.get(pk=hold.hold_id).expires_at == first
