"""Benchmark of the gRPC door (not a test): calls/s and latency against bare grpcio and bare SQL, in one run.

    DATABASE_URL=... [REDIS_URL=...] .venv/bin/python bench/grpc_bench.py [--seconds 10] [--clients 8]
        [--customers 10000] [--hot 2000] [--pool 200] [--ledger-rows 1000] [--scale-customers 1000000]
        [--processes N] [--port-base P] [--profile] [--json-out FILE]

Migrates the database it is given and loads the tenant `bench` (customers and empty loyalty accounts in bulk; points
and approved credit lines for the pools through the services; accounts with 10 and with `--ledger-rows` ledger
rows), starts two `manage.py grpcserver` servers (one with the customer cache, one with `CUSTOMER_CACHE_TTL=0`)
and a bare grpcio echo server as separate processes, and measures with `--clients` client threads (one channel
each) for `--seconds` per scenario: echo; GetCustomer by phone cached (a hot set of `--hot` phones, each looked up
once first by many clients at once) and uncached (all customers); the bare SQL lookup of the same rows;
AddLoyaltyPoints (no tier change) and the bare SQL earn; RedeemLoyaltyPoints and the bare SQL redeem;
UseCreditLimit and the bare SQL credit use (`bare_sql.py`); the earn on shallow and on deep ledgers; with
`--scale-customers`, GetCustomer (no cache), the bare lookup and the earn again after growing the tenant to that many
customers. It prints the table, the throughput ratios and the growth of p50 latency. `--profile` samples the
servers with py-spy during each gRPC scenario and prints where the time goes. Use a database of its own.
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


# --- profile -----------------------------------------------------------------------------------------------------
BUCKETS = [
    ("token check (JWT; verified tokens remembered 30 s)", ("core/auth.py",)),
    ("tenant transaction (BEGIN, set_config, COMMIT)", ("core/tenancy.py",)),
    ("customer cache (django-redis)", ("customers/cache.py",)),
    ("phone normalisation (phonenumbers)", ("phonenumbers/",)),
    ("Django ORM (compiling SQL, building model instances)", ("django/db/models/",)),
    ("psycopg (sending queries, reading results)", ("psycopg/",)),
    ("loyalty services (points_earn, points_redeem)", ("loyalty/services/",)),
    ("credit service (credit_use)", ("credit/services/",)),
    ("idempotency and savepoints (transaction.atomic)", ("django/db/transaction.py",)),
    ("GetCustomer card (one statement)", ("customer_card (customer360/selectors.py",)),
    ("core.writes (one statement per operation's writes)", ("core/writes.py",)),
    ("Prometheus metrics", ("prometheus_client/",)),
    ("close_old_connections", ("close_old_connections",)),
]


def summarize_profile(path: str, title: str) -> None:
    """Inclusive share of the server's busy samples per area, and the busiest functions of our own code.

    Sampled with `--gil`: only the thread holding the GIL is recorded, so the shares are of the Python work the
    single process can do (the bottleneck), not of time spent waiting for PostgreSQL or Redis. py-spy's raw
    format: one line per distinct stack, `frame;frame;... count`, a frame being `function (path/file.py:line)`;
    only the worker threads (which serve the calls) are counted; the event loop and gRPC's own threads apart."""
    busy = 0
    other = 0
    buckets: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    own = ("core/", "customers/", "loyalty/", "credit/", "segmentation/", "customer360/")
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        # a method's stack: grpc.aio hands the call to a worker thread (`core.rpc_gate`), which runs
        # `core.rpc`'s handler; everything else (the event loop, grpcio's own threads) is reported apart
        if "(core/rpc.py" not in stack:
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
            "--subprocesses",
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
GET_CUSTOMER = "/zenlogic.customer.v1.CustomerService/GetCustomer"
LEDGER_SHALLOW = 10
SCALE_POOL = 64  # accounts in each ledger-depth pool (8 clients: few lock waits)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--hot", type=int, default=2_000, help="phones warmed for the cached GetCustomer")
    parser.add_argument(
        "--pool", type=int, default=200, help="customers with points to redeem / credit lines"
    )
    parser.add_argument(
        "--ledger-rows", type=int, default=1_000, help="ledger rows of the deep accounts (0: skip)"
    )
    parser.add_argument(
        "--scale-customers", type=int, default=0, help="also measure with this many customers (e.g. 1000000)"
    )
    parser.add_argument("--workers", type=int, default=8, help="server worker threads")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="grpcserver processes sharing the port (default: the server's)",
    )
    parser.add_argument(
        "--port-base", type=int, default=0, help="first of 3 ports to use (default: free ones)"
    )
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    parser.add_argument("--json-out", default="", help="write the results to this file as JSON")
    parser.add_argument("--serve-echo", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> dict[str, list[tuple[str, str]]]:
    """The bench tenant's customers (bulk), empty accounts for all, points and credit lines for the pools."""
    import data

    started = time.perf_counter()
    people = data.customers_load(args.customers)
    firms = data.customers_load(args.pool, business=True)
    data.accounts_ensure([pk for pk, _ in people])
    redeemers = people[: args.pool]
    shallow = people[args.pool : args.pool + SCALE_POOL]
    deep = people[args.pool + SCALE_POOL : args.pool + 2 * SCALE_POOL]
    data.points_seed([pk for pk, _ in redeemers])
    data.credit_lines_seed([pk for pk, _ in firms])
    if args.ledger_rows:
        data.ledger_deepen([pk for pk, _ in shallow], LEDGER_SHALLOW)
        data.ledger_deepen([pk for pk, _ in deep], args.ledger_rows)
    print(
        f"{len(people):,} customers, {len(firms)} businesses with credit lines, {len(redeemers)} with points, "
        f"ledger pools of {SCALE_POOL} ready in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return {"people": people, "firms": firms, "redeemers": redeemers, "shallow": shallow, "deep": deep}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_echo:
        serve_echo(args.serve_echo, args.workers)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bare_sql
    import data

    data.setup_django()
    import grpc
    from django.core.management import call_command

    from core.auth import SCOPES, issue_dev_token
    from zenlogic.customer.v1 import customer_service_pb2 as pb
    from zenlogic.customer.v1 import customer_service_pb2_grpc as pb_grpc

    call_command("migrate", verbosity=0)
    groups = prepare(args)
    people = groups["people"]
    database_url = os.environ["DATABASE_URL"]
    token = issue_dev_token(tenant=TENANT, user_id="bench", scopes=list(SCOPES), ttl_seconds=3600)
    metadata = [("authorization", f"Bearer {token}")]
    probe = pb.GetCustomerRequest(phone=people[0][1]).SerializeToString()

    if args.port_base:
        app_port, cold_port, echo_port = args.port_base, args.port_base + 1, args.port_base + 2
    else:
        app_port, cold_port, echo_port = free_port(), free_port(), free_port()
    server_argv = [
        sys.executable, "manage.py", "grpcserver", "--bind", "127.0.0.1", "--metrics-port", "0",
        "--max-workers", str(args.workers), "--grace", "2",
    ]  # fmt: skip
    # a key prefix of its own per run: answers cached by an earlier run would expire in the middle of this one
    run_id = uuid.uuid4().hex[:8]
    if args.processes:
        server_argv += ["--processes", str(args.processes)]
    app = start(
        [*server_argv, "--port", str(app_port)],
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
        wait_ready(app_port, GET_CUSTOMER, probe, metadata)
        wait_ready(cold_port, GET_CUSTOMER, probe, metadata)
        print(
            f"cache: {'Redis' if os.environ.get('REDIS_URL') else 'local memory (set REDIS_URL for Redis)'}; "
            f"{args.clients} clients, {args.seconds:.0f} s per scenario, {args.workers} worker threads, "
            f"{args.processes or 'the default number of'} server process(es)",
            flush=True,
        )

        def echo_worker(index: int) -> Callable[[], None]:
            call = grpc.insecure_channel(f"127.0.0.1:{echo_port}").unary_unary(ECHO_METHOD)
            return lambda: call(probe, timeout=10)

        def stub_for(port: int) -> pb_grpc.CustomerServiceStub:
            return pb_grpc.CustomerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

        def get_worker(port: int, phones: list[str]) -> Callable[[int], Callable[[], None]]:
            def make(index: int) -> Callable[[], None]:
                stub = stub_for(port)
                return lambda: stub.GetCustomer(
                    pb.GetCustomerRequest(phone=random.choice(phones)), metadata=metadata, timeout=10
                )

            return make

        def earn_worker(pool: list[tuple[str, str]], amount: str) -> Callable[[int], Callable[[], None]]:
            def make(index: int) -> Callable[[], None]:
                stub = stub_for(app_port)
                return lambda: stub.AddLoyaltyPoints(
                    pb.AddLoyaltyPointsRequest(
                        customer_id=random.choice(pool)[0],
                        idempotency_key=uuid.uuid4().hex,
                        purchase_amount=amount,
                        reference="bench",
                    ),
                    metadata=metadata,
                    timeout=10,
                )

            return make

        def redeem_worker(index: int) -> Callable[[], None]:
            stub = stub_for(app_port)
            pool = groups["redeemers"]
            return lambda: stub.RedeemLoyaltyPoints(
                pb.RedeemLoyaltyPointsRequest(
                    customer_id=random.choice(pool)[0],
                    idempotency_key=uuid.uuid4().hex,
                    points=100,
                    reference="bench",
                ),
                metadata=metadata,
                timeout=10,
            )

        def credit_worker(index: int) -> Callable[[], None]:
            stub = stub_for(app_port)
            pool = groups["firms"]

            def use() -> None:
                order = uuid.uuid4().hex
                stub.UseCreditLimit(
                    pb.UseCreditLimitRequest(
                        customer_id=random.choice(pool)[0], amount="1", order_id=order, idempotency_key=order
                    ),
                    metadata=metadata,
                    timeout=10,
                )

            return use

        def bare(
            script: list[str], pool: list[tuple[str, str]], **extra: object
        ) -> Callable[[int], Callable[[], None]]:
            return lambda index: bare_sql.worker(database_url, script, pool, **extra)

        # The cached scenario's phones, each looked up once first, by many clients at once (a cache miss costs the
        # server tens of ms: looking up every customer one at a time took minutes).
        hot = random.sample([phone for _, phone in people], min(args.hot, len(people)))
        started = time.perf_counter()
        warm = iter(hot)
        lock = threading.Lock()

        def warm_all() -> None:
            stub = stub_for(app_port)
            while True:
                with lock:
                    phone = next(warm, None)
                if phone is None:
                    return
                stub.GetCustomer(pb.GetCustomerRequest(phone=phone), metadata=metadata, timeout=30)

        warmers = [threading.Thread(target=warm_all) for _ in range(2 * args.clients)]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        print(
            f"{len(hot):,} phones looked up once (cache warm) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        app_pid, cold_pid = app.pid, cold.pid  # py-spy follows the forked processes (--subprocesses)

        def measure(name: str, maker: Callable[[int], Callable[[], None]], profile: int = 0) -> None:
            def run() -> Result:
                return run_load(name, args.clients, args.seconds, maker)

            if profile and args.profile:
                results[name] = profiled(profile, args.seconds + 1, run, name)
            else:
                results[name] = run()
            print(f"  {results[name].row()}", flush=True)

        all_phones = [phone for _, phone in people]
        measure("echo", echo_worker)
        measure("get_customer_cached", get_worker(app_port, hot), profile=app_pid)
        measure("get_customer_uncached", get_worker(cold_port, all_phones), profile=cold_pid)
        measure("bare_sql_lookup", bare(bare_sql.LOOKUP, people))
        measure("add_loyalty_points", earn_worker(people, "125"), profile=app_pid)
        measure("bare_sql_earn", bare(bare_sql.EARN, people, points=125, amount=125))
        measure("redeem_loyalty_points", redeem_worker, profile=app_pid)
        measure("bare_sql_redeem", bare(bare_sql.REDEEM, groups["redeemers"], points=100, discount=1))
        measure("use_credit_limit", credit_worker, profile=app_pid)
        measure("bare_sql_credit_use", bare(bare_sql.CREDIT_USE, groups["firms"], amount=1))
        if args.ledger_rows:
            measure(f"earn_ledger_{LEDGER_SHALLOW}", earn_worker(groups["shallow"], "10"))
            measure(f"earn_ledger_{args.ledger_rows}", earn_worker(groups["deep"], "10"))
        if args.scale_customers > len(people):
            started = time.perf_counter()
            total = data.customers_bulk_sql(args.scale_customers)
            data.accounts_bulk_sql()
            print(
                f"grown to {total:,} customers (with accounts) in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            from core.tenancy import tenant_context
            from customers.models import Customer

            with tenant_context(TENANT):
                everyone = [
                    (str(pk), phone)
                    for pk, phone in Customer.objects.filter(type="individual").values_list("id", "phone")
                ]
            sample = random.sample(everyone, min(200_000, len(everyone)))
            suffix = f"_{args.scale_customers // 1000}k"
            measure("get_customer_uncached" + suffix, get_worker(cold_port, [phone for _, phone in sample]))
            measure("bare_sql_lookup" + suffix, bare(bare_sql.LOOKUP, sample))
            measure("add_loyalty_points" + suffix, earn_worker(sample, "125"))
    finally:
        for proc in (app, cold, echo):
            stop(proc)

    report(results, args)
    return 0


def ratio(results: dict[str, Result], top: str, bottom: str, *, by: str = "rate") -> float | None:
    if top not in results or bottom not in results:
        return None
    a, b = results[top], results[bottom]
    if by == "p50":
        return a.pct(0.5) / b.pct(0.5) if b.latencies else None
    return a.rate / b.rate if b.rate else None


RATIOS = [
    ("get_customer_cached", "echo", 0.60),
    ("get_customer_uncached", "bare_sql_lookup", 0.30),
    ("add_loyalty_points", "bare_sql_earn", 0.33),
    ("redeem_loyalty_points", "bare_sql_redeem", 0.33),
    ("use_credit_limit", "bare_sql_credit_use", 0.33),
]


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    print(f"\n{'scenario':<34} {'calls':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for result in results.values():
        print(result.row())
    out: dict[str, object] = {
        "scenarios": {
            name: {
                "calls": len(r.latencies),
                "rate": r.rate,
                "p50_ms": r.pct(0.5),
                "p99_ms": r.pct(0.99),
                "errors": r.errors,
            }
            for name, r in results.items()
        },
        "ratios": {},
        "growth": {},
    }
    print("\nthroughput ratios (calls/s over calls/s, same run):")
    for top, bottom, goal in RATIOS:
        value = ratio(results, top, bottom)
        if value is not None:
            out["ratios"][f"{top}/{bottom}"] = value  # type: ignore[index]
            print(f"  {top}/{bottom} = {value:.2f}  (goal >= {goal:.2f})")
    growth = []
    if args.ledger_rows:
        growth.append((f"earn_ledger_{args.ledger_rows}", f"earn_ledger_{LEDGER_SHALLOW}"))
    if args.scale_customers > args.customers:
        suffix = f"_{args.scale_customers // 1000}k"
        growth += [
            (name + suffix, name)
            for name in ("get_customer_uncached", "bare_sql_lookup", "add_loyalty_points")
        ]
    if growth:
        print("growth (p50 latency over p50 latency, goal <= 1.2):")
    for top, bottom in growth:
        value = ratio(results, top, bottom, by="p50")
        if value is not None:
            out["growth"][f"{top}/{bottom}"] = value  # type: ignore[index]
            print(f"  {top}/{bottom} = {value:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
