"""Credit limits under concurrency and the known ways they get bypassed: real threads on real PostgreSQL, each with
its own connection and tenant transaction, as the gRPC and REST doors run them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from core.models import OutboxEvent
from core.tenancy import tenant_context
from credit import services
from credit.errors import CreditLimitExceeded
from credit.models import CreditCharge, CreditLedgerEntry, CreditLine
from tests.credit.factories import credit_line_approved

D = Decimal


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` on `count` threads released together; return each result (or the exception it raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


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
