"""Keep one ``celery worker`` process alive: ``tango-operator worker`` runs it through this.

Why: Celery's main process can die with "Unrecoverable error" when the Redis broker goes
away at the wrong moment (kombu's Redis channel restores unacknowledged messages while its
connection is already torn down and raises ``AttributeError`` instead of a connection
error; kombu#970, #582 show the same family). Nothing is lost — messages are acknowledged
late and the work queue's state is in Redis — but a worker that is gone reconciles nothing
until something restarts it. In a cluster that is the kubelet, with CrashLoopBackOff;
everywhere else (``make demo``, docker-compose without a restart policy, the tests) nobody
would. So the supervisor restarts the worker after an exit it did not ask for, with a
short exponential backoff, and gives up (exiting with the worker's code, so a kubelet sees
the crash loop) after ``max_restarts`` crashes within ``window`` seconds.

Signals: SIGTERM, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 are passed to the worker (a kubelet
or ``docker stop`` sends SIGTERM to PID 1 only). SIGINT is not passed on: Ctrl-C in a
terminal reaches the whole process group, the worker included, and a second SIGINT would
turn Celery's warm shutdown into a cold one. Either way the supervisor then waits for the
worker to exit and does not restart it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

FORWARDED = (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
USAGE_ERRORS = frozenset({2, 64})
"""Exit codes of a bad command line (argparse, Celery's EX_USAGE): restarting cannot help."""


@dataclass(frozen=True)
class RestartPolicy:
    """When the supervisor restarts a crashed worker, and when it gives up.

    The delay before a restart doubles from ``base_delay`` with each crash up to ``max_delay``.
    """

    max_restarts: int = 10
    """Crashes tolerated within ``window`` seconds; one more and the supervisor exits."""
    window: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, recent_crashes: int) -> float:
        """Seconds to wait before the next start after ``recent_crashes`` crashes (≥ 1)."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, recent_crashes - 1)))


class Supervisor:
    """Runs ``command`` until it exits on request, cleanly, or crashes too often."""

    def __init__(
        self,
        command: Sequence[str],
        environment: Mapping[str, str],
        policy: RestartPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = list(command)
        self.environment = dict(environment)
        self.policy = policy
        self.clock = clock
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
            self.stopping.set()
        child = self.child
        if signum != signal.SIGINT and child is not None and child.poll() is None:
            child.send_signal(signum)

    def install_signal_handlers(self) -> None:
        """Handle SIGINT and the forwarded signals in this process.

        The forwarded ones are passed on to the worker; SIGTERM, SIGQUIT and SIGINT also stop
        the supervisor (no restart after the worker exits).
        """
        for signum in (*FORWARDED, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def run(self) -> int:
        """Start the worker and restart it after each crash; return the exit status to exit with.

        Returns at once after a requested stop, a clean exit or a usage error; after too many
        crashes within the policy's window, with the last crash's status.
        """
        crashes: deque[float] = deque()
        while True:
            self.starts += 1
            self.child = subprocess.Popen(self.command, env=self.environment)
            code = self.child.wait()
            if self.stopping.is_set():
                return _exit_status(code)
            if code == 0:
                log.info("celery worker exited cleanly; not restarting")
                return 0
            if code in USAGE_ERRORS:
                log.error("celery worker rejected its command line (exit %d)", code)
                return code
            now = self.clock()
            crashes.append(now)
            while crashes and crashes[0] < now - self.policy.window:
                crashes.popleft()
            if len(crashes) > self.policy.max_restarts:
                log.error(
                    "celery worker crashed %d times within %.0fs; giving up (exit %d)",
                    len(crashes),
                    self.policy.window,
                    code,
                )
                return _exit_status(code)
            delay = self.policy.delay(len(crashes))
            log.warning(
                "celery worker exited unexpectedly (%s); restarting in %.1fs (crash %d of %d "
                "allowed within %.0fs)",
                _describe(code),
                delay,
                len(crashes),
                self.policy.max_restarts,
                self.policy.window,
            )
            if self.stopping.wait(delay):
                return _exit_status(code)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _exit_status(code: int) -> int:
    """A shell-style status: 128 + the signal for a worker killed by a signal."""
    return 128 - code if code < 0 else code
