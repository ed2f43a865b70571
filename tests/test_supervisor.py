# ruff: noqa: S603  (the tests run the supervisor on small programs of their own)
"""config.run's supervisor on small real processes: restarts with backoff, gives up on repeated crashes, turns a
burst of stop signals into one graceful stop and forces only on a later one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# a service that takes `seconds` to stop on SIGTERM and counts the SIGTERMs it got
GRACEFUL = """
import os, signal, sys, time
seconds, marks = float(sys.argv[1]), sys.argv[2]
def on_term(signum, frame):
    with open(marks, "a") as f:
        f.write("term\\n")
signal.signal(signal.SIGTERM, on_term)
with open(marks, "a") as f:
    f.write("started\\n")
while "term" not in open(marks).read():
    time.sleep(0.02)
time.sleep(seconds)
with open(marks, "a") as f:
    f.write("clean exit\\n")
"""

SUPERVISOR = """
import sys
import config.run as run
run.RESTART_BACKOFF = (0.05, 0.2)
run.CRASH_WINDOW = 30.0
from config.launcher import block_signals
specs = [run.ProcessSpec(name, argv) for name, argv in {specs!r}]
sys.exit(run.supervise(specs, run.child_env(), block_signals()))
"""


def start(specs: list[tuple[str, list[str]]]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", SUPERVISOR.format(specs=specs)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.02)


def test_a_burst_of_stop_signals_is_one_graceful_stop(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    proc = start([("svc", [PYTHON, "-c", GRACEFUL, "1.5", str(marks)])])
    wait_for(marks, "started")
    for _ in range(3):  # the group's signal, the launcher's forwarded copy, make's copy
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert marks.read_text().splitlines() == ["started", "term", "clean exit"]  # one SIGTERM, a clean exit
    assert "stopping now" not in err


def test_a_later_second_signal_forces(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    proc = start([("svc", [PYTHON, "-c", GRACEFUL, "60", str(marks)])])
    wait_for(marks, "started")
    proc.send_signal(signal.SIGINT)
    wait_for(marks, "term")
    time.sleep(1.5)  # a person pressing Ctrl-C again
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "asked again: stopping now" in err and "killing svc" in err
    assert "clean exit" not in marks.read_text()


def test_a_crashed_process_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    marks, flag = tmp_path / "marks", tmp_path / "crashed-once"
    crash_once = f"import pathlib, sys, time; f = pathlib.Path({str(flag)!r})\nif not f.exists(): f.touch(); sys.exit(3)\ntime.sleep(60)"
    proc = start(
        [("steady", [PYTHON, "-c", GRACEFUL, "0", str(marks)]), ("flaky", [PYTHON, "-c", crash_once])]
    )
    try:
        wait_for(marks, "started")
        assert proc.stderr is not None
        lines = []
        deadline = time.monotonic() + 20
        while not any("restarted flaky" in line for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(proc.stderr.readline())
        assert any("flaky exited unexpectedly (exit code 3); restarting it in" in line for line in lines)
        assert marks.read_text().splitlines() == ["started"]  # the other one was left alone
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_repeated_crashes_make_it_give_up_with_a_non_zero_exit(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    proc = start(
        [("steady", [PYTHON, "-c", GRACEFUL, "0", str(marks)]), ("broken", [PYTHON, "-c", "exit(2)"])]
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.count("broken exited unexpectedly") == 5
    assert "5 times within 30 s; giving up and stopping the others" in err
    assert marks.read_text().splitlines() == ["started", "term", "clean exit"]  # stopped gracefully
