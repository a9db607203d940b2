"""The faults of the soak, and the kubelet that restarts what they kill.

- ``api_faults``: kubeemu's fault rules — 10 % 5xx (500 and 503), 5 % 429 with
  Retry-After, 0 to 200 ms of latency on every API request, watches included.
- ``WorkerFleet``: ``tango-operator worker`` processes ("pods": supervisor → Celery main →
  prefork pool children); SIGKILLs a pool child (Celery replaces it) or a whole process
  group (the pod dies; ``tend`` starts it again after a delay, as a kubelet would) and
  records every pid it killed with the time (``deaths``, for ``overlapping_windows``).
- ``WatcherPair``: the chart's two ``python -m watcher`` replicas; kills the one holding
  the Lease (read from kubeemu) and measures how long the standby takes to take it over;
  ``tend`` restarts the killed one.

Everything here is called from ``tests.soak.soak``'s timeline; all times are
``time.monotonic()`` unless named ``*_wall``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support import kill_in_delivery
from tests.support.workers import REPO, WorkerPool

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
RESTART_DELAY = 2.0
"""Seconds from a pod's death to its restart (a kubelet's first CrashLoopBackOff is 10 s;
shorter here, so that the run spends its time reconciling)."""
LEASE_NAME = "tango-operator-watcher"


def api_faults() -> list[JsonDict]:
    """The soak's fault rules: P(500) = P(503) = 5 %, P(429) = 5 %.

    Kubeemu checks them in order; each fires with its own rate, the first firing error ends the
    check.
    """
    return [
        {"rate": 1.0, "latency_ms": 0, "latency_jitter_ms": 200},
        {"rate": 0.05, "code": 500, "message": "soak: injected 500"},
        {"rate": 0.05 / 0.95, "code": 503, "message": "soak: injected 503"},
        {"rate": 0.05 / 0.90, "code": 429, "retry_after_seconds": 1},
    ]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(child) for child in path.read_text().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    found = [pid]
    for child in children(pid):
        found.extend(descendants(child))
    return found


@dataclass
class WorkerFleet:
    pool: WorkerPool
    pods: int
    rng: random.Random
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    dead_since: dict[str, float] = field(default_factory=dict)
    deaths: dict[int, float] = field(default_factory=dict)
    """Every pid this fleet killed → time.monotonic() right after the signal."""
    child_kills: int = 0
    pod_kills: int = 0
    main_kills: int = 0
    """Celery main processes killed at a random instant (the pod's supervisor restarts it)."""
    delivery_kills: int = 0
    """Armings of ``tests.support.kill_in_delivery``: the next delivery kills its main process
    between kombu's pop and its unacked record, losing the message."""
    restarts: int = 0

    @property
    def kills(self) -> int:
        return self.child_kills + self.pod_kills + self.main_kills + self.delivery_kills

    delivery_kills_fired: int = 0
    """How many armings killed a process (``record_delivery_deaths`` counts them)."""

    def record_delivery_deaths(self) -> None:
        """Add the processes the in-delivery kills took (main and pool children) to deaths.

        Called at the end of the run, while the work directory and its records still exist.
        """
        armed = self.pool.kill_in_delivery
        self.delivery_kills_fired = len(list(armed.parent.glob(f"{armed.name}.fired-by-*")))
        for pid, when in kill_in_delivery.fired(armed).items():
            self.deaths.setdefault(pid, when)

    def start(self) -> None:
        for index in range(self.pods):
            name = f"worker{index}"
            self.running[name] = self.pool.start_one(name)

    def pool_children(self, name: str) -> list[int]:
        """The prefork children of the pod's Celery main process (none while it restarts)."""
        process = self.running.get(name)
        if process is None or process.poll() is not None:
            return []
        return [pid for main in children(process.pid) for pid in children(main)]

    def kill_child(self) -> int | None:
        """SIGKILL one pool child of a random live pod; its pid, or None if none was found."""
        candidates = [(name, pid) for name in self.running for pid in self.pool_children(name)]
        if not candidates:
            return None
        _, pid = self.rng.choice(candidates)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            self.deaths[pid] = time.monotonic()
            self.child_kills += 1
            return pid
        return None

    def kill_main(self) -> int | None:
        """SIGKILL the Celery main process of a random live pod; its pid, or None if none."""
        mains = [
            pid
            for name, process in self.running.items()
            if process.poll() is None
            for pid in children(process.pid)
        ]
        if not mains:
            return None
        pid = self.rng.choice(mains)
        pool_children = descendants(pid)  # Celery sets PDEATHSIG=SIGKILL: they die with it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            for dead in pool_children:
                self.deaths[dead] = killed_at
            self.main_kills += 1
            return pid
        return None

    def arm_delivery_kill(self) -> bool:
        """Make the next delivery kill its Celery main process; False if still armed."""
        armed = self.pool.kill_in_delivery
        if armed.exists():
            return False
        armed.touch()
        self.delivery_kills += 1
        return True

    def kill_pod(self) -> str | None:
        """SIGKILL a random live pod's whole process group; its name."""
        live = [name for name, p in self.running.items() if p.poll() is None]
        if not live:
            return None
        name = self.rng.choice(live)
        process = self.running[name]
        pids = descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for pid in pids:
            self.deaths[pid] = killed_at
        process.wait(timeout=20)
        self.pod_kills += 1
        return name

    def tend(self) -> None:
        """The kubelet: a pod that has been dead for RESTART_DELAY is started again."""
        now = time.monotonic()
        for name, process in list(self.running.items()):
            if process.poll() is None:
                continue
            since = self.dead_since.setdefault(name, now)
            if now - since >= RESTART_DELAY:
                del self.dead_since[name]
                self.running[name] = self.pool.start_one(name)
                self.restarts += 1

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@dataclass
class WatcherPair:
    """Two ``python -m watcher`` replicas sharing the Lease, as the chart deploys them.

    Each start is a new pod, with a new identity (``watcher-a-1``, ``watcher-a-2``, …):
    a restarted replica must not inherit its predecessor's Lease by name.
    """

    environment: dict[str, str]
    workdir: Path
    api_client: client.ApiClient
    """The driver's client, to read the Lease."""
    running: dict[str, tuple[str, subprocess.Popen[bytes]]] = field(default_factory=dict)
    """Slot (``a``, ``b``) → (identity, process)."""
    dead_since: dict[str, float] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    takeover_seconds: float | None = None
    new_leader: str | None = None
    restarts: int = 0
    _starts: int = 0

    def start(self) -> None:
        for slot in ("a", "b"):
            self._start(slot)

    def _start(self, slot: str) -> None:
        self._starts += 1
        identity = f"watcher-{slot}-{self._starts}"
        log_file = (self.workdir / f"{identity}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher"],
            env={**self.environment, "TANGO_OPERATOR_IDENTITY": identity},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.running[slot] = (identity, process)

    def holder(self) -> str | None:
        """The Lease's holder, read through the faulty API (None: unknown or no Lease)."""
        for _ in range(20):
            try:
                lease = client.CoordinationV1Api(self.api_client).read_namespaced_lease(
                    LEASE_NAME, "default"
                )
            except client.ApiException as exc:
                if exc.status == 404:
                    return None
                time.sleep(0.1)
                continue
            holder: str | None = lease.spec.holder_identity
            return holder
        return None

    def identities(self) -> dict[str, str]:
        """Identity → slot of the live replicas."""
        return {
            identity: slot
            for slot, (identity, process) in self.running.items()
            if process.poll() is None
        }

    def kill_leader(self, timeout: float) -> str:
        """SIGKILL the leading replica and wait until another replica holds the Lease."""
        leader = self.holder()
        slot = self.identities().get(leader or "")
        if leader is None or slot is None:
            raise AssertionError(f"no live watcher leads (the Lease names {leader!r})")
        process = self.running[slot][1]
        process.kill()
        killed_at = time.monotonic()
        process.wait(timeout=20)
        self.killed.append(leader)
        deadline = killed_at + timeout
        while time.monotonic() < deadline:
            now = self.holder()
            if now not in (None, "", leader):
                self.takeover_seconds = time.monotonic() - killed_at
                self.new_leader = now
                return leader
            time.sleep(0.2)
        raise AssertionError(f"no standby took the Lease from {leader} in {timeout}s")

    def tend(self) -> None:
        now = time.monotonic()
        for slot, (_, process) in list(self.running.items()):
            if process.poll() is None:
                continue
            since = self.dead_since.setdefault(slot, now)
            if now - since >= RESTART_DELAY:
                del self.dead_since[slot]
                self._start(slot)
                self.restarts += 1

    def stop(self) -> None:
        processes = [process for _, process in self.running.values()]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
