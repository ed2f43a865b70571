"""Recompute RFM segments by hand: the nightly job, for one tenant or all, with a progress bar."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.errors import DomainError
from core.models import Tenant
from core.tenancy import tenant_cached, tenant_context
from segmentation.services import STAGES, rfm_recompute


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--as-of must be a date (YYYY-MM-DD), not {value!r}") from exc


class Command(BaseCommand):
    help = "Recompute the RFM segments (the nightly job) for one tenant or every tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant).")
        parser.add_argument(
            "--as-of",
            type=_date,
            help="As-of date, YYYY-MM-DD (default: yesterday in each tenant's time zone).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant {options['tenant']!r}")
        slugs = list(tenants.values_list("slug", flat=True))
        failed = 0
        stream = getattr(self.stderr, "_out", None)  # tqdm redraws with carriage returns: the raw stream
        with tqdm(
            total=len(slugs) * len(STAGES), unit="step", file=stream, disable=options["verbosity"] == 0
        ) as bar:
            for slug in slugs:
                tenant = tenant_cached(slug)

                def advance(stage: str, slug: str = slug) -> None:
                    bar.set_description(f"{slug}: {stage}")
                    bar.update(1)

                done = bar.n
                try:
                    with tenant_context(tenant):
                        result = rfm_recompute(
                            tenant=tenant, as_of=options["as_of"], triggered_by="command", progress=advance
                        )
                except DomainError as exc:
                    failed += 1
                    bar.update(done + len(STAGES) - bar.n)
                    with bar.external_write_mode():
                        self.stderr.write(f"{slug}: {exc.message}")
                    continue
                run = result.run
                state = "computed" if result.created else "already computed, nothing changed"
                with bar.external_write_mode():
                    self.stdout.write(
                        f"{slug}: as of {run.as_of} (rules v{run.rule_version}) {state}: "
                        f"{run.customers_total} customers, {run.segment_changes} segment changes"
                    )
        if failed:
            raise CommandError(f"{failed} tenant(s) refused")
