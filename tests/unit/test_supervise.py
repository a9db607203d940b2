"""The worker supervisor with real child processes.

Restarts after crashes, backoff, giving up, usage errors, clean exits and signal forwarding.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tango_operator.supervise import RestartPolicy, Supervisor

FAST = RestartPolicy(max_restarts=3, window=60.0, base_delay=0.01, max_delay=0.05)


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _crash_then_succeed(tmp_path: Path, crashes: int) -> list[str]:
    """A child that exits 1 on its first ``crashes`` starts and 0 afterwards."""
    return _script(
        tmp_path,
        f"""
        import pathlib, sys
        counter = pathlib.Path({str(tmp_path / "starts")!r})
        starts = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(starts))
        sys.exit(1 if starts <= {crashes} else 0)
        """,
    )


def test_a_crashed_worker_is_restarted_until_it_exits_cleanly(tmp_path: Path) -> None:
    supervisor = Supervisor(_crash_then_succeed(tmp_path, 2), os.environ, FAST)
    assert supervisor.run() == 0
    assert supervisor.starts == 3
    assert (tmp_path / "starts").read_text() == "3"


def test_too_many_crashes_within_the_window_give_up_with_the_exit_code(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys; sys.exit(70)")
    supervisor = Supervisor(command, os.environ, FAST)
    assert supervisor.run() == 70
    assert supervisor.starts == FAST.max_restarts + 1


def test_crashes_outside_the_window_do_not_count(tmp_path: Path) -> None:
    ticks = iter(range(0, 10_000, 100))  # every crash 100 s after the previous one
    policy = RestartPolicy(max_restarts=1, window=50.0, base_delay=0.01, max_delay=0.01)
    supervisor = Supervisor(
        _crash_then_succeed(tmp_path, 4), os.environ, policy, clock=lambda: float(next(ticks))
    )
    assert supervisor.run() == 0
    assert supervisor.starts == 5


def test_a_usage_error_is_not_restarted(tmp_path: Path) -> None:
    supervisor = Supervisor(_script(tmp_path, "import sys; sys.exit(64)"), os.environ, FAST)
    assert supervisor.run() == 64
    assert supervisor.starts == 1


def test_a_killed_worker_is_restarted(tmp_path: Path) -> None:
    command = _script(
        tmp_path,
        f"""
        import os, pathlib, signal
        counter = pathlib.Path({str(tmp_path / "starts")!r})
        starts = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(starts))
        if starts == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    supervisor = Supervisor(command, os.environ, FAST)
    assert supervisor.run() == 0
    assert supervisor.starts == 2


def test_backoff_doubles_to_its_cap() -> None:
    policy = RestartPolicy(base_delay=1.0, max_delay=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT])
def test_a_stop_signal_is_forwarded_and_the_worker_is_not_restarted(
    tmp_path: Path, signum: int
) -> None:
    """The supervisor runs as its own process (it installs signal handlers).

    The child writes which signal it got, then exits 1 — which must not cause a restart.
    """
    received = tmp_path / "received"
    ready = tmp_path / "ready"
    child = _script(
        tmp_path,
        f"""
        import pathlib, signal, sys, time
        def got(signum, frame):
            pathlib.Path({str(received)!r}).write_text(str(signum))
            sys.exit(1)
        signal.signal(signal.SIGTERM, got)
        signal.signal(signal.SIGQUIT, got)
        pathlib.Path({str(ready)!r}).write_text("1")
        time.sleep(60)
        """,
    )
    runner = tmp_path / "supervisor.py"
    runner.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            from tango_operator.supervise import RestartPolicy, Supervisor
            supervisor = Supervisor({child!r}, os.environ, RestartPolicy(base_delay=0.01))
            supervisor.install_signal_handlers()
            code = supervisor.run()
            print("starts", supervisor.starts)
            sys.exit(code)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(runner)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=20)
    assert received.read_text() == str(int(signum))
    assert process.returncode == 1
    assert "starts 1" in stdout


def test_a_stop_during_the_backoff_ends_the_wait(tmp_path: Path) -> None:
    policy = RestartPolicy(max_restarts=5, base_delay=30.0, max_delay=30.0)
    supervisor = Supervisor(_script(tmp_path, "import sys; sys.exit(1)"), os.environ, policy)
    threading.Timer(0.5, supervisor.stopping.set).start()
    started = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - started < 20  # not the 30 s backoff
    assert supervisor.starts == 1
