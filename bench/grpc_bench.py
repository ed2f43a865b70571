"""Benchmark of the gRPC door (not a test): calls/s and latency against bare grpcio and bare SQL.

    DATABASE_URL=... [REDIS_URL=...] .venv/bin/python bench/grpc_bench.py [--seconds 10] [--clients 8]
        [--customers 10000] [--processes 1] [--profile]

Migrates the database it is given, loads `--customers` customers into the tenant `bench` (once), starts
`manage.py grpcserver` and a bare grpcio echo server as separate processes, and measures with `--clients`
concurrent client threads (one channel each) for `--seconds` per scenario:

- echo: a bare grpcio unary echo (the ceiling of one Python gRPC process on this machine);
- GetCustomer by phone, answered from the cache (every phone looked up once before measuring);
- GetCustomer by phone with the cache off (a second server with CUSTOMER_CACHE_TTL=0: database every time);
- AddLoyaltyPoints for a purchase (a new idempotency key per call, random customers);
- bare SQL earn: psycopg, one connection per client, the data statements of an earn in one transaction.

It prints the table and the ratios GetCustomer/echo and AddLoyaltyPoints/bare SQL. With `--profile` it samples
the server with py-spy during the GetCustomer and AddLoyaltyPoints runs and prints where the time goes.
Use a database of its own: the customers and the points it writes stay there.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench"
ECHO_METHOD = "/bench.Echo/Echo"


# --- the bare echo server (run in its own process) ---------------------------------------------------------------
def serve_echo(port: int, workers: int) -> None:
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=[("grpc.so_reuseport", 1)])
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)  # bytes in, bytes out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()


# --- setup -------------------------------------------------------------------------------------------------------
def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def load_customers(count: int) -> list[tuple[str, str]]:
    """(id, phone) of `count` customers of the tenant `bench`, created in bulk the first time."""
    from core.models import Tenant
    from core.tenancy import tenant_context
    from customers.models import Customer

    tenant, _ = Tenant.objects.get_or_create(
        slug=TENANT,
        defaults={
            "name": "Bench",
            "country": "CL",
            "phone_region": "CL",
            "currency": "CLP",
            "time_zone": "America/Santiago",
        },
    )
    with tenant_context(tenant):
        have = Customer.objects.count()
        if have < count:
            Customer.objects.bulk_create(
                [
                    Customer(
                        tenant=tenant,
                        first_name=f"Bench{n}",
                        last_name="Customer",
                        email=f"bench{n}@example.com",
                        phone=f"+569{60000000 + n:08d}",
                    )
                    for n in range(have, count)
                ],
                batch_size=2000,
            )
        rows = list(Customer.objects.order_by("phone").values_list("id", "phone")[:count])
    return [(str(pk), phone) for pk, phone in rows]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # as in production: DEBUG off (with it Django keeps every query's SQL), logs at WARNING
    base = {**os.environ, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(argv, cwd=ROOT, env={**base, **(env or {})})


def wait_ready(port: int, method: str, request: bytes, metadata: list[tuple[str, str]]) -> None:
    import grpc

    deadline = time.monotonic() + 60
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)
        while True:
            try:
                call(request, metadata=metadata, timeout=2, wait_for_ready=True)
                return
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server on {port} not ready: {exc}") from exc
                time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load generation ---------------------------------------------------------------------------------------------
class Result:
    def __init__(self, name: str, latencies: list[float], errors: int, seconds: float) -> None:
        self.name = name
        self.latencies = sorted(latencies)
        self.errors = errors
        self.seconds = seconds

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(int(q * len(self.latencies)), len(self.latencies) - 1)] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<34} {len(self.latencies):>8} {self.rate:>9.0f} {self.pct(0.50):>8.2f} "
            f"{self.pct(0.99):>8.2f} {self.errors:>6}"
        )


def run_load(
    name: str,
    clients: int,
    seconds: float,
    make_worker: Callable[[int], Callable[[], None]],
    warmup: float = 1.0,
) -> Result:
    """`clients` threads call their worker in a loop; calls finishing in the measured window count."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    begin = time.perf_counter() + warmup
    end = begin + seconds
    first_error: list[BaseException] = []

    def loop(index: int) -> None:
        work = make_worker(index)
        mine = latencies[index]
        while True:
            started = time.perf_counter()
            if started >= end:
                break
            try:
                work()
            except Exception as exc:
                if not first_error:
                    first_error.append(exc)
                if started >= begin:
                    errors[index] += 1
                continue
            if started >= begin:
                mine.append(time.perf_counter() - started)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if first_error:
        print(f"  {name}: first error: {first_error[0]!r}"[:400], file=sys.stderr)
    return Result(name, [x for chunk in latencies for x in chunk], sum(errors), seconds)


