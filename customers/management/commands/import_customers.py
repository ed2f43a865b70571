"""`manage.py import_customers FILE.csv --tenant SLUG`: validate every row, import the good ones, report the bad."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.models import Tenant
from customers.importing import COLUMNS, customers_import, read_csv


class Command(BaseCommand):
    help = (
        "Import customers from a CSV file with a header row (columns: "
        + ", ".join(sorted(COLUMNS))
        + "). Rows matching an existing customer by external_id, document_number or email update it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"Unknown tenant {options['tenant']!r}")
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows, header = read_csv(stream)
        unknown = [h for h in header if h and h not in COLUMNS]
        if unknown:
            self.stderr.write(f"Ignoring unknown columns: {', '.join(unknown)}")
        with tqdm(total=len(rows), unit="row", disable=options["no_progress"], file=self.stderr) as bar:
            report = customers_import(
                tenant=tenant, rows=rows, actor=f"import:{path.name}", on_row=lambda: bar.update(1)
            )
        for line, reason in report.errors:
            self.stderr.write(f"line {line}: {reason}")
        self.stdout.write(
            f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
            f"rejected {len(report.errors)}"
        )
        if report.errors and not report.ok:
            raise CommandError("No row could be imported.")
