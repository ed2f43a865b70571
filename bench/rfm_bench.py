"""Benchmark of the nightly RFM job (not a test): the whole job against a bare `INSERT ... SELECT` with the three
NTILE windows over the same purchases, in the same run, on a database of its own.

    DATABASE_URL=postgres://zenlogic_app:zenlogic_app@127.0.0.1:5432/zenlogic \\
        .venv/bin/python bench/rfm_bench.py --customers 1000000 [--database zl_bench] [--repeat 3] [--keep|--reuse]

The bench database is created (the app role has CREATEDB), migrated and seeded; it is dropped at the end unless
--keep (--reuse starts again from a kept one). Everything runs as the app role under Row-Level Security, inside
`tenant_context`, as in production.

Timed, each inside its own tenant transaction (commit included):
- bare SQL: the purchase aggregates, the three NTILE(5) windows, INSERT into a plain scores table;
- bare SQL over the pre-aggregated customer metrics (for reference; it cannot honour the window);
- the job's first run (every customer moves from "unclassified": a row, a history row and an event each);
- --repeat nightly runs, one day apart, each after 1 % of the customers bought again (the steady state), each
  right after a bare-SQL run so that both see the same load on the machine.
The nightly ratio is the median over the nights of each night's job over the bare SQL run right before it (the
pair saw the same load on the machine); the first run is compared with the bare run right before it. CPU-time
ratios (the database backend's and this process's) are printed too: they hardly move with other load. The peak
memory is the Python process's during the job (tracemalloc, and the process's maximum RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import database_urls, recreate_database

TENANT = "bench"
AS_OF = date(2025, 6, 30)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database", default="zl_bench")
    parser.add_argument("--repeat", type=int, default=3, help="Nightly runs, each after a bare-SQL run.")
    parser.add_argument("--keep", action="store_true", help="Keep the bench database afterwards.")
    parser.add_argument(
        "--reuse", action="store_true", help="Reuse a database kept by --keep (reset to its seeded state)."
    )
    parser.add_argument("--json-out", default="", help="Write the ratios to this file as JSON.")
    return parser.parse_args()


@dataclass
class Timing:
    wall: float
    cpu: (
        float | None
    )  # PostgreSQL backend + this process; None when the backend's /proc entry is not readable
    result: Any


def backend_cpu() -> float | None:
    """CPU seconds the database backend of our connection has used (same host only). Unlike wall time, CPU time
    hardly moves when other work shares the machine."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def timed(label: str, action: Callable[[], Any]) -> Timing:
    cpu_before, own_before = backend_cpu(), time.process_time()
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    cpu_after, own_after = backend_cpu(), time.process_time()
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = cpu_after - cpu_before + own_after - own_before
    shown = f"{cpu:8.2f} s CPU" if cpu is not None else ""
    print(f"  {label:<52} {elapsed:8.2f} s {shown}", flush=True)
    return Timing(elapsed, cpu, result)