# --- bare SQL: the data statements of an earn, in one transaction ------------------------------------------------
BARE_EARN = [
    ("SELECT set_config('app.tenant_id', %(tenant)s, true), set_config('app.all_tenants', 'off', true)"),
    ("SELECT id, type, first_name, last_name, status FROM customers_customer WHERE id = %(customer)s"),
    (
        "SELECT id, fingerprint, result FROM loyalty_loyaltyoperation "
        "WHERE tenant_id = %(tenant)s AND kind = 'earn' AND idempotency_key = %(key)s"
    ),
    (
        "INSERT INTO loyalty_loyaltyoperation (tenant_id, id, customer_id, kind, idempotency_key, fingerprint, "
        "result, created_at) VALUES (%(tenant)s, %(op)s, %(customer)s, 'earn', %(key)s, %(fingerprint)s, '{}', "
        "%(now)s)"
    ),
    ("SELECT * FROM loyalty_loyaltyprogram WHERE tenant_id = %(tenant)s"),
    ("SELECT * FROM loyalty_loyaltytier WHERE tenant_id = %(tenant)s ORDER BY threshold"),
    (
        "INSERT INTO loyalty_loyaltyaccount (tenant_id, customer_id, available, allow_negative, pending, "
        "lifetime_earned, redeemed, expired, adjusted, unrecovered, qualifying_points, tier, earned_tier, "
        "tier_override, created_at, updated_at) VALUES (%(tenant)s, %(customer)s, 0, false, 0, 0, 0, 0, 0, 0, 0, "
        "'bronze', 'bronze', '', %(now)s, %(now)s) ON CONFLICT DO NOTHING"
    ),
    (
        "SELECT id, available, pending, lifetime_earned, qualifying_points, tier FROM loyalty_loyaltyaccount "
        "WHERE tenant_id = %(tenant)s AND customer_id = %(customer)s FOR UPDATE"
    ),
    (
        "SELECT a.id FROM loyalty_pointsaward a JOIN loyalty_loyaltytransaction t ON a.transaction_id = t.id "
        "WHERE a.tenant_id = %(tenant)s AND a.account_id = %(account)s AND a.release_at <= %(now)s "
        "AND a.status = 'pending' ORDER BY a.release_at, t.seq"
    ),
    (
        "SELECT a.id FROM loyalty_pointsaward a JOIN loyalty_loyaltytransaction t ON a.transaction_id = t.id "
        "WHERE a.tenant_id = %(tenant)s AND a.account_id = %(account)s AND a.expires_at <= %(now)s "
        "AND a.remaining > 0 AND a.status = 'available' ORDER BY a.expires_at, t.seq"
    ),
    (
        "SELECT sum(qualifying_delta) FROM loyalty_loyaltytransaction WHERE tenant_id = %(tenant)s "
        "AND account_id = %(account)s AND effective_at > %(year_ago)s AND effective_at <= %(now)s "
        "AND qualifying_delta <> 0"
    ),
    (
        "INSERT INTO loyalty_loyaltytransaction (tenant_id, id, account_id, customer_id, operation_id, type, "
        "points, available_delta, pending_delta, qualifying_delta, qualifying_points, unrecovered_points, "
        "balance_after, pending_after, reference, idempotency_key, source, actor, reason, purchase_amount, "
        "currency, multiplier, expires_at, tier_after, effective_at, created_at) VALUES (%(tenant)s, %(txn)s, "
        "%(account)s, %(customer)s, %(op)s, 'earn', 1250, 1250, 0, 1250, 1250, 0, 0, 0, 'bench', %(key)s, "
        "'grpc', 'bench', '', 1250.00, 'CLP', 1.000, %(expires)s, 'bronze', %(now)s, %(now)s) RETURNING seq"
    ),
    (
        "INSERT INTO loyalty_pointsaward (tenant_id, id, account_id, transaction_id, points, remaining, "
        "qualifying_points, status, expires_at, created_at) VALUES (%(tenant)s, %(award)s, %(account)s, "
        "%(txn)s, 1250, 1250, 1250, 'available', %(expires)s, %(now)s)"
    ),
    (
        "UPDATE loyalty_loyaltyaccount SET available = available + 1250, lifetime_earned = lifetime_earned + 1250, "
        "qualifying_points = qualifying_points + 1250, qualifying_as_of = %(now)s, updated_at = %(now)s "
        "WHERE id = %(account)s"
    ),
    (
        "INSERT INTO core_outboxevent (tenant_id, event_id, event_type, occurred_at, aggregate_id, payload, "
        "created_at, attempts, last_error) VALUES (%(tenant)s, %(event)s, 'loyalty.points.earned', %(now)s, "
        "%(customer)s, %(payload)s, %(now)s, 0, '')"
    ),
    ("UPDATE loyalty_loyaltyoperation SET result = %(result)s WHERE id = %(op)s"),
]


