"""Real Celery worker processes for integration tests.

``tango-operator worker`` in a subprocess, wired to a test's kubeemu and redis-server, with the
tracing TANGO stand-in and the delivery recorder (``tests.support.delivery_trace``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from redis import Redis

from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.messages import Publisher, queue_lists
from tango_operator.workqueue import EnqueueResult, WorkQueue

REPO = Path(__file__).resolve().parents[2]


@dataclass
class WorkerPool:
    """``processes`` worker processes of ``concurrency`` reconciles in flight each.

    ``pool`` is Celery's execution pool: ``prefork`` (the queue-contract tests kill its child
    processes) or ``threads`` (the operator's default). ``test_hooks=False`` leaves out the
    tests' two hooks (``tests.support.delivery_trace``, a file write per message, and
    ``tests.support.kill_in_delivery``, a check at every delivery): the benchmarks measure the
    operator, not its test instruments.
    """

    kubeconfig: Path
    redis_url: str
    workdir: Path
    concurrency: int = 2
    processes: int = 1
    pool: str = "prefork"
    hold_ms: int = 0
    test_hooks: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _log_offsets: dict[str, int] = field(default_factory=dict)
    """Where each worker's log stood when it was started: ``wait_ready`` reads on from there."""

    @property
    def trace(self) -> Path:
        return self.workdir / "reconcile-trace.log"

    @property
    def deliveries(self) -> Path:
        return self.workdir / "deliveries.log"

    @property
    def kill_in_delivery(self) -> Path:
        """Create this file to make the next delivery kill its worker (``kill_in_delivery``)."""
        return self.workdir / "kill-in-delivery"

    def environment(self) -> dict[str, str]:
        hooks = (
            {
                "TANGO_DELIVERY_TRACE": str(self.deliveries),
                "TANGO_KILL_IN_DELIVERY": str(self.kill_in_delivery),
            }
            if self.test_hooks
            else {}
        )
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TANGO_OPERATOR_REDIS_URL": self.redis_url,
            "TANGO_OPERATOR_TANGO_PORT": "tests.support.standin_tango:TracingStandIn",
            "TANGO_STANDIN_TRACE": str(self.trace),
            "TANGO_STANDIN_HOLD_MS": str(self.hold_ms),
            **hooks,
            "TANGO_OPERATOR_WAITING_MAX_SECONDS": "2",
            # the tests' Producer plays a FIFO watcher: wake-ups are sent at once
            "TANGO_OPERATOR_DISPATCH": "fifo",
            "PYTHONPATH": str(REPO),
            **self.extra_env,
        }

    def start_one(self, name: str) -> subprocess.Popen[bytes]:
        path = self.workdir / f"{name}.log"
        self._log_offsets[name] = path.stat().st_size if path.exists() else 0
        log = path.open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tango_operator.cli",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--pool",
                self.pool,
                "--loglevel",
                "INFO",
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                *(
                    ["--include", "tests.support.delivery_trace,tests.support.kill_in_delivery"]
                    if self.test_hooks
                    else []
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=REPO,
            start_new_session=True,
        )
        self.running.append(process)
        return process

    def start(self) -> None:
        for index in range(self.processes):
            self.start_one(f"worker{index}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every worker started since its log was opened has logged Celery's "ready.".

        Raises RuntimeError, with the log of the first one not ready, after ``timeout`` s or
        when one exits first.
        """
        deadline = time.monotonic() + timeout
        waiting = dict(self._log_offsets)
        while waiting:
            for name, offset in list(waiting.items()):
                with (self.workdir / f"{name}.log").open("rb") as log:
                    log.seek(offset)
                    if b" ready." in log.read():
                        del waiting[name]
            exited = [p.args for p in self.running if p.poll() is not None]
            if waiting and (exited or time.monotonic() > deadline):
                name = sorted(waiting)[0]
                text = (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]
                why = f"exited: {exited}" if exited else f"not ready after {timeout}s"
                raise RuntimeError(f"worker {name} {why}:\n{text}")
            time.sleep(0.05)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, sig)
        for process in self.running:
            process.wait(timeout=20)
        self.running.clear()
        self._log_offsets.clear()

    def stop(self) -> None:
        self.kill_all(signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("worker*.log"))


@dataclass
class Producer:
    """What the watcher does for a key, for tests that drive the queue directly."""

    queue: WorkQueue
    publisher: Publisher

    @classmethod
    def connect(cls, queue: WorkQueue, redis_url: str) -> Producer:
        return cls(queue=queue, publisher=make_publisher(redis_url, name="tango_operator_tests"))

    def enqueue(self, key: Key) -> EnqueueResult:
        result = self.queue.enqueue(key)
        if result is EnqueueResult.SEND:
            self.publisher(key)
        return result

    def pump(self) -> int:
        due = self.queue.due()
        for key in due:
            self.enqueue(key)
        return len(due)


def celery_queue_length(connection: Redis) -> int:
    """Messages waiting in the workers' Celery queue, both priorities."""
    return sum(cast(int, connection.llen(name)) for name in queue_lists())


def celery_messages(connection: Redis) -> list[bytes]:
    """The raw messages waiting in the workers' Celery queue, in the order a worker takes them.

    Urgent before normal, oldest first in each (kombu LPUSHes and BRPOPs).
    """
    messages: list[bytes] = []
    for name in queue_lists():
        messages += reversed(cast(list[bytes], connection.lrange(name, 0, -1)))
    return messages


# The bound of a wait for something the code under test does promptly: wait_for returns as soon
# as its condition holds, so a bound this generous costs nothing when the code works, and a
# loaded machine (two other test runs on 2 cores) does not turn a slow pass into a failure.
EVENTUALLY = 30.0


def wait_for(predicate: object, *, timeout: float, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
