"""The supervisor behind ``make run``: migrate, seed the demo data, then run, watch and heal the processes.

    python -m config.run        (normally as: python -m config.launcher python -m config.run)

* A process that exits on its own (a crash, the OOM killer, ``kill -9``) is started again after a backoff (1 s,
  2 s, 4 s ... up to 30 s) with a log line. Only a process that crashes CRASH_LIMIT times within CRASH_WINDOW
  seconds makes the supervisor give up: it stops the others and exits non-zero.
* The first Ctrl-C or SIGTERM, to this process or to its whole process group, starts one graceful stop: every
  process gets SIGTERM once (gRPC turns NOT_SERVING and lets in-flight calls finish, gunicorn finishes its
  requests, the Celery worker finishes or requeues its message) and gets STOP_TIMEOUT seconds; then the exit
  code is 0. Each process runs in a session of its own, so only this supervisor signals it.
* A signal to the group reaches this process more than once within milliseconds (directly, from the launcher
  that forwards it, from ``make``): those are the same request. A stop signal that comes later than
  DUPLICATE_WINDOW after the first, as a person's second Ctrl-C does, kills the processes at once.

To add a process, add a ``ProcessSpec`` in ``process_specs``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from config.launcher import (
    FORWARDED_SIGNALS,
    PROJECT_ROOT,
    block_signals,
    child_preexec,
    data_dir,
    exit_code,
    run_child,
)

STOP_TIMEOUT = (
    30.0  # seconds between SIGTERM and SIGKILL: more than the gRPC grace and gunicorn's graceful timeout
)
WEB_GRACEFUL_TIMEOUT = 20  # seconds gunicorn gives in-flight requests on SIGTERM
DUPLICATE_WINDOW = 1.0  # stop signals this close to the first are the same request
RESTART_BACKOFF = (1.0, 30.0)  # first and longest pause before a crashed process is started again
CRASH_LIMIT = 5  # crashes of one process within CRASH_WINDOW seconds before giving up
CRASH_WINDOW = 120.0


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    enabled: bool = True
    why_not: str = ""  # printed when disabled


def process_specs(env: dict[str, str], commands: set[str]) -> list[ProcessSpec]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "config"]
    beat_schedule = str(data_dir(env) / "celerybeat-schedule")
    web = [
        python, "-m", "gunicorn", "config.wsgi:application", "--bind", f"0.0.0.0:{http_port(env)}",
        "--workers", env.get("WEB_CONCURRENCY") or "2", "--worker-class", "gevent",
        "--worker-connections", env.get("WEB_CONNECTIONS") or "100",
        "--graceful-timeout", str(WEB_GRACEFUL_TIMEOUT), "--access-logfile", "-", "--no-control-socket",
    ]  # fmt: skip
    return [
        ProcessSpec("web", web),
        ProcessSpec(
            "grpc",
            [python, "manage.py", "grpcserver"],
            enabled="grpcserver" in commands,
            why_not="there is no grpcserver management command yet",
        ),
        ProcessSpec("worker", [*celery, "worker", "-l", "info"]),
        ProcessSpec("beat", [*celery, "beat", "-l", "info", "--schedule", beat_schedule]),
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
        "  Events   .venv/bin/python manage.py events_tail\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """One supervised process: its spec, the running process (None while waiting to restart), its crashes."""

    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None
    crashes: deque[float] = field(default_factory=deque)

    def start(self, env: dict[str, str], mask: set[int]) -> None:
        # a session of its own: only the supervisor signals it, once, and SIGKILL reaches its pool processes too
        self.proc = subprocess.Popen(  # noqa: S603
            self.spec.argv, cwd=PROJECT_ROOT, env=env, preexec_fn=child_preexec(mask), start_new_session=True
        )
        self.restart_at = None

    def crashed(self, now: float) -> int:
        """Record a crash; return how many happened within CRASH_WINDOW."""
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW:
            self.crashes.popleft()
        return len(self.crashes)

    def kill_group(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def restart_delay(crashes: int) -> float:
    first, longest = RESTART_BACKOFF
    return min(first * 2 ** max(crashes - 1, 0), longest)


def stop_all(children: list[Child], first_signal_at: float | None) -> None:
    """SIGTERM every running process once, wait up to STOP_TIMEOUT, then SIGKILL their process groups.

    A stop signal later than DUPLICATE_WINDOW after ``first_signal_at`` (a person asking again) kills at once.
    """
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for child in running:
        assert child.proc is not None
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    forced = False
    while any(c.proc is not None and c.proc.poll() is None for c in running):
        if time.monotonic() >= deadline:
            say(f"still running after {STOP_TIMEOUT:.0f} s")
            forced = True
            break
        info = signal.sigtimedwait(watched, 0.2)
        if info is not None and info.si_signo in FORWARDED_SIGNALS:
            now = time.monotonic()
            if first_signal_at is None or now - first_signal_at > DUPLICATE_WINDOW:
                say("asked again: stopping now")
                forced = True
                break
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            if forced:
                say(f"killing {child.spec.name} (pid {child.proc.pid})")
            child.kill_group()
            child.proc.wait()
        if child.proc is not None:
            kill_leftovers(child.proc.pid)


def kill_leftovers(pgid: int) -> None:
    """SIGKILL what a finished process left in its process group (e.g. the pool of a killed Celery worker). The
    number is not reused while the group has members, so this reaches nobody else."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def supervise(specs: list[ProcessSpec], env: dict[str, str], mask: set[int]) -> int:
    children = [Child(spec) for spec in specs if spec.enabled]
    for spec in specs:
        if not spec.enabled:
            say(f"not starting {spec.name}: {spec.why_not}")
    watched = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    try:
        for child in children:
            say(f"starting {child.spec.name}: {' '.join(child.spec.argv[1:])}")
            child.start(env, mask)
        while True:
            now = time.monotonic()
            for child in children:
                if child.proc is not None and (returncode := child.proc.poll()) is not None:
                    kill_leftovers(child.proc.pid)
                    child.proc = None
                    crashes = child.crashed(now)
                    if crashes >= CRASH_LIMIT:
                        say(
                            f"{child.spec.name} exited unexpectedly ({describe_exit(returncode)}), {crashes} times "
                            f"within {CRASH_WINDOW:.0f} s; giving up and stopping the others"
                        )
                        stop_all(children, first_signal_at=None)
                        return exit_code(returncode) or 1
                    delay = restart_delay(crashes)
                    child.restart_at = now + delay
                    say(
                        f"{child.spec.name} exited unexpectedly ({describe_exit(returncode)}); restarting it in "
                        f"{delay:.0f} s (crash {crashes} of {CRASH_LIMIT} allowed within {CRASH_WINDOW:.0f} s)"
                    )
                if child.proc is None and child.restart_at is not None and child.restart_at <= now:
                    child.start(env, mask)
                    assert child.proc is not None
                    say(f"restarted {child.spec.name} (pid {child.proc.pid})")
            pending = [c.restart_at - now for c in children if c.restart_at is not None]
            info = signal.sigtimedwait(watched, max(min([0.5, *pending]), 0.01))
            if info is not None and info.si_signo in FORWARDED_SIGNALS:
                say(f"received {signal.Signals(info.si_signo).name}; stopping gracefully (again to force)")
                stop_all(children, first_signal_at=time.monotonic())
                say("stopped")
                return 0
    finally:
        for child in children:  # e.g. an exception above: leave no orphans
            if child.proc is not None and child.proc.poll() is None:
                child.kill_group()
                child.proc.wait()


def main() -> int:
    os.chdir(PROJECT_ROOT)
    env = child_env()
    data_dir(env).mkdir(parents=True, exist_ok=True)
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