def bare_sql_worker(database_url: str, customers: list[tuple[str, str]]) -> Callable[[], None]:
    import psycopg

    connection = psycopg.connect(database_url, autocommit=False)
    payload = json.dumps({"event_type": "loyalty.points.earned", "data": {"points": 1250, "x": "y" * 400}})
    result = json.dumps({"transaction_id": str(uuid.uuid4()), "points": 1250, "x": "y" * 180})

    def earn_once() -> None:
        customer = random.choice(customers)[0]
        now = datetime.now(UTC)
        params = {
            "tenant": TENANT,
            "customer": customer,
            "key": uuid.uuid4().hex,
            "op": uuid.uuid4(),
            "txn": uuid.uuid4(),
            "award": uuid.uuid4(),
            "event": uuid.uuid4(),
            "fingerprint": uuid.uuid4().hex * 2,
            "now": now,
            "year_ago": now - timedelta(days=365),
            "expires": now + timedelta(days=365),
            "payload": payload,
            "result": result,
            "account": None,
        }
        with connection.transaction(), connection.cursor() as cursor:
            for sql in BARE_EARN:
                cursor.execute(sql, params)
                if "FOR UPDATE" in sql:
                    params["account"] = cursor.fetchone()[0]

    return earn_once


# --- profile -----------------------------------------------------------------------------------------------------
BUCKETS = [
    ("token check (JWT; verified tokens remembered 30 s)", ("core/auth.py",)),
    ("tenant transaction (BEGIN, set_config, COMMIT)", ("core/tenancy.py",)),
    ("customer cache (django-redis)", ("customers/cache.py",)),
    ("phone normalisation (phonenumbers)", ("phonenumbers/",)),
    ("Django ORM (compiling SQL, building model instances)", ("django/db/models/",)),
    ("psycopg (sending queries, reading results)", ("psycopg/",)),
    ("loyalty service (points_earn)", ("loyalty/services.py",)),
    ("GetCustomer answer from the selectors of 3 apps", ("customer_message (customer360/rpc.py",)),
    ("Prometheus metrics", ("prometheus_client/",)),
    ("close_old_connections", ("close_old_connections",)),
]


