"""Create the demo tenant, its staff users and a handful of customers the first time; print how to log in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from core.auth import SCOPES, issue_dev_token
from core.demo import demo_seeders
from core.errors import DomainError
from core.models import Tenant, User
from core.tenancy import tenant_context

DEMO_TENANT = "demo-market"
DEMO_ADMIN = ("admin", "admin")
# Staff of the demo tenant (password = username) and their group: a credit manager and a store clerk.
DEMO_STAFF = [("manager", "credit managers"), ("store", "store staff")]


class Command(BaseCommand):
    help = "Load the demo tenant and customers (only the first time) and print a demo login and API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            tenant, created = Tenant.objects.get_or_create(
                slug=DEMO_TENANT,
                defaults={
                    "name": "Demo Market",
                    "country": "CL",
                    "phone_region": "CL",
                    "currency": "CLP",
                    "time_zone": "America/Santiago",
                },
            )
            if not User.objects.filter(username=DEMO_ADMIN[0]).exists():
                User.objects.create_superuser(DEMO_ADMIN[0], "admin@example.com", DEMO_ADMIN[1])
            for username, group_name in DEMO_STAFF:
                if User.objects.filter(username=username).exists():
                    continue
                user = User.objects.create_user(username, f"{username}@example.com", username, tenant=tenant)
                user.is_staff = True
                user.save(update_fields=["is_staff"])
                group = Group.objects.filter(name=group_name).first()
                if group is not None:
                    user.groups.add(group)
        with tenant_context(tenant):
            # Each app declares its demo data in `<app>/demo.py` (core.demo's registry), run in their order.
            for seeder in demo_seeders():
                try:
                    with transaction.atomic():  # a refused seeder leaves the others' data in the transaction
                        seeder.seed(tenant)
                except DomainError as exc:
                    # the demo data was changed since it was seeded (by hand or by an API test run): a second
                    # `make run` must still start, with that app's demo data left as it is
                    self.stderr.write(
                        f"Demo data of {seeder.name.split('.')[0]} left as it is: {exc.code}: {exc}"
                    )
        token = issue_dev_token(
            tenant=DEMO_TENANT, user_id="demo", scopes=list(SCOPES), ttl_seconds=30 * 86400
        )
        if options["quiet"]:
            return
        self.stdout.write(
            f"Demo tenant: {DEMO_TENANT} ({'created' if created else 'already there'})\n"
            f"Admin login: {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]} (superuser), manager / manager (credit manager), "
            f"store / store (store staff), both of {DEMO_TENANT}\n"
            f"API token (30 days, all scopes):\n{token}\n"
        )
