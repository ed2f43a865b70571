"""`migrate`, connected as the owner role; afterwards the app role gets exactly its DML (`core.database_roles`)."""

from __future__ import annotations

from typing import Any

from django.core.management.commands.migrate import Command as DjangoMigrate

from core.database_roles import as_owner, secure_database


class Command(DjangoMigrate):
    help = f"{DjangoMigrate.help} Runs as the role that owns the tables (DATABASE_OWNER_URL)."

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        with as_owner(alias):
            super().handle(*args, **options)
            if not options.get("plan") and not options.get("check_unapplied"):
                secure_database(alias)