def summarize_profile(path: str, title: str) -> None:
    """Inclusive share of the server's busy samples per area, and the busiest functions of our own code.

    Sampled with `--gil`: only the thread holding the GIL is recorded, so the shares are of the Python work the
    single process can do (the bottleneck), not of time spent waiting for PostgreSQL or Redis. py-spy's raw
    format: one line per distinct stack, `frame;frame;... count`, a frame being `function (path/file.py:line)`;
    only the worker threads (which serve the calls) are counted; gRPC's own polling thread is reported apart."""
    busy = 0
    other = 0
    buckets: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    own = ("core/", "customers/", "loyalty/", "credit/", "segmentation/")
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if "_call_behavior (grpc/_server.py" not in stack:
            other += int(count_text)
            continue
        count = int(count_text)
        busy += count
        for name, needles in BUCKETS:
            if any(needle in stack for needle in needles):
                buckets[name] += count
        seen: set[str] = set()
        for frame in stack.split(";"):
            function, _, where = frame.partition(" (")
            file = where.split(":")[0]
            if file.startswith(own) and function not in ("handler", "<lambda>", "_run_in_thread_context"):
                key = f"{file}:{function}"
                if key not in seen:
                    seen.add(key)
                    ours[key] += count
    total = max(busy + other, 1)
    print(
        f"\nProfile of the server during {title}: {total} samples holding the GIL, {100 * busy / total:.0f}% in "
        f"the methods (areas overlap), {100 * other / total:.0f}% in grpcio's own threads (polling, (de)serialising):"
    )
    for name, count in buckets.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("  busiest functions of the service (inclusive):")
    for function, count in ours.most_common(10):
        print(f"  {100 * count / total:5.1f}%  {function}")


def profiled(pid: int, seconds: float, run: Callable[[], Result], title: str) -> Result:
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
        out = handle.name
    py_spy = Path(sys.executable).with_name("py-spy")
    spy = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--gil",
            "--format",
            "raw",
            "--output",
            out,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result = run()
    spy.wait(60)
    summarize_profile(out, title)
    return result


