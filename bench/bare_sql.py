"""The bare SQL baselines of the gRPC scenarios: psycopg, no ORM, one connection per client, the data statements of
each call (as `bench/statements.py` lists them for the service) in one transaction, with one statement for the
tenant settings. What they leave out is exactly what the service's own machinery adds (savepoints, restoring the
tenant settings, the ORM), so the ratio service / bare SQL says how close the service is to the database."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

TENANT = "bench"
# the tenant's claim (core.tenancy.scope_claim): the only setting under which the database shows the tenant's rows
TENANT_SETTINGS = "SELECT set_config('app.tenant_id', %(claim)s, true)"
CUSTOMER_BY_ID = (
    "SELECT c.id, c.type, c.first_name, c.last_name, c.status, s.segment FROM customers_customer c "
    "LEFT JOIN segmentation_customersegment s ON s.customer_id = c.id "
    "WHERE c.id = %(customer)s AND c.status <> 'erased'"
)
CLAIM_KEY = (
    "INSERT INTO core_idempotencyrecord (tenant_id, id, scope, key, operation, fingerprint, result, created_at) "
    "VALUES (%(tenant)s, %(op)s, 'loyalty', %(key)s, %(kind)s, %(fingerprint)s, '{}', %(now)s) "
    "ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING id"
)
LOCK_ACCOUNT = (
    "SELECT id, available, pending, lifetime_earned, qualifying_points, tier FROM loyalty_loyaltyaccount "
    "WHERE customer_id = %(customer)s FOR UPDATE"
)
OUTBOX = (
    "INSERT INTO core_outboxevent (tenant_id, event_id, event_type, occurred_at, aggregate_id, payload, "
    "created_at, attempts, last_error) VALUES (%(tenant)s, %(event)s, %(event_type)s, %(now)s, "
    "%(customer)s, %(payload)s, %(now)s, 0, '')"
)
STORE_RESULT = "UPDATE core_idempotencyrecord SET result = %(result)s WHERE id = %(op)s"

# What an earn and a redeem both send first: the settings, the customer, the currency, the key, the locked account,
# the program's version.
LOYALTY_PREFIX = [
    TENANT_SETTINGS,
    CUSTOMER_BY_ID,
    "SELECT currency FROM core_tenant WHERE slug = %(tenant)s",
    CLAIM_KEY,
    LOCK_ACCOUNT,
    "SELECT id, updated_at FROM loyalty_loyaltyprogram WHERE tenant_id = %(tenant)s",
]

# An earn without a tier change: the 11 data statements the service sends, less its savepoints and settings.
EARN = [
    *LOYALTY_PREFIX,
    (
        "SELECT sum(qualifying_delta) FROM loyalty_loyaltytransaction WHERE account_id = %(account)s "
        "AND effective_at > %(year_ago)s AND effective_at <= %(now)s AND qualifying_delta <> 0"
    ),
    (
        "INSERT INTO loyalty_loyaltytransaction (tenant_id, id, account_id, customer_id, operation_id, type, "
        "points, available_delta, pending_delta, qualifying_delta, qualifying_points, unrecovered_points, "
        "balance_after, pending_after, reference, idempotency_key, source, actor, reason, purchase_amount, "
        "currency, multiplier, expires_at, tier_after, effective_at, created_at) VALUES (%(tenant)s, %(txn)s, "
        "%(account)s, %(customer)s, %(op)s, 'earn', %(points)s, %(points)s, 0, %(points)s, %(points)s, 0, 0, 0, "
        "'bench', %(key)s, 'grpc', 'bench', '', %(amount)s, 'CLP', 1.000, %(expires)s, 'bronze', %(now)s, "
        "%(now)s) RETURNING seq"
    ),
    (
        "INSERT INTO loyalty_pointsaward (tenant_id, id, account_id, transaction_id, points, remaining, "
        "qualifying_points, status, expires_at, created_at) VALUES (%(tenant)s, %(award)s, %(account)s, "
        "%(txn)s, %(points)s, %(points)s, %(points)s, 'available', %(expires)s, %(now)s)"
    ),
    (
        "UPDATE loyalty_loyaltyaccount SET available = available + %(points)s, "
        "lifetime_earned = lifetime_earned + %(points)s, qualifying_points = qualifying_points + %(points)s, "
        "qualifying_as_of = %(now)s, updated_at = %(now)s WHERE id = %(account)s"
    ),
    OUTBOX,
    STORE_RESULT,
]

# A redeem drawing on the soonest-expiring award: the 12 data statements of the service.
REDEEM = [
    *LOYALTY_PREFIX,
    (
        "INSERT INTO loyalty_loyaltytransaction (tenant_id, id, account_id, customer_id, operation_id, type, "
        "points, available_delta, pending_delta, qualifying_delta, qualifying_points, unrecovered_points, "
        "balance_after, pending_after, reference, idempotency_key, source, actor, reason, discount_amount, "
        "currency, tier_after, effective_at, created_at) VALUES (%(tenant)s, %(txn)s, %(account)s, %(customer)s, "
        "%(op)s, 'redeem', %(points)s, -%(points)s, 0, 0, 0, 0, 0, 0, 'bench', %(key)s, 'grpc', 'bench', '', "
        "%(discount)s, 'CLP', 'bronze', %(now)s, %(now)s) RETURNING seq"
    ),
    (
        "SELECT w.id, w.remaining FROM loyalty_pointsaward w JOIN loyalty_loyaltytransaction t "
        "ON w.transaction_id = t.id WHERE w.account_id = %(account)s AND w.remaining > 0 "
        "AND w.status = 'available' ORDER BY w.expires_at NULLS LAST, t.seq"
    ),
    "UPDATE loyalty_pointsaward SET remaining = remaining - %(points)s WHERE id = %(award)s",
    (
        "INSERT INTO loyalty_awardallocation (tenant_id, transaction_id, award_id, points) "
        "VALUES (%(tenant)s, %(txn)s, %(award)s, %(points)s) RETURNING id"
    ),
    (
        "UPDATE loyalty_loyaltyaccount SET available = available - %(points)s, redeemed = redeemed + %(points)s, "
        "updated_at = %(now)s WHERE id = %(account)s"
    ),
    OUTBOX,
    STORE_RESULT,
]

# A credit use: the 12 data statements of the service (line locked, key, order, holds, charge, ledger, event, key).
CREDIT_USE = [
    TENANT_SETTINGS,
    CUSTOMER_BY_ID,
    "SELECT currency FROM core_tenant WHERE slug = %(tenant)s",
    (
        "SELECT id, exposure, approved_limit, payment_terms_days, status FROM credit_creditline "
        "WHERE customer_id = %(customer)s AND status IN ('requested', 'approved', 'suspended', 'on_hold') "
        "ORDER BY id LIMIT 1 FOR UPDATE"
    ),
    (
        "SELECT id, fingerprint, result FROM core_idempotencyrecord WHERE tenant_id = %(tenant)s "
        "AND scope = 'credit' AND key = %(key)s"
    ),
    (
        "SELECT ch.id FROM credit_creditcharge ch JOIN credit_creditline l ON ch.line_id = l.id "
        "WHERE ch.tenant_id = %(tenant)s AND ch.order_id = %(order)s ORDER BY ch.due_date, ch.created_at LIMIT 1"
    ),
    (
        "SELECT id FROM credit_credithold WHERE expires_at <= %(now)s AND line_id = %(line)s "
        "AND status = 'active' ORDER BY id"
    ),
    (
        "SELECT id FROM credit_credithold WHERE tenant_id = %(tenant)s AND order_id = %(order)s "
        "AND status = 'active' ORDER BY created_at DESC LIMIT 1"
    ),
    (
        "INSERT INTO credit_creditcharge (tenant_id, id, line_id, order_id, amount, outstanding, currency, "
        "charged_on, due_date, status, available_after, created_by, created_at, cancel_reason) VALUES "
        "(%(tenant)s, %(charge)s, %(line)s, %(order)s, %(amount)s, %(amount)s, 'CLP', %(today)s, %(due)s, "
        "'open', 0, 'bench', %(now)s, '')"
    ),
    "UPDATE credit_creditline SET exposure = exposure + %(amount)s, updated_at = %(now)s WHERE id = %(line)s",
    (
        "INSERT INTO credit_creditledgerentry (tenant_id, line_id, kind, amount, exposure_after, order_id, "
        "charge_id, actor, created_at) VALUES (%(tenant)s, %(line)s, 'charge', %(amount)s, 0, %(order)s, "
        "%(charge)s, 'bench', %(now)s) RETURNING id"
    ),
    OUTBOX,
    (
        "INSERT INTO core_idempotencyrecord (tenant_id, id, scope, key, operation, fingerprint, result, created_at) "
        "VALUES (%(tenant)s, gen_random_uuid(), 'credit', %(key)s, 'credit_use', %(fingerprint)s, %(result)s, "
        "%(now)s) RETURNING id"
    ),
]

# The rows an uncached GetCustomer answers from: the customer by phone with its segment, its loyalty account and
# points expiring soon, its credit line. The tenant is in the WHERE clause, as the service's querysets put it: the
# unique (tenant, phone) index needs it (the Row-Level Security policy's OR cannot use an index).
LOOKUP = [
    TENANT_SETTINGS,
    (
        "SELECT c.id, c.type, c.first_name, c.last_name, c.legal_name, c.trade_name, c.email, c.phone, "
        "c.document_type, c.document_number, c.loyalty_card_number, c.status, c.external_id, s.segment "
        "FROM customers_customer c LEFT JOIN segmentation_customersegment s ON s.customer_id = c.id "
        "WHERE c.tenant_id = %(tenant)s AND c.phone = %(phone)s AND c.status <> 'erased'"
    ),
    (
        "SELECT id, available, pending, qualifying_points, tier FROM loyalty_loyaltyaccount "
        "WHERE customer_id = %(customer)s"
    ),
    (
        "SELECT sum(w.remaining) FROM loyalty_pointsaward w JOIN loyalty_loyaltyaccount a ON a.id = w.account_id "
        "WHERE a.customer_id = %(customer)s AND w.status = 'available' AND w.remaining > 0 "
        "AND w.expires_at <= %(soon)s"
    ),
    (
        "SELECT id, status, approved_limit, exposure, currency, payment_terms_days FROM credit_creditline "
        "WHERE customer_id = %(customer)s ORDER BY created_at DESC LIMIT 1"
    ),
]

_PAYLOAD = json.dumps({"event_type": "bench", "data": {"points": 125, "x": "y" * 400}})
_RESULT = json.dumps({"transaction_id": str(uuid.uuid4()), "points": 125, "x": "y" * 180})


def tenant_claim() -> str:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from core.tenancy import scope_claim

    return scope_claim(TENANT)


def _params(customer: str, phone: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    key = uuid.uuid4().hex
    return {
        "tenant": TENANT,
        "claim": tenant_claim(),
        "customer": customer,
        "phone": phone,
        "key": key,
        "order": key,
        "op": uuid.uuid4(),
        "txn": uuid.uuid4(),
        "award": uuid.uuid4(),
        "charge": uuid.uuid4(),
        "event": uuid.uuid4(),
        "event_type": "bench",
        "kind": "earn",
        "fingerprint": uuid.uuid4().hex * 2,
        "now": now,
        "today": now.date(),
        "due": now.date() + timedelta(days=30),
        "soon": now + timedelta(days=30),
        "year_ago": now - timedelta(days=365),
        "expires": now + timedelta(days=365),
        "payload": _PAYLOAD,
        "result": _RESULT,
        "account": None,
        "line": None,
        **extra,
    }


# After a statement, the value the next ones need (the locked account, the award drawn on, the line, the customer).
_CAPTURE = {
    LOCK_ACCOUNT: "account",
    REDEEM[7]: "award",
    CREDIT_USE[3]: "line",
    LOOKUP[1]: "customer",
}


def worker(
    database_url: str, script: list[str], customers: list[tuple[str, str]], **extra: Any
) -> Callable[[], None]:
    """A client: one connection, each call one transaction running `script` for a random customer."""
    import psycopg

    connection = psycopg.connect(database_url, autocommit=False)
    connection.prepare_threshold = 0  # as the service's connections do (server-side prepared statements)

    def once() -> None:
        customer, phone = random.choice(customers)
        params = _params(customer, phone, **extra)
        with connection.transaction(), connection.cursor() as cursor:
            for sql in script:
                cursor.execute(sql, params)
                name = _CAPTURE.get(sql)
                if name is not None:
                    row = cursor.fetchone()
                    if row is None:
                        if name == "customer":
                            raise LookupError(f"no customer with the phone {phone}")
                        if name != "account":
                            raise LookupError(f"no {name} for customer {customer}")
                    params[name] = row[0] if row else None

    return once
