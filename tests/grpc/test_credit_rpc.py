"""CheckCreditAvailability and UseCreditLimit over gRPC: answers, business refusals, idempotent replays,
malformed input, and 50 concurrent uses that never overdraw."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest

from tests.factories import BusinessCustomerFactory
from tests.grpc.conftest import by_id
from zenlogic.customer.v1 import customer_service_pb2 as pb

pytestmark = pytest.mark.django_db(transaction=True)


def approved_line(tenant, customer, limit: str, terms: int = 30):
    from core.tenancy import tenant_context
    from credit.services import credit_line_approve, credit_line_request

    with tenant_context(tenant):
        line = credit_line_request(
            customer=customer, requested_limit=Decimal(limit), payment_terms_days=terms, requested_by="sales"
        )
    with tenant_context(tenant):
        return credit_line_approve(line=line, decided_by="credit-manager")


@pytest.fixture
def business(tenant_a):
    customer = BusinessCustomerFactory(tenant=tenant_a)
    approved_line(tenant_a, customer, "1000.00")
    return customer


def use(customer, amount, order_id, key="", currency=""):
    return pb.UseCreditLimitRequest(
        customer_id=str(customer.id), amount=amount, order_id=order_id, idempotency_key=key, currency=currency
    )


def test_check_credit_availability(grpc_a, business):
    answer = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="250.00")
    )
    assert answer.available is True and answer.reason == ""
    assert (answer.credit_limit, answer.used, answer.available_amount) == ("1000.00", "0.00", "1000.00")
    assert (answer.currency, answer.status, answer.payment_terms_days) == ("CLP", "approved", 30)

    too_much = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="1000.01")
    )
    assert too_much.available is False and too_much.reason == "credit_limit_exceeded"


def test_a_customer_without_a_credit_line_is_an_answer_and_an_unknown_customer_not_found(grpc_a, tenant_a):
    """Pricing asks "may this customer buy on credit?": no line is a no, with the reason; NOT_FOUND is only for
    a customer that does not exist."""
    without = BusinessCustomerFactory(tenant=tenant_a)
    answer = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(without.id), amount="10")
    )
    assert (answer.available, answer.reason, answer.status) == (False, "no_credit_line", "")
    assert {Decimal(answer.credit_limit), Decimal(answer.used), Decimal(answer.available_amount)} == {0}
    assert answer.currency == "CLP"
    unknown = grpc_a.fails(
        "CheckCreditAvailability",
        pb.CheckCreditAvailabilityRequest(customer_id=str(uuid.uuid4()), amount="10"),
    )
    assert (unknown.code, unknown.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")


def test_use_credit_limit_charges_the_order(grpc_a, business):
    from django.utils import timezone

    usage = grpc_a.UseCreditLimit(use(business, "300.50", "order-1", key="pos-1"))
    assert uuid.UUID(usage.usage_id)
    assert (usage.amount, usage.available_amount, usage.currency) == ("300.50", "699.50", "CLP")
    due = timezone.localdate() + timedelta(days=30)
    assert abs((due - timezone.datetime.fromisoformat(usage.due_date).date()).days) <= 1  # tenant's time zone
    check = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="1")
    )
    assert (check.used, check.available_amount) == ("300.50", "699.50")


def test_get_customer_shows_the_credit_line_and_follows_its_use(grpc_a, business):
    before = grpc_a.GetCustomer(by_id(business))
    assert before.HasField("credit")
    assert (before.credit.status, before.credit.credit_limit, before.credit.available) == (
        "approved",
        "1000.00",
        "1000.00",
    )
    assert (before.credit.currency, before.credit.payment_terms_days) == ("CLP", 30)
    grpc_a.UseCreditLimit(use(business, "100.00", "order-7", key="k-7"))
    assert grpc_a.GetCustomer(by_id(business)).credit.available == "900.00"  # the cached answer was dropped


def test_replays_by_key_or_order_id_return_the_first_usage(grpc_a, business):
    first = grpc_a.UseCreditLimit(use(business, "100.00", "order-2", key="pos-2"))
    assert grpc_a.UseCreditLimit(use(business, "100.00", "order-2", key="pos-2")) == first
    assert grpc_a.UseCreditLimit(use(business, "100.00", "order-2")).usage_id == first.usage_id
    check = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="1")
    )
    assert check.used == "100.00"


def test_a_reused_key_or_order_with_another_amount_is_already_exists(grpc_a, business):
    grpc_a.UseCreditLimit(use(business, "100.00", "order-3", key="pos-3"))
    for request in (use(business, "150.00", "order-3", key="pos-3"), use(business, "150.00", "order-3")):
        failure = grpc_a.fails("UseCreditLimit", request)
        assert (failure.code, failure.error_code) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "idempotency_key_reused",
        )


def test_business_refusals_are_failed_precondition(grpc_a, business, tenant_a):
    from core.tenancy import tenant_context
    from credit.selectors import credit_line_current
    from credit.services import credit_line_suspend

    failure = grpc_a.fails("UseCreditLimit", use(business, "1000.01", "order-4", key="pos-4"))
    assert (failure.code, failure.error_code) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "credit_limit_exceeded",
    )

    with tenant_context(tenant_a):
        credit_line_suspend(line=credit_line_current(business), actor="risk", reason="test")
    failure = grpc_a.fails("UseCreditLimit", use(business, "10.00", "order-5", key="pos-5"))
    assert (failure.code, failure.error_code) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "credit_line_not_active",
    )
    check = grpc_a.CheckCreditAvailability(
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="1")
    )
    assert (check.available, check.reason, check.status) == (False, "credit_line_not_active", "suspended")


def test_a_use_without_a_line_and_another_tenants_customer_are_not_found(grpc_a, grpc_b, tenant_a, business):
    no_line = BusinessCustomerFactory(tenant=tenant_a)
    # the check answers (no_credit_line, above); charging a line that does not exist is not found
    failure = grpc_a.fails("UseCreditLimit", use(no_line, "1.00", "order-n", key="n"))
    assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "credit_line_not_found")
    for method, request in [
        (
            "CheckCreditAvailability",
            pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount="1"),
        ),
        ("UseCreditLimit", use(business, "1.00", "order-x", key="x")),
    ]:
        failure = grpc_b.fails(method, request)
        assert (failure.code, failure.error_code) == (grpc.StatusCode.NOT_FOUND, "customer_not_found")


def test_malformed_requests_are_invalid_argument(grpc_a, business):
    fields = {
        "customer_id": str(business.id),
        "amount": "10.00",
        "order_id": "order-9",
        "idempotency_key": "k-9",
    }
    for changes, code in [
        ({"customer_id": ""}, "missing_customer_id"),
        ({"customer_id": "42"}, "invalid_customer_id"),
        ({"amount": ""}, "invalid_amount"),
        ({"amount": "-5.00"}, "invalid_amount"),
        ({"amount": "0"}, "invalid_amount"),
        ({"amount": "ten"}, "invalid_amount"),
        ({"amount": "NaN"}, "invalid_amount"),
        ({"amount": "1.234"}, "invalid_amount"),
        ({"amount": "9" * 40}, "invalid_amount"),
        ({"order_id": ""}, "missing_order_id"),
        ({"order_id": "o" * 101}, "invalid_order_id"),
        ({"order_id": "o\x00"}, "invalid_order_id"),
        ({"idempotency_key": "k" * 201}, "invalid_idempotency_key"),
        ({"currency": "USD"}, "invalid_currency"),
        ({"currency": "PESOS"}, "invalid_currency"),
    ]:
        failure = grpc_a.fails("UseCreditLimit", pb.UseCreditLimitRequest(**{**fields, **changes}))
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, code), changes
    for amount in ["", "-1", "abc", "1e400", "Infinity", "0.001"]:
        failure = grpc_a.fails(
            "CheckCreditAvailability",
            pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount=amount),
        )
        assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_amount"), (
            amount
        )


def test_50_concurrent_uses_never_overdraw(grpc_a, business, tenant_a):
    from core.tenancy import tenant_context
    from credit.selectors import credit_summary

    def one(n: int):
        try:
            return grpc_a.UseCreditLimit(use(business, "30.00", f"order-c{n}", key=f"c{n}")).available_amount
        except grpc.RpcError as exc:
            return dict(exc.trailing_metadata())["error-code"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    accepted = [r for r in results if r != "credit_limit_exceeded"]
    assert len(accepted) == 33  # 33 x 30.00 = 990.00 <= 1000.00 < 34 x 30.00
    assert results.count("credit_limit_exceeded") == 17
    assert sorted(Decimal(a) for a in accepted) == [Decimal("10.00") + 30 * i for i in range(33)]
    with tenant_context(tenant_a):
        summary = credit_summary(business)
    assert (summary.used, summary.available) == (Decimal("990.00"), Decimal("10.00"))


def test_a_replay_answers_the_first_message_even_after_the_line_moved(grpc_a, business):
    first = grpc_a.UseCreditLimit(use(business, "100.00", "order-9", key="pos-9"))
    grpc_a.UseCreditLimit(use(business, "200.00", "order-10", key="pos-10"))
    again = grpc_a.UseCreditLimit(use(business, "100.00", "order-9", key="pos-9"))
    assert again.SerializeToString() == first.SerializeToString()
    assert again.available_amount == "900.00"  # what the first answer said, not today's 700.00


@pytest.mark.parametrize(
    "amount", ["１００", "1_000", "1E2", "1e2", " 1", "1 ", "+1", "1.", ".5", "٣", "NaN", "Infinity"]
)
def test_amounts_are_plain_ascii_decimal_strings(grpc_a, business, amount):
    failure = grpc_a.fails(
        "CheckCreditAvailability",
        pb.CheckCreditAvailabilityRequest(customer_id=str(business.id), amount=amount),
    )
    assert (failure.code, failure.error_code) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_amount")