# --- main --------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8, help="server worker threads")
    parser.add_argument("--processes", type=int, default=1, help="grpcserver processes sharing the port")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    parser.add_argument("--serve-echo", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo, args.workers)
        return 0

    setup_django()
    import grpc
    from django.core.management import call_command

    from core.auth import SCOPES, issue_dev_token
    from zenlogic.customer.v1 import customer_service_pb2 as pb
    from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    customers = load_customers(args.customers)
    print(f"{len(customers)} customers of tenant {TENANT!r} ready in {time.perf_counter() - started:.1f} s")
    database_url = os.environ["DATABASE_URL"]
    token = issue_dev_token(tenant=TENANT, user_id="bench", scopes=list(SCOPES), ttl_seconds=3600)
    metadata = [("authorization", f"Bearer {token}")]
    phones = [phone for _, phone in customers]
    probe = pb.GetCustomerRequest(phone=phones[0]).SerializeToString()

    app_port, cold_port, echo_port = free_port(), free_port(), free_port()
    server_argv = [
        sys.executable,
        "manage.py",
        "grpcserver",
        "--bind",
        "127.0.0.1",
        "--metrics-port",
        "0",
        "--max-workers",
        str(args.workers),
        "--grace",
        "2",
    ]
    # a key prefix of its own per run: answers cached by an earlier run would expire in the middle of this one
    run_id = uuid.uuid4().hex[:8]
    app = start(
        [*server_argv, "--port", str(app_port), "--processes", str(args.processes)],
        env={"CACHE_KEY_PREFIX": f"bench-{run_id}"},
    )
    cold = start(
        [*server_argv, "--port", str(cold_port)],
        env={"CUSTOMER_CACHE_TTL": "0", "CACHE_KEY_PREFIX": f"bench-nocache-{run_id}"},
    )
    echo = start([sys.executable, __file__, "--serve-echo", str(echo_port), "--workers", str(args.workers)])
    results: dict[str, Result] = {}
    try:
        wait_ready(echo_port, ECHO_METHOD, probe, [])
        get_customer = "/zenlogic.customer.v1.CustomerService/GetCustomer"
        wait_ready(app_port, get_customer, probe, metadata)
        wait_ready(cold_port, get_customer, probe, metadata)
        print(
            f"cache: {'Redis' if os.environ.get('REDIS_URL') else 'local memory (set REDIS_URL for Redis)'}; "
            f"{args.clients} clients, {args.seconds:.0f} s per scenario, {args.workers} worker threads, "
            f"{args.processes} server process(es)\n"
        )

        def echo_worker(index: int) -> Callable[[], None]:
            call = grpc.insecure_channel(f"127.0.0.1:{echo_port}").unary_unary(ECHO_METHOD)
            return lambda: call(probe, timeout=10)

        def stub_for(port: int) -> pb_grpc.CustomerServiceStub:
            return pb_grpc.CustomerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def get_worker(port: int) -> Callable[[int], Callable[[], None]]:
            def make(index: int) -> Callable[[], None]:
                stub = stub_for(port)
                return lambda: stub.GetCustomer(
                    pb.GetCustomerRequest(phone=random.choice(phones)), metadata=metadata, timeout=10
                )

            return make

        def earn_worker(index: int) -> Callable[[], None]:
            stub = stub_for(app_port)
            return lambda: stub.AddLoyaltyPoints(
                pb.AddLoyaltyPointsRequest(
                    customer_id=random.choice(customers)[0],
                    idempotency_key=uuid.uuid4().hex,
                    purchase_amount="1250.00",
                    reference="bench",
                ),
                metadata=metadata,
                timeout=10,
            )

        # every phone once, so that the cached run is answered from the cache
        warm = iter(phones)
        lock = threading.Lock()

        def warm_all() -> None:
            stub = stub_for(app_port)
            while True:
                with lock:
                    phone = next(warm, None)
                if phone is None:
                    return
                stub.GetCustomer(pb.GetCustomerRequest(phone=phone), metadata=metadata, timeout=30)

        started = time.perf_counter()
        warmers = [threading.Thread(target=warm_all) for _ in range(args.clients)]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        print(f"every phone looked up once (cache warm) in {time.perf_counter() - started:.1f} s")

        app_pid = app.pid if args.processes == 1 else 0
        seconds = args.seconds

        def measure(name: str, maker: Callable[[int], Callable[[], None]], profile: bool = False) -> None:
            def run() -> Result:
                return run_load(name, args.clients, seconds, maker)

            if profile and args.profile and app_pid:
                results[name] = profiled(app_pid, seconds + 1, run, name)
            else:
                results[name] = run()

        measure("echo (bare grpcio)", echo_worker)
        measure("GetCustomer by phone (cached)", get_worker(app_port), profile=True)
        measure("GetCustomer by phone (no cache)", get_worker(cold_port))
        measure("AddLoyaltyPoints (purchase)", earn_worker, profile=True)
        measure("bare SQL earn (psycopg)", lambda i: bare_sql_worker(database_url, customers))
    finally:
        for proc in (app, cold, echo):
            stop(proc)

    print(f"\n{'scenario':<34} {'calls':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for result in results.values():
        print(result.row())
    echo_rate = results["echo (bare grpcio)"].rate
    sql_rate = results["bare SQL earn (psycopg)"].rate
    print(
        f"\nGetCustomer (cached) / echo      = {results['GetCustomer by phone (cached)'].rate / echo_rate:.2f}"
        "  (target >= 0.60)"
    )
    print(
        f"GetCustomer (no cache) / echo    = {results['GetCustomer by phone (no cache)'].rate / echo_rate:.2f}"
    )
    print(
        f"AddLoyaltyPoints / bare SQL earn = {results['AddLoyaltyPoints (purchase)'].rate / sql_rate:.2f}"
        "  (target >= 0.33)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
