"""The supervisor behind ``make run``: migrate, seed the demo data, then run and watch the processes.

    python -m config.run        (normally as: python -m config.launcher python -m config.run)

Ctrl-C or SIGTERM stops every process (SIGTERM, then SIGKILL after 10 s; a second Ctrl-C kills at once)
and exits 0. If a process dies on its own, the others are stopped and the exit code is non-zero.

To add a process, add a ``ProcessSpec`` in ``process_specs``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from config.launcher import (
    FORWARDED_SIGNALS,
    PROJECT_ROOT,
    block_signals,
    child_preexec,
    exit_code,
    is_terminal_signal,
    run_child,
)

DATA_DIR = PROJECT_ROOT / ".data"  # local state, ignored by git
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
TERMINAL_GRACE = 3.0  # after a terminal's Ctrl-C (which the children got too), before they also get SIGTERM


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    enabled: bool = True
    why_not: str = ""  # printed when disabled


def process_specs(env: dict[str, str], commands: set[str]) -> list[ProcessSpec]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "config"]
    beat_schedule = str(DATA_DIR / "celerybeat-schedule")
    return [
        ProcessSpec("web", [python, "manage.py", "runserver", f"0.0.0.0:{http_port(env)}", "--noreload"]),
        ProcessSpec(
            "grpc",
            [python, "manage.py", "grpcserver"],
            enabled="grpcserver" in commands,
            why_not="there is no grpcserver management command yet",
        ),
        ProcessSpec(
            "worker",
            [*celery, "worker", "--beat", "-l", "info", "--schedule-filename", beat_schedule],
            # Without CELERY_BROKER_URL the worker uses the filesystem queue under .data/broker: the scheduled jobs
            # still run on their schedule, and events stay in the outbox until a broker is configured.
            enabled=True,
            why_not="",
        ),
    ]


def http_port(env: dict[str, str]) -> str:
    return env.get("HTTP_PORT") or "8007"


def grpc_port(env: dict[str, str]) -> str:
    return env.get("GRPC_PORT") or "50007"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"
    # the generated gRPC code (./zenlogic) and the apps import from the project root, also under `celery`
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def say(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


class Stopped(Exception):
    """A stop signal arrived during a setup step."""


def step(argv: Sequence[str], env: dict[str, str], mask: set[int]) -> None:
    """Run one setup step in the foreground; raise SystemExit if it fails, Stopped if we were stopped."""
    say(" ".join(argv[1:]))
    received: list[int] = []
    returncode = run_child(argv, env, mask, received)
    if received:
        raise Stopped
    if returncode != 0:
        say(f"`{' '.join(argv[1:])}` failed (exit code {returncode})")
        raise SystemExit(returncode)


def management_commands(env: dict[str, str]) -> set[str]:
    """The management commands' names (``get_commands()`` after ``django.setup()``), asked of a child
    process so that this supervisor stays free of Django's state."""
    result = subprocess.run(
        [sys.executable, "manage.py", "help", "--commands"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode or 1)
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def print_urls(env: dict[str, str], grpc_enabled: bool) -> None:
    base = f"http://localhost:{http_port(env)}"
    grpc = f"localhost:{grpc_port(env)}"
    if not grpc_enabled:
        grpc += "  (not started: no grpcserver command yet)"
    print(
        "\nzenLogic Customer Service\n"
        f"  API      {base}/api/v1/\n"
        f"  Docs     {base}/docs\n"
        f"  Admin    {base}/admin/\n"
        f"  Health   {base}/health\n"
        f"  Metrics  {base}/metrics\n"
        f"  gRPC     {grpc}  (metrics http://localhost:{env.get('GRPC_METRICS_PORT') or '9107'}/metrics)\n"
        f"  Dashboard {base}/admin/dashboard/\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def stop_all(children: dict[str, subprocess.Popen[bytes]], sent_by_terminal: bool) -> None:
    """Stop the children: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL. A further stop signal kills at once.

    After a terminal's Ctrl-C the children already got SIGINT; they get TERMINAL_GRACE seconds to act on it
    before SIGTERM, so they are not interrupted twice in the middle of their own shutdown.
    """
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    start = time.monotonic()
    terminated = False
    while alive := [p for p in children.values() if p.poll() is None]:
        elapsed = time.monotonic() - start
        if not terminated and (not sent_by_terminal or elapsed >= TERMINAL_GRACE):
            for proc in alive:
                proc.send_signal(signal.SIGTERM)
            terminated = True
        if elapsed >= STOP_TIMEOUT:
            break
        info = signal.sigtimedwait(watched, 0.2)
        if info is not None and info.si_signo in FORWARDED_SIGNALS:
            say("stopping now")
            break
    for name, proc in children.items():
        if proc.poll() is None:
            say(f"killing {name} (pid {proc.pid})")
            proc.kill()
            proc.wait()


def supervise(specs: list[ProcessSpec], env: dict[str, str], mask: set[int]) -> int:
    children: dict[str, subprocess.Popen[bytes]] = {}
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    try:
        for spec in specs:
            if spec.enabled:
                say(f"starting {spec.name}: {' '.join(spec.argv[1:])}")
                children[spec.name] = subprocess.Popen(  # noqa: S603
                    spec.argv, cwd=PROJECT_ROOT, env=env, preexec_fn=child_preexec(mask)
                )
            else:
                say(f"not starting {spec.name}: {spec.why_not}")
        while True:
            for name, proc in children.items():
                if (returncode := proc.poll()) is not None:
                    code = exit_code(returncode)
                    say(f"{name} exited unexpectedly (exit code {code}); stopping the others")
                    stop_all(children, sent_by_terminal=False)
                    return code or 1
            info = signal.sigtimedwait(watched, 0.5)
            if info is not None and info.si_signo in FORWARDED_SIGNALS:
                say(f"received {signal.Signals(info.si_signo).name}; stopping")
                first = next(iter(children.values()), None)
                stop_all(children, sent_by_terminal=first is not None and is_terminal_signal(info, first.pid))
                return 0
    finally:
        for proc in children.values():  # e.g. an exception above: leave no orphans
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> int:
    os.chdir(PROJECT_ROOT)
    DATA_DIR.mkdir(exist_ok=True)
    env = child_env()
    mask = block_signals()
    python = sys.executable
    try:
        step([python, "manage.py", "migrate", "--noinput"], env, mask)
        step([python, "manage.py", "seed_demo"], env, mask)
        commands = management_commands(env)
    except Stopped:
        say("stopped")
        return 0
    if FORWARDED_SIGNALS & signal.sigpending():
        say("stopped")
        return 0
    specs = process_specs(env, commands)
    print_urls(env, grpc_enabled=any(s.name == "grpc" and s.enabled for s in specs))
    return supervise(specs, env, mask)


if __name__ == "__main__":
    sys.exit(main())
