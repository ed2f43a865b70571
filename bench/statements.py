"""The statements and the CPU time of one call of each point-of-sale path, in process (not a test):

    DATABASE_URL=... .venv/bin/python bench/statements.py [--database NAME] [--repeat 200] [--sql]

Runs each path the way its gRPC method does (inside `tenant_context`, through the same service or selectors) on a
database of its own (default `<configured database>_statements`, recreated), and prints for each: the statements
it sends (Django's `CaptureQueriesContext`, BEGIN and COMMIT included), grouped by kind, with
`--sql` every statement, and the process CPU time per call with DEBUG off (median of `--repeat` calls).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data


def kind_of(sql: str) -> str:
    text = sql.lstrip().upper()
    if text.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
        return "savepoint"
    if "SET_CONFIG" in text or "CURRENT_SETTING" in text:
        return "tenant setting"
    return text.split()[0].lower()


def table_of(sql: str) -> str:
    for word in sql.replace('"', " ").replace("(", " ").split():
        if "_" in word and word.split("_")[0] in ("customers", "loyalty", "credit", "core", "segmentation"):
            return word.strip(",")
    return ""


def capture(name: str, call: Callable[[], object], *, show_sql: bool) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    statements = [q["sql"] for q in captured.captured_queries]
    print(f"\n## {name}: {len(statements)} statements (BEGIN and COMMIT included)")
    for number, sql in enumerate(statements, 1):
        short = sql if show_sql else sql[:150]
        print(f"  {number:>2}. [{kind_of(sql)} {table_of(sql)}] {short}")
    return statements


def cpu_per_call(call: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.process_time()
        call()
        samples.append(time.process_time() - started)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=data.default_database_name("statements"))
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--sql", action="store_true", help="print every statement in full")
    args = parser.parse_args()
    url, maintenance = data.database_urls(args.database)
    data.recreate_database(maintenance, args.database)
    import os

    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"
    data.setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from core.tenancy import tenant_context
    from credit.services import credit_use
    from customer360.rpc import customer_lookup, customer_message
    from customers.selectors import customer_get
    from loyalty.services import points_earn, points_redeem
    from zenlogic.customer.v1 import customer_service_pb2 as pb

    people = data.customers_load(50)
    firms = data.customers_load(5, business=True)
    data.points_seed([people[0][0]], points=1_000_000)
    data.credit_lines_seed([firms[0][0]])
    tenant = data.tenant_ensure()
    person_id, phone = people[0]
    firm_id = firms[0][0]

    def earn() -> object:
        with tenant_context(data.TENANT):
            return points_earn(
                customer=customer_get(uuid.UUID(person_id)),
                idempotency_key=uuid.uuid4().hex,
                purchase_amount=Decimal("1250.00"),
                reference="bench",
                source="grpc",
                actor=data.ACTOR,
            )

    def redeem() -> object:
        with tenant_context(data.TENANT):
            return points_redeem(
                customer=customer_get(uuid.UUID(person_id)),
                idempotency_key=uuid.uuid4().hex,
                points=1000,
                reference="bench",
                source="grpc",
                actor=data.ACTOR,
            )

    def use_credit() -> object:
        with tenant_context(data.TENANT):
            order = uuid.uuid4().hex
            return credit_use(
                customer=customer_get(uuid.UUID(firm_id)),
                amount=Decimal("1.00"),
                order_id=order,
                idempotency_key=order,
                actor=data.ACTOR,
            )

    def get_customer() -> object:
        # GetCustomer after a cache miss: the lookup, the customer read afresh, and the answer composed
        lookup = customer_lookup(pb.GetCustomerRequest(phone=phone), tenant)
        with tenant_context(data.TENANT):
            found = lookup.find(tenant)
            customer = customer_get(found.id)
            return customer_message(customer).SerializeToString()

    from core.consumers import ROUTES, event_apply

    order_route = next(route for route in ROUTES if route.name == "order")

    def order_completed() -> object:
        return event_apply(order_route, json.dumps(data.order_event(person_id)).encode())

    paths = {
        "AddLoyaltyPoints (earn, no tier change)": earn,
        "RedeemLoyaltyPoints": redeem,
        "UseCreditLimit": use_credit,
        "GetCustomer by phone, cache miss (lookup + compose)": get_customer,
        "order.completed event, one item (the worker's consumer, in process)": order_completed,
    }
    for call in paths.values():  # first calls create the account, fill the process caches
        call()
        call()
    for name, call in paths.items():
        capture(name, call, show_sql=args.sql)
    print("\nCPU per call in this process (DEBUG off, median of", args.repeat, "calls):")
    for name, call in paths.items():
        print(f"  {cpu_per_call(call, args.repeat):6.2f} ms  {name}")
    from django.db import connection

    connection.close()
    data.recreate_database(maintenance, args.database, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
