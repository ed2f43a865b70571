"""Create the demo tenant, its staff users and a handful of customers the first time; print how to log in."""

from __future__ import annotations

import importlib
from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from core.auth import SCOPES, issue_dev_token
from core.models import Tenant, User
from core.tenancy import tenant_context
from customers.models import Customer
from customers.services import address_create, customer_create

DEMO_TENANT = "demo-market"
DEMO_ADMIN = ("admin", "admin")
# Staff of the demo tenant (password = username) and their group: a credit manager and a store clerk.
DEMO_STAFF = [("manager", "credit managers"), ("store", "store staff")]
DEMO_CUSTOMERS: list[dict[str, Any]] = [
    {
        "type": "individual",
        "first_name": "Ana",
        "last_name": "Pérez",
        "email": "ana.perez@example.com",
        "phone": "+56 9 6123 4567",
        "document_number": "12.345.678-5",
        "loyalty_card_number": "LC-0001",
    },
    {
        "type": "individual",
        "first_name": "Bruno",
        "last_name": "Soto",
        "email": "bruno.soto@example.com",
        "phone": "9 7234 5678",
        "document_number": "11.111.111-1",
        "loyalty_card_number": "LC-0002",
    },
    {
        "type": "individual",
        "first_name": "Carla",
        "last_name": "Muñoz",
        "email": "carla@example.com",
        "phone": "+56 9 8345 6789",
        "loyalty_card_number": "LC-0003",
    },
    {
        "type": "business",
        "legal_name": "Constructora Andes SpA",
        "trade_name": "Andes Construcciones",
        "email": "compras@andes.example.com",
        "phone": "+56 2 2123 4567",
        "document_number": "76.086.428-5",
        "salesperson": "Diego",
        "route": "Norte",
    },
    {
        "type": "business",
        "legal_name": "Café del Puerto Ltda",
        "trade_name": "Café del Puerto",
        "email": "hola@cafedelpuerto.example.com",
        "phone": "+56 32 212 3456",
        "document_number": "77.777.777-7",
    },
]


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
            if not Customer.objects.exists():
                for data in DEMO_CUSTOMERS:
                    customer = customer_create(tenant=tenant, data=data, actor="seed_demo")
                    address_create(
                        customer=customer,
                        data={
                            "kind": "shipping",
                            "line1": "Av. Providencia 1234",
                            "city": "Santiago",
                            "country": "CL",
                        },
                        actor="seed_demo",
                    )
            # Each app may add its demo data in `<app>/demo.py` with a `seed(tenant)` function.
            for config in apps.get_app_configs():
                try:
                    module = importlib.import_module(f"{config.name}.demo")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{config.name}.demo":
                        raise
                    continue
                module.seed(tenant)
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
