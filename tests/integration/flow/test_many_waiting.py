"""2,000 DeviceServers waiting on a dependency: the waits live in Redis, not in workers.

Nothing is ever scheduled with a Celery ETA or countdown: `celery inspect scheduled` stays
empty, the requeue-after times are in the work queue's sorted set, and the workers' memory
does not grow while the waiters cycle through their re-checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from kubernetes import client

from tango_operator import crd
from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue
from tests.support.crs import device_server
from tests.support.workers import REPO, Producer, WorkerPool, wait_for

COUNT = 2000


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the Celery pool), in KiB."""
    total = 0
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], check=False, capture_output=True, text=True
    )
    for each in [pid, *map(int, children.stdout.split())]:
        try:
            for line in open(f"/proc/{each}/status").read().splitlines():  # noqa: SIM115
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def _inspect(pool: WorkerPool, what: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "inspect",
            what,
            "--json",
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        env=pool.environment(),
        cwd=REPO,
        check=True,
    )
    decoded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return decoded


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_thousand_waiters_cost_nothing_in_workers(
    pool: WorkerPool, producer: Producer, queue: WorkQueue, kube_client: client.ApiClient
) -> None:
    pool.processes, pool.concurrency = 1, 4
    pool.extra_env.update(
        {
            "TANGO_STANDIN_UNREACHABLE": "plc.example:502",
            "TANGO_OPERATOR_WAITING_MIN_SECONDS": "10",
            "TANGO_OPERATOR_WAITING_MAX_SECONDS": "20",
        }
    )
    pool.start()
    custom = client.CustomObjectsApi(kube_client)
    keys = []
    started = time.monotonic()
    for index in range(COUNT):
        name = f"w{index:04d}"
        custom.create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            "default",
            "deviceservers",
            device_server(name, dependsOn=["plc.example:502"]),
        )
        keys.append(Key("DeviceServer", "default", name))
        producer.enqueue(keys[-1])

    def all_waiting() -> bool:
        producer.pump()
        listed = custom.list_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers"
        )["items"]
        return bool(sum((i.get("status") or {}).get("state") == "Waiting" for i in listed) == COUNT)

    created = time.monotonic()
    wait_for(all_waiting, timeout=400, interval=5.0, what=f"{COUNT} DeviceServers Waiting")
    print(f"created in {created - started:.1f}s, Waiting after {time.monotonic() - created:.1f}s")
    worker_pid = pool.running[0].pid
    memory_after_first_round = _rss_kib(worker_pid)
    stats = queue.stats()
    # every waiter is either waiting out its requeue-after in Redis's sorted set, or queued /
    # being re-checked; none is held anywhere else
    assert stats["delayed"] > 0, stats
    assert stats["delayed"] + stats["queued"] + stats["processing"] >= COUNT * 0.95, stats

    # let every waiter be re-checked a few times
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        producer.pump()
        time.sleep(0.2)
    scheduled = _inspect(pool, "scheduled")
    assert all(not tasks for tasks in scheduled.values()), f"ETA tasks reserved: {scheduled}"
    reserved = _inspect(pool, "reserved")
    assert sum(len(tasks) for tasks in reserved.values()) <= pool.concurrency
    memory_later = _rss_kib(worker_pid)
    assert memory_later < memory_after_first_round * 1.25 + 20_000, (
        memory_after_first_round,
        memory_later,
    )
