"""Credit limits under concurrency and the known ways they get bypassed: real threads on real PostgreSQL, each with
its own connection and tenant transaction, as the gRPC and REST doors run them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core import clock
from core.models import OutboxEvent
from core.tenancy import tenant_context
from credit import services
from credit.errors import CreditLimitExceeded
from credit.models import CreditCharge, CreditHold, CreditLedgerEntry, CreditLine
from tests.concurrency import run_threads
from tests.credit.factories import credit_line_approved

D = Decimal


def use(customer: Any, amount: str, order_id: str, key: str | None = None) -> Any:
    with tenant_context(customer.tenant_id):
        return services.credit_use(
            customer=customer, amount=D(amount), order_id=order_id, idempotency_key=key
        )


def state(line: Any) -> tuple[Decimal, Decimal, int]:
    with tenant_context(line.tenant_id):
        fresh = CreditLine.objects.get(pk=line.pk)
        ledger = sum((e.amount for e in CreditLedgerEntry.objects.filter(line=line)), D("0"))
        unpaid = sum((c.outstanding for c in CreditCharge.objects.filter(line=line)), D("0"))
        assert fresh.exposure == ledger == unpaid, (fresh.exposure, ledger, unpaid)
        return fresh.exposure, fresh.approved_limit, CreditCharge.objects.filter(line=line).count()


def outbox_count(tenant: Any, event_type: str) -> int:
    with tenant_context(tenant):
        return OutboxEvent.objects.filter(event_type=event_type).count()


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_never_push_exposure_over_the_limit(business_a):
    line = credit_line_approved(business_a, limit="1000.00")
    results = run_threads(50, lambda i: use(business_a, "30.00", f"ORD-{i}"))
    ok = [r for r in results if isinstance(r, services.CreditUsageResult)]
    refused = [r for r in results if isinstance(r, CreditLimitExceeded)]
    assert len(ok) + len(refused) == 50, [r for r in results if isinstance(r, Exception)][:3]
    assert len(ok) == 33  # 33 x 30 = 990 <= 1000 < 34 x 30
    exposure, limit, charges = state(line)
    assert exposure == D("990.00") <= limit and charges == 33
    assert sorted(r.available_amount for r in ok)[0] == D("10.00")
    assert outbox_count(business_a.tenant, "credit.used") == 33
    assert outbox_count(business_a.tenant, "credit.limit.exceeded") == 17


@pytest.mark.django_db(transaction=True)
def test_a_replayed_order_id_charges_once_under_concurrency(business_a):
    line = credit_line_approved(business_a, limit="1000.00")
    results = run_threads(20, lambda i: use(business_a, "100.00", "ORD-SAME", key=f"key-{i}"))
    assert all(isinstance(r, services.CreditUsageResult) for r in results), results
    assert len({r.usage_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert state(line) == (D("100.00"), D("1000.00"), 1)
    assert outbox_count(business_a.tenant, "credit.used") == 1


@pytest.mark.django_db(transaction=True)
def test_bypass_two_concurrent_orders_that_each_fit_but_together_exceed(business_a):
    line = credit_line_approved(business_a, limit="1000.00")
    for round_ in range(3):  # a few rounds, each starting from an empty line
        results = run_threads(2, lambda i, r=round_: use(business_a, "600.00", f"ORD-{r}-{i}"))
        assert sum(isinstance(r, services.CreditUsageResult) for r in results) == 1, results
        assert sum(isinstance(r, CreditLimitExceeded) for r in results) == 1, results
        assert state(line)[0] == D("600.00")
        with tenant_context(business_a.tenant_id):
            services.payment_record(customer=business_a, payment_id=f"PAY-{round_}", amount=D("600"))


@pytest.mark.django_db(transaction=True)
def test_bypass_cancelled_order_reopened_while_another_order_is_created(business_a):
    """Close order A, create B, reopen A: A is charged again only if it fits next to B, at the same moment."""
    line = credit_line_approved(business_a, limit="1000.00")
    use(business_a, "700.00", "ORD-A")
    with tenant_context(business_a.tenant_id):
        services.credit_charge_cancel(customer=business_a, order_id="ORD-A", reason="order closed")
    orders = ["ORD-A", "ORD-B"]
    results = run_threads(2, lambda i: use(business_a, "700.00", orders[i]))
    assert sum(isinstance(r, services.CreditUsageResult) for r in results) == 1, results
    assert sum(isinstance(r, CreditLimitExceeded) for r in results) == 1, results
    assert state(line)[0] == D("700.00")


@pytest.mark.django_db
def test_bypass_cancelled_order_reused_does_not_resurrect_capacity(business_a, approved_line):
    use(business_a, "600.00", "ORD-A")
    with tenant_context(business_a.tenant_id):
        services.credit_charge_cancel(customer=business_a, order_id="ORD-A", reason="order closed")
    use(business_a, "800.00", "ORD-B")
    # Re-using the cancelled order id is a new charge for today's exposure, not a replay of the old approval.
    with pytest.raises(CreditLimitExceeded):
        use(business_a, "600.00", "ORD-A")
    assert state(approved_line)[0] == D("800.00")
    with tenant_context(business_a.tenant_id):
        assert CreditCharge.objects.get(order_id="ORD-A").status == "cancelled"
        services.payment_record(customer=business_a, payment_id="P", amount=D("800"))
    reopened = use(business_a, "600.00", "ORD-A")
    assert not reopened.replayed and reopened.available_amount == D("400.00")
    assert state(approved_line)[0] == D("600.00")


@pytest.mark.django_db
def test_bypass_a_check_that_passes_and_a_use_that_comes_later(business_a, approved_line):
    with tenant_context(business_a.tenant_id):
        check = services.credit_check(customer=business_a, amount=D("700"))
    assert check.available is True
    use(business_a, "500.00", "ORD-OTHER")  # meanwhile another order takes part of the limit
    with pytest.raises(CreditLimitExceeded):
        use(business_a, "700.00", "ORD-CHECKED")  # the use is checked again, under the lock
    assert state(approved_line)[0] == D("500.00")


def consistent_exposure(line: Any) -> Decimal:
    """The cached exposure equals its ledger and what is really owed or held; return it."""
    with tenant_context(line.tenant_id):
        fresh = CreditLine.objects.get(pk=line.pk)
        ledger = sum((e.amount for e in CreditLedgerEntry.objects.filter(line=line)), D("0"))
        owed = sum((c.outstanding for c in CreditCharge.objects.filter(line=line)), D("0"))
        held = sum((h.amount for h in CreditHold.objects.filter(line=line, status="active")), D("0"))
        assert fresh.exposure == ledger == owed + held, (fresh.exposure, ledger, owed, held)
        return fresh.exposure


@pytest.mark.django_db(transaction=True)
def test_a_hold_expiring_while_its_order_is_charged_ends_exactly_once(business_a, clock_at):
    """The expiry job (for which the hold's time is up) and the checkout charging its order race for the line: the
    hold is either expired then the order charged in full, or converted; never released twice."""
    line = credit_line_approved(business_a, limit="1000.00")
    for round_ in range(4):
        order = f"ORD-{round_}"
        with tenant_context(business_a.tenant_id):
            services.credit_hold_place(customer=business_a, amount=D("100"), order_id=order)
        later = clock.now() + services.hold_ttl() * 2

        def work(i: int, order: str = order, later: Any = later) -> Any:
            with tenant_context(business_a.tenant_id):
                if i == 0:
                    return services.credit_holds_expire(now=later)
                return services.credit_use(customer=business_a, amount=D("100"), order_id=order)

        expired, used = run_threads(2, work)
        assert isinstance(used, services.CreditUsageResult), used
        assert expired in (0, 1), expired
        with tenant_context(business_a.tenant_id):
            hold = CreditHold.objects.get(order_id=order)
        assert (hold.status, expired) in {("expired", 1), ("converted", 0)}
        assert consistent_exposure(line) == D("100") * (round_ + 1)


@pytest.mark.django_db(transaction=True)
def test_a_payment_racing_a_use_allocates_and_releases_exactly(business_a):
    """Whichever locks the line first, the payment settles the old charge and the new order is charged."""
    line = credit_line_approved(business_a, limit="1000.00")
    for round_ in range(3):
        old, new = f"OLD-{round_}", f"NEW-{round_}"
        use(business_a, "400.00", old)

        def work(i: int, old: str = old, new: str = new, round_: int = round_) -> Any:
            if i == 0:
                with tenant_context(business_a.tenant_id):
                    return services.payment_record(
                        customer=business_a, payment_id=f"P-{round_}", amount=D("400")
                    )
            return use(business_a, "500.00", new)

        paid, used = run_threads(2, work)
        assert isinstance(paid, services.PaymentResult) and isinstance(used, services.CreditUsageResult)
        assert [(a.order_id, a.amount) for a in paid.allocations] == [(old, D("400.00"))]
        assert paid.unapplied_amount == 0
        assert consistent_exposure(line) == D("500.00")
        with tenant_context(business_a.tenant_id):
            services.payment_record(
                customer=business_a, payment_id=f"Q-{round_}", amount=D("500"), order_id=new
            )
        assert consistent_exposure(line) == 0


@pytest.mark.django_db(transaction=True)
def test_one_order_id_or_key_raced_by_two_customers_is_charged_once(tenant_a, business_a):
    """Ids unique across the tenant are not serialised by either line's lock: the database's unique constraint
    decides, and the loser gets a clear refusal (never an IntegrityError, never two charges)."""
    from tests.factories import BusinessCustomerFactory

    other = BusinessCustomerFactory(tenant=tenant_a)
    lines = [credit_line_approved(business_a), credit_line_approved(other)]
    customers = [business_a, other]
    for round_ in range(3):
        order = f"SHARED-{round_}"
        results = run_threads(2, lambda i, order=order: use(customers[i], "10.00", order))
        assert sorted(type(r).__name__ for r in results) == ["CreditUsageResult", "IdempotencyKeyReused"]
        results = run_threads(2, lambda i, r=round_: use(customers[i], "10.00", f"K-{r}-{i}", key=f"key-{r}"))
        assert sorted(type(r).__name__ for r in results) == ["CreditUsageResult", "IdempotencyKeyReused"]

        def hold(i: int, order: str = f"HOLD-{round_}") -> Any:
            with tenant_context(tenant_a):
                return services.credit_hold_place(customer=customers[i], amount=D("5"), order_id=order)

        results = run_threads(2, hold)
        assert sorted(type(r).__name__ for r in results) == ["CreditHoldExists", "HoldResult"]
    with tenant_context(tenant_a):
        assert CreditCharge.objects.count() == 6
    assert sum(consistent_exposure(line) for line in lines) == D("75.00")
