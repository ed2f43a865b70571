"""`manage.py backfill_history`: pull past orders from the Order Service into customers' purchase history.

    python manage.py backfill_history                         every customer of every tenant
    python manage.py backfill_history --tenant acme           every customer of one tenant (repeatable)
    python manage.py backfill_history --customer <uuid>       one customer

Idempotent: an order already in the history (from an `order.completed` event or an earlier run) is left alone, so
the command can be re-run after an interruption. History only: past orders earn no loyalty points.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.errors import ServiceUnavailable
from core.models import Tenant
from core.tenancy import all_tenants_context, tenant_context
from customers.history import BackfillCounts, history_backfill_customer
from customers.models import Customer, CustomerStatus
from customers.order_client import OrderServiceClient


class Command(BaseCommand):
    help = "Pull past orders from the Order Service (GetOrdersByCustomer) into the purchase history, idempotently."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant", action="append", default=[], help="Tenant slug (repeatable; default: all)."
        )
        parser.add_argument("--customer", help="One customer's id.")
        parser.add_argument("--page-size", type=int, default=100)
        parser.add_argument(
            "--address", help="Order Service gRPC address (default: ORDER_SERVICE_GRPC_ADDRESS)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args: Any, **options: Any) -> None:
        targets = self._targets(options["tenant"], options["customer"])
        token = settings.ORDER_SERVICE_TOKEN or None
        totals = BackfillCounts()
        failed: list[str] = []
        with OrderServiceClient(options["address"], token=token) as client:
            bar = tqdm(targets, unit="customer", disable=options["no_progress"], file=self.stderr._out)
            for tenant_id, customer_id in bar:
                try:
                    counts = history_backfill_customer(
                        tenant_id=tenant_id,
                        customer_id=customer_id,
                        client=client,
                        page_size=options["page_size"],
                    )
                except ServiceUnavailable as exc:
                    failed.append(str(customer_id))
                    bar.write(f"{tenant_id}/{customer_id}: {exc.message}")
                    continue
                totals.add(counts)
                bar.set_postfix(orders=totals.orders, recorded=totals.recorded)
        self.stdout.write(
            f"customers: {len(targets)}, orders: {totals.orders}, recorded: {totals.recorded}, "
            f"already recorded: {totals.already_recorded}, not a sale: {totals.not_a_sale}, "
            f"refused: {totals.refused}, customers failed: {len(failed)}"
        )
        if failed:
            raise CommandError(f"{len(failed)} customer(s) could not be backfilled; run the command again.")

    def _targets(self, tenants: list[str], customer: str | None) -> list[tuple[str, Any]]:
        if customer:
            with all_tenants_context():
                found = (
                    Customer.objects.filter(pk=customer).values_list("tenant_id", "id").first()
                    if _is_uuid(customer)
                    else None
                )
            if found is None or (tenants and found[0] not in tenants):
                raise CommandError(f"No customer {customer}.")
            return [found]
        slugs = tenants or list(Tenant.objects.values_list("slug", flat=True))
        unknown = set(slugs) - set(Tenant.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        if unknown:
            raise CommandError(f"Unknown tenant(s): {', '.join(sorted(unknown))}.")
        targets: list[tuple[str, Any]] = []
        for slug in slugs:
            with tenant_context(slug):
                ids = Customer.objects.exclude(status=CustomerStatus.ERASED).order_by("created_at", "id")
                targets += [(slug, pk) for pk in ids.values_list("id", flat=True)]
        return targets


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
