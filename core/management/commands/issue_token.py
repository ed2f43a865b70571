"""Print a development token for the `jwt` verifier."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.auth import SCOPES, issue_dev_token


class Command(BaseCommand):
    help = "Print a development bearer token for the jwt verifier (refuses with any other verifier)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug (the token's `tenant` claim).")
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=list(SCOPES),
            help="Scopes (default: all of this service's scopes).",
        )
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds (default 3600).")
        parser.add_argument("--user", default="dev-user", help="The token's `sub` claim.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "issue_token refuses in production (APP_ENV=production): the Auth Service issues tokens."
            )
        if settings.AUTH_VERIFIER != "jwt":
            raise CommandError(
                f"issue_token works only with the jwt verifier; AUTH_VERIFIER is {settings.AUTH_VERIFIER!r}."
            )
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be a positive number of seconds.")
        scopes: list[str] = []
        for item in options["scopes"]:
            scopes.extend(s for s in item.replace(",", " ").split() if s)
        try:
            token = issue_dev_token(
                tenant=options["tenant"], user_id=options["user"], scopes=scopes, ttl_seconds=options["ttl"]
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(token)
