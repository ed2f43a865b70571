"""What every benchmark needs: a database of its own, Django set up on it, and the tenant `bench` with its
customers, points and credit lines (loaded in bulk or through the services, never through a test fixture)."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench"
ACTOR = "bench"


def database_urls(name: str) -> tuple[str, str]:
    """(URL of the database `name` for the app's role, URL of the maintenance database for the owner role) on the
    server of DATABASE_URL: the owner creates and migrates the benchmark's databases, the app role runs in them."""
    base = os.environ.get("DATABASE_URL", "postgres://zenlogic_app:zenlogic_app@127.0.0.1:5432/zenlogic")
    parts = urlsplit(base)
    owner = urlsplit(os.environ.get("DATABASE_OWNER_URL", "postgres://zenlogic_owner:zenlogic_owner@/"))
    host = parts.netloc.rsplit("@", 1)[-1]
    credentials = owner.netloc.rsplit("@", 1)[0]  # user[:password], as written (percent-encoded)
    maintenance = parts._replace(netloc=f"{credentials}@{host}", path="/postgres")
    return urlunsplit(parts._replace(path=f"/{name}")), urlunsplit(maintenance)


def default_database_name(suffix: str = "bench") -> str:
    """`<the configured database>_<suffix>`: next to the developer's own database, never on it."""
    base = os.environ.get("DATABASE_URL", "postgres://zenlogic_app:zenlogic_app@127.0.0.1:5432/zenlogic")
    name = urlsplit(base).path.lstrip("/") or "zenlogic"
    return f"{name}_{suffix}"[:63]


def recreate_database(maintenance_url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
    if drop_only:
        return
    # The benchmark's own database only: the app role may also create the bare baselines' scratch tables.
    url = urlunsplit(urlsplit(maintenance_url)._replace(path=f"/{name}"))
    app_role = (
        urlsplit(os.environ.get("DATABASE_URL", "postgres://zenlogic_app@/")).username or "zenlogic_app"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{app_role}"')


def database_exists(maintenance_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def tenant_ensure() -> object:
    from core.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(
        slug=TENANT,
        defaults={
            "name": "Bench",
            "country": "CL",
            "phone_region": "CL",
            "currency": "CLP",
            "time_zone": "America/Santiago",
        },
    )
    return tenant


def customers_load(count: int, *, business: bool = False) -> list[tuple[str, str]]:
    """(id, phone) of `count` customers of the tenant `bench` (individuals, or businesses for credit), created in
    bulk the first time. Phones are distinct per kind, so both kinds can be loaded into one tenant."""
    from core.tenancy import tenant_context
    from customers.models import Customer, CustomerType

    tenant = tenant_ensure()
    kind = CustomerType.BUSINESS if business else CustomerType.INDIVIDUAL
    base = 70_000_000 if business else 60_000_000
    with tenant_context(TENANT):
        have = Customer.objects.filter(type=kind).count()
        batch = 5000
        for low in range(have, count, batch):
            Customer.objects.bulk_create(
                [
                    Customer(
                        tenant=tenant,
                        type=kind,
                        first_name="" if business else f"Bench{n}",
                        last_name="" if business else "Customer",
                        legal_name=f"Bench Business {n} SpA" if business else "",
                        email=f"bench{'-b' if business else ''}{n}@example.com",
                        phone=f"+569{base + n:08d}",
                    )
                    for n in range(low, min(low + batch, count))
                ]
            )
        rows = list(Customer.objects.filter(type=kind).order_by("phone").values_list("id", "phone")[:count])
    return [(str(pk), phone) for pk, phone in rows]


def points_seed(customer_ids: list[str], points: int = 10_000_000) -> None:
    """Give each customer a large balance through the service (bonus points), so redemptions never run dry."""
    from core.tenancy import tenant_context
    from customers.models import Customer
    from loyalty.services import points_earn

    for customer_id in customer_ids:
        with tenant_context(TENANT):
            customer = Customer.objects.get(pk=customer_id)
            points_earn(
                customer=customer,
                idempotency_key=f"bench-seed-{customer_id}",
                points=points,
                qualifying=False,
                reference="bench seed",
                source="bench",
                actor=ACTOR,
            )


def credit_lines_seed(customer_ids: list[str], limit: Decimal = Decimal("1000000000")) -> None:
    """Request and approve (two different people, as the service demands) a large credit line for each business."""
    from core.tenancy import tenant_context
    from credit.models import CreditLine
    from credit.services import credit_line_approve, credit_line_request
    from customers.models import Customer

    for customer_id in customer_ids:
        with tenant_context(TENANT):
            if CreditLine.objects.filter(customer_id=customer_id).exists():
                continue
            customer = Customer.objects.get(pk=customer_id)
            line = credit_line_request(
                customer=customer, requested_limit=limit, payment_terms_days=30, requested_by="bench-seller"
            )
            credit_line_approve(line=line, decided_by="bench-manager")


def accounts_ensure(customer_ids: list[str]) -> None:
    """Empty loyalty accounts, created in bulk as the service creates a missing one (no ledger rows yet), so that
    the earn scenarios and their bare SQL both find the account."""
    from core.tenancy import tenant_context
    from loyalty.models import LoyaltyAccount
    from loyalty.services import program_ensure

    with tenant_context(TENANT):
        program = program_ensure(TENANT)
        for low in range(0, len(customer_ids), 5000):
            LoyaltyAccount.objects.bulk_create(
                [
                    LoyaltyAccount(
                        tenant_id=TENANT,
                        customer_id=customer_id,
                        allow_negative=program.allows_negative,
                        tier="bronze",
                        earned_tier="bronze",
                    )
                    for customer_id in customer_ids[low : low + 5000]
                ],
                ignore_conflicts=True,
            )


def ledger_deepen(customer_ids: list[str], rows: int) -> None:
    """Give each account `rows` more earn rows (1 qualifying point each, within the qualifying window) with their
    awards, and the account's totals to match: a customer with a long history, without replaying it call by call.
    The rows are what an earn through the service writes; only their number matters to the scenario."""
    from django.db import connection

    from core.tenancy import tenant_context

    with tenant_context(TENANT), connection.cursor() as cursor:
        # once per customer: a database kept from an earlier run has its history already
        cursor.execute(
            "SELECT DISTINCT customer_id::text FROM loyalty_loyaltytransaction "
            "WHERE customer_id = ANY(%s::uuid[]) AND reference = 'bench history'",
            [customer_ids],
        )
        done = {row[0] for row in cursor.fetchall()}
        customer_ids = [pk for pk in customer_ids if pk not in done]
        if not customer_ids:
            return
        cursor.execute(
            """
            INSERT INTO loyalty_loyaltytransaction (tenant_id, id, account_id, customer_id, type, points,
                available_delta, pending_delta, qualifying_delta, qualifying_points, unrecovered_points,
                balance_after, pending_after, reference, idempotency_key, source, actor, reason, purchase_amount,
                currency, multiplier, expires_at, tier_after, effective_at, created_at)
            SELECT a.tenant_id, gen_random_uuid(), a.id, a.customer_id, 'earn', 1, 1, 0, 1, 1, 0,
                   a.available + g, 0, 'bench history', 'bench-history-' || a.id || '-' || g || '-' || %(rows)s,
                   'bench', 'bench', '', 1.00, 'CLP', 1.000, now() + interval '300 days', a.tier,
                   now() - (%(rows)s - g + 1) * interval '1 minute', now() - (%(rows)s - g + 1) * interval '1 minute'
            FROM loyalty_loyaltyaccount a, generate_series(1, %(rows)s) g
            WHERE a.customer_id = ANY(%(ids)s::uuid[])
            """,
            {"rows": rows, "ids": customer_ids},
        )
        cursor.execute(
            """
            INSERT INTO loyalty_pointsaward (tenant_id, id, account_id, transaction_id, points, remaining,
                qualifying_points, status, expires_at, created_at)
            SELECT t.tenant_id, gen_random_uuid(), t.account_id, t.id, 1, 1, 1, 'available', t.expires_at,
                   t.created_at
            FROM loyalty_loyaltytransaction t
            WHERE t.customer_id = ANY(%(ids)s::uuid[]) AND t.reference = 'bench history'
              AND NOT EXISTS (SELECT 1 FROM loyalty_pointsaward w WHERE w.transaction_id = t.id)
            """,
            {"ids": customer_ids},
        )
        cursor.execute(
            """
            UPDATE loyalty_loyaltyaccount SET available = available + %(rows)s,
                lifetime_earned = lifetime_earned + %(rows)s, qualifying_points = qualifying_points + %(rows)s
            WHERE customer_id = ANY(%(ids)s::uuid[])
            """,
            {"rows": rows, "ids": customer_ids},
        )


def customers_bulk_sql(total: int) -> int:
    """Grow the tenant's individuals to `total` with one INSERT ... SELECT (a million in well under a minute, where
    the ORM would take several): the scaling scenarios only need the table and its indexes that large."""
    from django.db import connection

    from core.tenancy import tenant_context

    with tenant_context(TENANT), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer WHERE type = 'individual'")
        have = cursor.fetchone()[0]
        if have >= total:
            return int(have)
        cursor.execute(
            """
            INSERT INTO customers_customer (id, tenant_id, type, first_name, last_name, legal_name, trade_name,
                email, phone, document_type, salesperson, route, status, notes, created_at, updated_at)
            SELECT gen_random_uuid(), %(tenant)s, 'individual', 'Bench' || g, 'Customer', '', '',
                   'bench' || g || '@example.com', '+569' || lpad((60000000 + g)::text, 8, '0'), '', '', '',
                   'active', '', now(), now()
            FROM generate_series(%(low)s::int, %(high)s::int - 1) g
            """,
            {"tenant": TENANT, "low": have, "high": total},
        )
        cursor.execute("ANALYZE customers_customer")
    return total


def accounts_bulk_sql() -> None:
    """An empty loyalty account for every individual that has none, in one statement (see `accounts_ensure`)."""
    from django.db import connection

    from core.tenancy import tenant_context

    with tenant_context(TENANT), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO loyalty_loyaltyaccount (tenant_id, customer_id, available, allow_negative, pending,
                lifetime_earned, redeemed, expired, adjusted, unrecovered, qualifying_points, tier, earned_tier,
                tier_override, created_at, updated_at)
            SELECT c.tenant_id, c.id, 0, false, 0, 0, 0, 0, 0, 0, 0, 'bronze', 'bronze', '', now(), now()
            FROM customers_customer c WHERE c.type = 'individual'
            ON CONFLICT DO NOTHING
            """
        )
        cursor.execute("ANALYZE loyalty_loyaltyaccount")


def order_event(customer_id: str) -> dict[str, Any]:
    """An `order.completed` envelope with one item, as the Order service publishes it."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.completed",
        "occurred_at": now,
        "tenant_id": TENANT,
        "version": 1,
        "data": {
            "order_id": uuid.uuid4().hex,
            "customer_id": customer_id,
            "total_amount": "125",
            "currency": "CLP",
            "completed_at": now,
            "channel": "web",
            "items": [{"sku": "SKU-1", "category": "grocery", "quantity": "1", "unit_price": "125"}],
        },
    }
