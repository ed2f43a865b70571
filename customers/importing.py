"""Importing customers from a CSV file: every row validated, good rows imported, bad rows reported with why.

Safe to run twice: a row matches an existing customer by external id, then document, then email, and updates it
instead of creating a duplicate.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.db.models import Q

from core.errors import DomainError
from core.models import Tenant
from core.tenancy import tenant_context
from customers import services
from customers.identifiers import normalize_document, normalize_email
from customers.models import Customer, CustomerStatus

COLUMNS = set(services.EDITABLE_FIELDS)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.created + self.updated + self.unchanged


def _row_data(row: dict[str, str | None]) -> dict[str, Any]:
    data = {k.strip(): (v or "").strip() for k, v in row.items() if k and k.strip() in COLUMNS}
    if not data.get("status"):
        data.pop("status", None)
    return data


def _match(tenant: Tenant, data: dict[str, Any]) -> Customer | None:
    """The existing customer a row describes: by external id, else document, else email."""
    live = Customer.objects.exclude(status=CustomerStatus.ERASED)
    if data.get("external_id"):
        found = live.filter(external_id=data["external_id"]).first()
        if found:
            return found
    if data.get("document_number"):
        _, number = normalize_document(
            data["document_number"],
            document_type=data.get("document_type"),
            country=tenant.country,
            customer_type=data.get("type") or "individual",
        )
        found = live.filter(document_number=number).first()
        if found:
            return found
    if data.get("email"):
        email = normalize_email(data["email"])
        return live.filter(Q(email=email)).first()
    return None


def customers_import(
    *,
    tenant: Tenant,
    rows: Iterable[dict[str, str | None]],
    actor: str,
    on_row: Callable[[], None] | None = None,
) -> ImportReport:
    """Import rows; each row is its own tenant transaction, so one bad row never undoes the good ones."""
    report = ImportReport()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            with tenant_context(tenant):
                _import_row(tenant, row, actor, report)
        except DomainError as exc:
            report.errors.append((line, f"{exc.code}: {exc.message}"))
        if on_row:
            on_row()
    return report


def _import_row(tenant: Tenant, row: dict[str, str | None], actor: str, report: ImportReport) -> None:
    data = _row_data(row)
    if not data:
        raise services.InvalidCustomer("The row has no known column.")
    existing = _match(tenant, data)
    if existing is None:
        data.setdefault("type", "individual")
        services.customer_create(tenant=tenant, data=data, actor=actor)
        report.created += 1
    else:
        changes = {k: v for k, v in data.items() if v != "" or k in ("notes",)}
        before = existing.updated_at
        updated = services.customer_update(customer=existing, data=changes, actor=actor)
        if updated.updated_at != before:
            report.updated += 1
        else:
            report.unchanged += 1


def read_csv(stream: TextIO) -> tuple[list[dict[str, str | None]], list[str]]:
    reader = csv.DictReader(stream)
    header = [h.strip() for h in (reader.fieldnames or [])]
    return list(reader), header
