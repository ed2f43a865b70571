"""Every benchmark of the service in one command (`make bench`, not a test), ending with one line per ratio:

    make bench [BENCH_ARGS='--quick']
    DATABASE_URL=... [REDIS_URL=...] [CELERY_BROKER_URL=amqp://...] .venv/bin/python bench/run.py [--quick]

It runs against the configured PostgreSQL (and Redis and RabbitMQ when they are set), always in databases of its
own, created for the run and dropped afterwards (`<configured database>_bench` and `..._bench_rfm`; `--keep`
keeps them):

1. `grpc_bench.py`: the gRPC door (real `grpcserver` processes) against a bare grpcio echo and bare SQL: cached
   and uncached GetCustomer, AddLoyaltyPoints, RedeemLoyaltyPoints, UseCreditLimit; an earn on accounts with 10
   and with 1,000 ledger rows; in full mode also at 1,000,000 customers;
2. `events_bench.py`: `order.completed` through RabbitMQ, the real worker against a bare psycopg consumer (in full
   mode also two workers);
3. `rfm_bench.py`: the nightly RFM job against the bare `INSERT ... SELECT` (full mode: 1,000,000 customers and
   3,000,000 purchases, three nights; quick: 300,000 customers, two nights).

`--quick` (about 3-4 minutes on a 2-core machine) measures 3 s per scenario instead of 10, skips the
million-customer variants and uses fewer events. The ratios are of figures measured in the same run, so they hold
up on a shared machine far better than the absolute figures do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data

HERE = Path(__file__).resolve().parent

# The lines a script reads, in this order: (name printed, scenario, baseline).
RATIO_LINES = [
    ("get_customer_cached/echo", "grpc"),
    ("get_customer_uncached/bare_sql_lookup", "grpc"),
    ("add_loyalty_points/bare_sql_earn", "grpc"),
    ("redeem_loyalty_points/bare_sql_redeem", "grpc"),
    ("use_credit_limit/bare_sql_credit_use", "grpc"),
    ("event_ingest/bare_consumer", "events"),
    ("rfm_nightly/bare_sql", "rfm"),
    ("rfm_first_run/bare_sql", "rfm"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, no million-customer variants")
    parser.add_argument("--database", default=data.default_database_name("bench"))
    parser.add_argument("--only", default="grpc,events,rfm", help="comma-separated parts to run")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per gRPC scenario")
    parser.add_argument("--rfm-customers", type=int, default=None)
    parser.add_argument("--port-base", type=int, default=0, help="first of 3 ports for the servers")
    parser.add_argument("--profile", action="store_true", help="sample the gRPC server with py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    return parser.parse_args()


def run_part(name: str, argv: list[str], env: dict[str, str]) -> dict:
    """Run one benchmark script; its output goes to ours, its figures come back as JSON."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    started = time.perf_counter()
    print(f"\n=== {name} ===", flush=True)
    code = subprocess.call([sys.executable, *argv, "--json-out", str(out)], cwd=data.ROOT, env=env)
    print(f"=== {name}: {time.perf_counter() - started:.0f} s (exit {code}) ===", flush=True)
    try:
        return json.loads(out.read_text()) if out.stat().st_size else {}
    finally:
        out.unlink(missing_ok=True)


def main() -> int:
    args = parse_args()
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    url, maintenance = data.database_urls(args.database)
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    print(
        f"bench: {'quick' if args.quick else 'full'} run in database {args.database}; "
        f"Redis: {'yes' if os.environ.get('REDIS_URL') else 'no'}; "
        f"RabbitMQ: {'yes' if os.environ.get('CELERY_BROKER_URL', '').startswith('amqp') else 'no'}",
        flush=True,
    )
    data.recreate_database(maintenance, args.database)
    try:
        if "grpc" in parts:
            grpc_argv = [str(HERE / "grpc_bench.py"), "--seconds", str(seconds), "--customers", "10000"]
            grpc_argv += ["--hot", "500", "--pool", "100"] if args.quick else ["--scale-customers", "1000000"]
            if args.port_base:
                grpc_argv += ["--port-base", str(args.port_base)]
            if args.profile:
                grpc_argv.append("--profile")
            results["grpc"] = run_part("gRPC door", grpc_argv, env)
        if "events" in parts:
            events_argv = [str(HERE / "events_bench.py"), "--customers", "10000"]
            events_argv += ["--events", "300"] if args.quick else ["--events", "2000", "--two-workers"]
            results["events"] = run_part("event ingestion", events_argv, env)
        if "rfm" in parts:
            customers = args.rfm_customers or (300_000 if args.quick else 1_000_000)
            rfm_argv = [
                str(HERE / "rfm_bench.py"), "--customers", str(customers), "--database", f"{args.database}_rfm",
                "--repeat", "2" if args.quick else "3",
            ]  # fmt: skip
            if args.keep:
                rfm_argv.append("--keep")
            results["rfm"] = run_part("nightly RFM job", rfm_argv, env)
    finally:
        if not args.keep:
            data.recreate_database(maintenance, args.database, drop_only=True)

    growth = {name: value for part in results.values() for name, value in part.get("growth", {}).items()}
    if growth:
        print("\ngrowth (larger over smaller; latency p50 for the gRPC variants, goal <= 1.2):")
        for name, value in growth.items():
            print(f"  {name} = {value:.2f}")
    extra = {name: value for part in results.values() for name, value in part.get("extra", {}).items()}
    if extra:
        print("\nRFM job (first run goal <= 4; CPU time: the database backend's and the bench process's):")
    for name, value in extra.items():
        print(f"  {name} = {value:.2f}")
    print(
        f"\nbench finished in {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'})\n"
    )
    for name, part in RATIO_LINES:
        value = results.get(part, {}).get("ratios", {}).get(name)
        shown = f"{value:.2f}" if isinstance(value, int | float) and math.isfinite(value) else "nan"
        print(f"ratio {name} = {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
