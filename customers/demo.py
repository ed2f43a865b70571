"""Demo data of the customers app: a handful of individual and business customers with phone numbers."""

from __future__ import annotations

from typing import Any

from core.demo import demo_seeder
from core.models import Tenant
from customers.models import Customer
from customers.services import address_create, customer_create

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


@demo_seeder(order=10)
def seed(tenant: Tenant) -> None:
    if Customer.objects.exists():
        return
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
