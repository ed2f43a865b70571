"""Credit lines for tests, made through the services inside their tenant's context, as every door does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.tenancy import tenant_context
from credit import services
from credit.models import CreditLine

REQUESTER = "api:sales-rep"
APPROVER = "api:credit-manager"


def credit_line_requested(
    customer: Any, *, limit: str = "1000.00", terms: int = 30, requested_by: str = REQUESTER
) -> CreditLine:
    with tenant_context(customer.tenant_id):
        return services.credit_line_request(
            customer=customer,
            requested_limit=Decimal(limit),
            payment_terms_days=terms,
            requested_by=requested_by,
            reason="test",
        )


def credit_line_approved(customer: Any, *, limit: str = "1000.00", terms: int = 30) -> CreditLine:
    line = credit_line_requested(customer, limit=limit, terms=terms)
    with tenant_context(customer.tenant_id):
        return services.credit_line_approve(line=line, decided_by=APPROVER, comment="ok")
