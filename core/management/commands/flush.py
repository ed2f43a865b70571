"""`flush`, connected as the owner role: the app role may not TRUNCATE (Row-Level Security does not filter it)."""

from __future__ import annotations

from typing import Any

from django.core.management.commands.flush import Command as DjangoFlush

from core.database_roles import as_owner


class Command(DjangoFlush):
    help = f"{DjangoFlush.help} Runs as the role that owns the tables (DATABASE_OWNER_URL)."

    def handle(self, **options: Any) -> None:
        with as_owner(options["database"]):
            super().handle(**options)