def sql(statement: str, params: Any = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def seed(customers: int) -> None:
    """Customers with 1-5 purchases each over two years (about 3 per customer), and their metrics."""
    from core.tenancy import tenant_context

    chunk = 200_000
    for low in range(1, customers + 1, chunk):
        high = min(low + chunk - 1, customers)
        with tenant_context(TENANT):
            sql(
                """
                INSERT INTO customers_customer (id, tenant_id, type, first_name, last_name, legal_name, trade_name,
                    document_type, salesperson, route, status, notes, created_at, updated_at)
                SELECT md5('customer' || g)::uuid, %(tenant)s, 'individual', 'C' || g, '', '', '', '', '', '',
                       'active', '', now(), now()
                FROM generate_series(%(low)s::int, %(high)s::int) g
                """,
                {"tenant": TENANT, "low": low, "high": high},
            )
            sql(
                """
                INSERT INTO customers_purchase (id, tenant_id, customer_id, source, source_id, channel, store_id,
                    total_amount, currency, completed_at, created_at)
                SELECT md5('purchase' || g || '-' || k)::uuid, %(tenant)s, md5('customer' || g)::uuid, 'pos',
                       g || '-' || k, '', 's1', 5 + ((g * 13 + k * 17) %% 500), 'CLP',
                       (%(as_of)s::date - ((g * 7 + k * 37) %% 700) + time '12:00') AT TIME ZONE 'UTC', now()
                FROM generate_series(%(low)s::int, %(high)s::int) g,
                     generate_series(1, 1 + (hashint4(g) & 2147483647) %% 5) k
                """,
                {"tenant": TENANT, "low": low, "high": high, "as_of": AS_OF},
            )
        print(f"  seeded customers {low:,}-{high:,}", flush=True)
    with tenant_context(TENANT):
        sql(
            """
            INSERT INTO customers_customermetrics (customer_id, tenant_id, order_count, lifetime_value,
                average_order_value, first_purchase_at, last_purchase_at, purchase_frequency_days, updated_at)
            SELECT customer_id, %(tenant)s, count(*), sum(total_amount), round(avg(total_amount), 2),
                   min(completed_at), max(completed_at),
                   CASE WHEN count(*) > 1 THEN round((extract(epoch FROM max(completed_at) - min(completed_at))
                        / 86400.0 / (count(*) - 1))::numeric, 2) END,
                   now()
            FROM customers_purchase GROUP BY customer_id
            """,
            {"tenant": TENANT},
        )


def new_purchases(day: date, share: int = 100) -> int:
    """One customer in `share` (a different one each day) buys again on `day`."""
    from core.tenancy import tenant_context

    with tenant_context(TENANT):
        return int(
            sql(
                """
                INSERT INTO customers_purchase (id, tenant_id, customer_id, source, source_id, channel, store_id,
                    total_amount, currency, completed_at, created_at)
                SELECT gen_random_uuid(), %(tenant)s, c.id, 'pos', 'n-' || %(day)s || '-' || c.id, '', 's1', 42,
                       'CLP', (%(day)s::date + time '12:00') AT TIME ZONE 'UTC', now()
                FROM customers_customer c
                WHERE (hashtext(c.id::text || %(day)s) & 2147483647) %% %(share)s = 0
                """,
                {"tenant": TENANT, "day": day.isoformat(), "share": share},
            )
        )


def reset() -> None:
    """Back to the seeded state: no segmentation, no events, no purchases after the as-of date."""
    from core.tenancy import tenant_context

    sql(
        "TRUNCATE segmentation_segmentchange, segmentation_customersegment, segmentation_segmentrun, "
        "segmentation_segmentrule, segmentation_segmentationsettings, core_outboxevent"
    )
    with tenant_context(TENANT):
        sql("DELETE FROM customers_purchase WHERE source_id LIKE 'n-%%'")


def bare_sql(source: str) -> Callable[[], int]:
    """The baseline: the three NTILE windows inserted into a plain table, with the job's memory settings."""
    from django.conf import settings

    from core.tenancy import tenant_context
    from segmentation.rfm import BARE_SQL

    work_mem = settings.SEGMENTATION_WORK_MEM
    statements = {
        "purchases": BARE_SQL.format(table="bench_rfm_scores"),
        "metrics": """
            INSERT INTO bench_rfm_scores (customer_id, r, f, m)
            SELECT customer_id,
                   ntile(5) OVER (ORDER BY last_purchase_at, customer_id),
                   ntile(5) OVER (ORDER BY order_count, customer_id),
                   ntile(5) OVER (ORDER BY lifetime_value, customer_id)
            FROM customers_customermetrics
        """,
    }

    def run() -> int:
        from datetime import datetime, time
        from zoneinfo import ZoneInfo

        zone = ZoneInfo("UTC")
        next_day = AS_OF + timedelta(days=1)
        sql("TRUNCATE bench_rfm_scores")
        with tenant_context(TENANT):
            sql("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", [work_mem])
            return int(
                sql(
                    statements[source],
                    {
                        "tz": "UTC",
                        "as_of": AS_OF,
                        "cutoff": datetime.combine(next_day, time.min, tzinfo=zone),
                        "window_start": datetime.combine(
                            next_day - timedelta(days=365), time.min, tzinfo=zone
                        ),
                    },
                )
            )

    return run


def job(as_of: date) -> Callable[[], Any]:
    from core.models import Tenant
    from core.tenancy import tenant_context
    from segmentation.services import rfm_recompute

    def run() -> Any:
        tenant = Tenant.objects.get(slug=TENANT)
        with tenant_context(tenant):
            result = rfm_recompute(tenant=tenant, as_of=as_of, triggered_by="bench").run
            body_done = time.perf_counter()
        result.commit_seconds = time.perf_counter() - body_done  # deferred FK checks, WAL flush, on_commit
        return result

    return run


def measured_job(label: str, as_of: date) -> tuple[Timing, int, int]:
    """Time the job; report the Python heap's peak (tracemalloc) and the process's peak RSS."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        timing = timed(label, job(as_of))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = timing.result
    print(
        f"    as of {run.as_of}: {run.customers_total:,} customers, {run.rows_written:,} rows written, "
        f"{run.segment_changes:,} segment changes (and events), commit {run.commit_seconds:.2f} s, "
        f"Python heap peak {peak / 1024:,.0f} KiB, "
        f"process max RSS {rss_after / 1024:,.1f} MiB (+{(rss_after - rss_before) / 1024:,.1f})",
        flush=True,
    )
    return timing, peak, rss_after


def summary(label: str, timings: list[Timing]) -> tuple[float, float | None]:
    walls = [t.wall for t in timings]
    cpus = [t.cpu for t in timings if t.cpu is not None]
    cpu = statistics.median(cpus) if len(cpus) == len(timings) else None
    runs = ", ".join(f"{w:.2f}" for w in walls)
    cpu_text = f", CPU {cpu:.2f} s" if cpu is not None else ""
    print(f"  {label:<32} {statistics.median(walls):8.2f} s{cpu_text}  (wall runs: {runs})")
    return statistics.median(walls), cpu


def main() -> None:
    args = parse_args()
    url, maintenance = database_urls(args.database)
    if not args.reuse:
        print(f"Recreating database {args.database}", flush=True)
        recreate_database(maintenance, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from core.models import Tenant
    from core.tenancy import tenant_context

    try:
        if args.reuse:
            print(f"Reusing database {args.database}", flush=True)
            reset()
        else:
            call_command("migrate", verbosity=0)
            Tenant.objects.create(slug=TENANT, name="Bench", country="CL", phone_region="CL", currency="CLP")
            sql("CREATE TABLE bench_rfm_scores (customer_id uuid, r int, f int, m int)")
            print(f"Seeding {args.customers:,} customers", flush=True)
            timed("seed (customers, purchases, metrics)", lambda: seed(args.customers))
        sql("VACUUM ANALYZE")
        with tenant_context(TENANT):
            [(n_customers, n_purchases)] = sql(
                "SELECT (SELECT count(*) FROM customers_customer), (SELECT count(*) FROM customers_purchase)"
            )
        print(f"  {n_customers:,} customers, {n_purchases:,} purchases", flush=True)

        print("Timings (each in its own tenant transaction, commit included): wall, CPU", flush=True)
        metrics = [timed(f"bare SQL over customer metrics #{i + 1}", bare_sql("metrics")) for i in range(2)]
        bare = [timed("bare SQL over purchases #1", bare_sql("purchases"))]
        first, first_peak, _ = measured_job("job, first run (every customer changes)", AS_OF)
        nightly: list[Timing] = []
        peaks = [first_peak]
        rss = 0
        # Nightly runs, interleaved with the bare SQL so that both see the same machine load.
        for night in range(1, args.repeat + 1):
            day = AS_OF + timedelta(days=night)
            added = new_purchases(day)
            sql("VACUUM ANALYZE customers_purchase")
            print(f"  night {night}: {added:,} customers bought again on {day}", flush=True)
            bare.append(timed(f"bare SQL over purchases #{night + 1}", bare_sql("purchases")))
            timing, peak, rss = measured_job(f"job, nightly run as of {day}", day)
            nightly.append(timing)
            peaks.append(peak)

        print("Summary (medians)", flush=True)
        print(f"  customers / purchases            {n_customers:,} / {n_purchases:,}")
        base_wall, base_cpu = summary("bare SQL over purchases", bare)
        summary("bare SQL over customer metrics", metrics)
        job_wall, job_cpu = summary("job, nightly run", nightly)
        first_wall, _ = summary("job, first run", [first])
        # Each night against the bare SQL run right before it (both under the same load), then the median.
        paired = [j.wall / b.wall for j, b in zip(nightly, bare[1:], strict=True)]
        nightly_ratio = statistics.median(paired)
        pairs = ", ".join(f"{value:.2f}" for value in paired)
        print(f"  ratio nightly job / bare SQL     {nightly_ratio:8.2f}x wall (night by night: {pairs})")
        print(f"  (medians over medians: {job_wall / base_wall:.2f}x wall)")
        if job_cpu is not None and base_cpu:
            print(f"  ratio nightly job / bare SQL     {job_cpu / base_cpu:8.2f}x CPU (robust to other load)")
        first_ratio = first_wall / bare[0].wall
        print(f"  ratio first run / bare SQL       {first_ratio:8.2f}x wall (the bare run right before it)")
        print(f"  (over the median bare SQL: {first_wall / base_wall:.2f}x wall)")
        first_cpu = first.cpu
        if first_cpu is not None and base_cpu:
            print(f"  ratio first run / bare SQL       {first_cpu / base_cpu:8.2f}x CPU")
        if args.json_out:
            extra = {}
            if job_cpu is not None and base_cpu:
                extra["rfm_nightly/bare_sql (CPU)"] = job_cpu / base_cpu
            if first_cpu is not None and base_cpu:
                extra["rfm_first_run/bare_sql (CPU)"] = first_cpu / base_cpu
            Path(args.json_out).write_text(
                json.dumps(
                    {
                        "ratios": {
                            "rfm_nightly/bare_sql": nightly_ratio,
                            "rfm_first_run/bare_sql": first_ratio,
                        },
                        "extra": extra,
                    },
                    indent=2,
                )
            )
        print(f"  job peak memory (Python heap)    {max(peaks) / 1024:8,.0f} KiB")
        print(f"  process max RSS                  {rss / 1024:8,.1f} MiB")
    finally:
        connection.close()
        if not args.keep:
            recreate_database(maintenance, args.database, drop_only=True)
            print(f"Dropped database {args.database}", flush=True)


if __name__ == "__main__":
    main()
