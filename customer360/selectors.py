"""The customer card a point of sale asks for (GetCustomer), read in one statement.

The customer, its segment, its loyalty account, the program's version and its current credit line come joined in
one row; the program and its tiers come from the per-process snapshot when the version in that row is the one it
was read at (else they are read again), the tenant from the per-process tenant row. What the card shows is what
the apps' own selectors show (`loyalty_summary`, `credit_summary`, `segment_for_customer`); a test holds them
equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import connection

from core import clock
from core.tenancy import require_tenant_slug
from credit.models import OPEN_STATUSES, CreditLine
from customers.errors import CustomerNotFound
from customers.models import Customer, CustomerStatus
from loyalty.models import LoyaltyAccount, LoyaltyProgram
from loyalty.selectors import default_tiers, tier_standing
from loyalty.services.program import program_snapshot_at
from segmentation.selectors import UNCLASSIFIED_VIEW


@dataclass(frozen=True)
class CustomerCard:
    customer: Customer
    segment: str
    points_balance: int
    pending_points: int
    tier: str
    points_to_next_tier: int
    credit_line: CreditLine | None


_CUSTOMER_FIELDS = list(Customer._meta.concrete_fields)
_LINE_FIELDS = list(CreditLine._meta.concrete_fields)
_ACCOUNT_ATTRS = (
    "id",
    "available",
    "pending",
    "tier",
    "qualifying_points",
    "qualifying_as_of",
    "qualifying_counted_from",
    "qualifying_oldest_at",
)


def _columns(alias: str, fields: list[Any]) -> str:
    return ", ".join(f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields)


# Every name below comes from the models, never from input. One open line at most per customer; without one, the
# latest line (as `credit_line_current`).
_CARD_SQL = (
    "SELECT "  # noqa: S608
    + _columns("c", _CUSTOMER_FIELDS)
    + ", s.segment, "
    + ", ".join(f"a.{name}" for name in _ACCOUNT_ATTRS)
    + ", p.id, p.updated_at, "
    + _columns("l", _LINE_FIELDS)
    + " FROM customers_customer c"
    " LEFT JOIN segmentation_customersegment s ON s.customer_id = c.id"
    " LEFT JOIN loyalty_loyaltyaccount a ON a.customer_id = c.id"
    " LEFT JOIN loyalty_loyaltyprogram p ON p.tenant_id = c.tenant_id"
    " LEFT JOIN LATERAL (SELECT * FROM credit_creditline x WHERE x.customer_id = c.id"
    " ORDER BY x.status IN ("
    + ", ".join(["%s"] * len(OPEN_STATUSES))
    + ") DESC, x.created_at DESC LIMIT 1) l ON true"
    " WHERE c.id = %s AND c.tenant_id = %s AND c.status <> %s"
)


def customer_card(customer_id: Any) -> CustomerCard:
    """A live customer of the current tenant with what a till shows of it; another tenant's or an erased one is
    'not found'. One statement (a second one only when the account's qualifying count is out of date, a third
    and fourth when the program changed since this process read it)."""
    try:
        uuid = customer_id if isinstance(customer_id, UUID) else UUID(str(customer_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CustomerNotFound(customer_id=str(customer_id)) from exc
    with connection.cursor() as cursor:
        cursor.execute(
            _CARD_SQL,
            [*(str(s) for s in OPEN_STATUSES), uuid, require_tenant_slug(), str(CustomerStatus.ERASED)],
        )
        row = cursor.fetchone()
    if row is None:
        raise CustomerNotFound(customer_id=str(customer_id))
    n = len(_CUSTOMER_FIELDS)
    customer = Customer.from_db(connection.alias, [f.attname for f in _CUSTOMER_FIELDS], row[:n])
    segment = row[n] if row[n] is not None else UNCLASSIFIED_VIEW.segment
    at = n + 1
    account_values = row[at : at + len(_ACCOUNT_ATTRS)]
    at += len(_ACCOUNT_ATTRS)
    version = None if row[at] is None else (row[at], row[at + 1])
    at += 2
    line_values = row[at:]
    line = None
    if line_values[0] is not None:
        line = CreditLine.from_db(connection.alias, [f.attname for f in _LINE_FIELDS], line_values)

    snapshot = program_snapshot_at(customer.tenant_id, version) if version is not None else None
    if snapshot is not None:
        program, tiers = snapshot.program, list(snapshot.tiers)
    else:  # the tenant never configured a program: the defaults (as `program_get`)
        program = LoyaltyProgram(tenant_id=customer.tenant_id)
        tiers = default_tiers(program)
    if account_values[0] is None:
        tier = tiers[0]
        return CustomerCard(
            customer=customer,
            segment=segment,
            points_balance=0,
            pending_points=0,
            tier=tier.code,
            points_to_next_tier=tiers[1].threshold if len(tiers) > 1 else 0,
            credit_line=line,
        )
    account = LoyaltyAccount(**dict(zip(_ACCOUNT_ATTRS, account_values, strict=True)))
    qualifying, current, next_tier = tier_standing(account, program, tiers, now=clock.now())
    return CustomerCard(
        customer=customer,
        segment=segment,
        points_balance=account.available,
        pending_points=account.pending,
        tier=current.code,
        points_to_next_tier=max(next_tier.threshold - qualifying, 0) if next_tier else 0,
        credit_line=line,
    )
