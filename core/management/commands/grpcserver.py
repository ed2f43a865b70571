"""Run the gRPC server (CustomerService, health, reflection) until SIGTERM or Ctrl-C.

    python manage.py grpcserver [--port 50007] [--max-workers 8] [--grace 10] [--processes N]

On SIGTERM/SIGINT the server stops accepting calls, lets in-flight calls finish within the grace period and exits
0. With `--processes N` (default: settings.GRPC_PROCESSES, or one per CPU when that is 0) this process starts N
servers as child processes sharing the port (SO_REUSEPORT) and forwards the stop signal to them; on a random port
(`--port 0`) the default is one process, as the processes could not share it. Prometheus metrics of each server process are served over HTTP on
`GRPC_METRICS_PORT` (default 9107; the i-th child of `--processes` uses 9107 + i; 0 disables them).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

logger = logging.getLogger("core.grpcserver")

DEFAULT_METRICS_PORT = 9107
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def metrics_port_from_env() -> int:
    """GRPC_METRICS_PORT of the settings (default 9107; 0 disables the endpoint)."""
    return int(settings.GRPC_METRICS_PORT)


def default_processes() -> int:
    """settings.GRPC_PROCESSES, or (0) one per CPU this process may run on."""
    configured = int(settings.GRPC_PROCESSES)
    if configured > 0:
        return configured
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not on Linux
        return max(os.cpu_count() or 1, 1)


class Command(BaseCommand):
    help = "Run the gRPC server (zenlogic.customer.v1.CustomerService + health + reflection)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="[::]", help="Address to listen on (default [::], every one).")
        parser.add_argument("--port", type=int, default=None, help="Port (default: settings.GRPC_PORT).")
        parser.add_argument(
            "--max-workers",
            type=int,
            default=None,
            help="Worker threads per process (default: settings.GRPC_MAX_WORKERS, lowered to fit "
            "PostgreSQL's free connections).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="Seconds in-flight calls get to finish on SIGTERM (default: settings.GRPC_GRACE_SECONDS).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="Server processes sharing the port (default: settings.GRPC_PROCESSES, or one per CPU when 0).",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help=f"Prometheus metrics HTTP port (default: GRPC_METRICS_PORT or {DEFAULT_METRICS_PORT}; 0: off).",
        )
        # set by --processes for its children: how many processes share PostgreSQL's free connections
        parser.add_argument("--connection-share", type=int, default=1, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"] if options["port"] is not None else settings.GRPC_PORT
        grace = options["grace"] if options["grace"] is not None else settings.GRPC_GRACE_SECONDS
        workers = options["max_workers"] or settings.GRPC_MAX_WORKERS
        metrics_port = options["metrics_port"]
        if metrics_port is None:
            metrics_port = metrics_port_from_env()
        processes = options["processes"]
        if processes is None:
            processes = default_processes() if port != 0 else 1
            options["processes"] = processes
        if processes < 1 or workers < 1 or grace < 0:
            raise CommandError("--processes and --max-workers must be at least 1, --grace at least 0.")
        if processes > 1:
            if port == 0:
                raise CommandError("--processes needs a fixed --port for the processes to share.")
            sys.exit(self.supervise(options, port=port, grace=grace, metrics_port=metrics_port))
        self.serve(
            bind=options["bind"],
            port=port,
            workers=workers,
            grace=grace,
            metrics_port=metrics_port,
            share=max(options["connection_share"], 1),
        )

    def serve(
        self, *, bind: str, port: int, workers: int, grace: float, metrics_port: int, share: int
    ) -> None:
        from core.rpc import start_metrics_server

        # The project wires the servicers (GRPC_SERVER_MODULE, like ROOT_URLCONF): core knows no app and no config.
        wiring = importlib.import_module(settings.GRPC_SERVER_MODULE)
        build_server, worker_count = wiring.build_server, wiring.worker_count

        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)

        workers = worker_count(workers, processes=share)
        connections.close_all()  # the main thread serves no calls; each worker thread opens its own
        server = build_server(bind=bind, port=port, max_workers=workers, max_queued=settings.GRPC_MAX_QUEUED)
        if metrics_port:
            start_metrics_server(metrics_port)
        server.start()
        logger.info(
            "gRPC server listening on %s:%s (%s worker threads, %s more calls may wait, metrics %s)",
            bind,
            server.port,
            workers,
            settings.GRPC_MAX_QUEUED,
            f"on :{metrics_port}/metrics" if metrics_port else "off",
        )
        self.stdout.write(f"gRPC server listening on {bind}:{server.port}")
        self.stdout.flush()
        while not stop.wait(1.0):
            pass
        logger.info("Stopping the gRPC server: in-flight calls get %s s", grace)
        server.stop(grace)
        connections.close_all()
        logger.info("gRPC server stopped")

    def supervise(self, options: dict[str, Any], *, port: int, grace: float, metrics_port: int) -> int:
        """Start `--processes` servers as children, forward the stop signal, return non-zero if one failed."""
        connections.close_all()  # the children open their own
        manage = os.path.join(settings.BASE_DIR, "manage.py")
        children: list[subprocess.Popen[bytes]] = []
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)
        for index in range(options["processes"]):
            argv = [
                sys.executable,
                manage,
                "grpcserver",
                "--bind",
                options["bind"],
                "--port",
                str(port),
                "--grace",
                str(grace),
                "--metrics-port",
                str(metrics_port + index if metrics_port else 0),
                "--connection-share",
                str(options["processes"]),
                "--processes",
                "1",
            ]
            if options["max_workers"]:
                argv += ["--max-workers", str(options["max_workers"])]
            children.append(subprocess.Popen(argv))  # noqa: S603 - our own interpreter and manage.py
        failed = False
        while not stop.wait(0.5):
            if any(child.poll() is not None for child in children):
                logger.error("A gRPC server process exited unexpectedly; stopping the others")
                failed = True
                break
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5
        for child in children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                failed = True
        # a child still starting when the stop signal came dies of it before installing its handler: a clean stop
        clean = {0, -signal.SIGTERM}
        return 1 if failed or any(child.returncode not in clean for child in children) else 0
