"""The CPU profile's bookkeeping (``tests.bench.profile_reconcile``) on hand-written samples.

In: lines in py-spy's raw format, as ``py-spy record --subprocesses --format raw`` writes
them. Out: checks of which process kind and component each sample lands in, and of how a
kind's measured CPU time is divided among its components.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.bench.profile_reconcile import OWN_KINDS, STARTUP, Profile, parse, table

BENCH = 'process 10:"python -m tests.bench.profile_reconcile --run operator"'
WORKER = 'process 12:"python -m workers.run -Q tango-operator"'
WATCHER = 'process 11:"python -m watcher --log-level WARNING"'
KUBEEMU = 'process 13:"python -m kubeemu --port 0"'

RAW = "\n".join(
    [
        # the worker: a Kubernetes request inside the reconcile (the request wins)
        f"{BENCH};{WORKER};trace_task (celery/app/trace.py:1);"
        "Kube._call_once (workers/kube.py:164);getresponse (http/client.py:2) 6",
        # the worker: the reconcile itself
        f"{BENCH};{WORKER};trace_task (celery/app/trace.py:1);"
        "_reconcile_valid (workers/reconcile/deviceserver.py:9) 2",
        # the worker: kombu receiving a message
        f"{BENCH};{WORKER};asynloop (celery/worker/loops.py:1);"
        "MultiChannelPoller.on_readable (kombu/transport/redis.py:863) 4",
        # the worker: importing at start-up
        f"{BENCH};{WORKER};<module> (workers/tasks.py:1);"
        "_find_and_load (<frozen importlib._bootstrap>:1176) 8",
        # the watcher: publishing a key
        f"{BENCH};{WATCHER};Watcher.on_event (watcher/main.py:1);"
        "Publisher.send (tango_operator/messages.py:69) 3",
        # kubeemu and the bench itself are not counted
        f"{BENCH};{KUBEEMU};handle (kubeemu/server.py:1) 50",
        f"{BENCH};wait_running (tests/bench/bench_reconcile.py:1) 7",
    ]
)


@pytest.fixture
def samples(tmp_path: Path) -> Counter[tuple[str, str]]:
    raw = tmp_path / "raw.txt"
    raw.write_text(RAW + "\n")
    return parse(raw)


def test_each_sample_lands_in_its_process_kind_and_first_matching_component(
    samples: Counter[tuple[str, str]],
) -> None:
    assert samples == Counter(
        {
            ("worker", "Kubernetes API client (HTTP, JSON)"): 6,
            ("worker", "reconcile logic, Celery's tracer"): 2,
            ("worker", "Celery: receive a message"): 4,
            ("worker", STARTUP): 8,
            ("watcher", "Celery: publish"): 3,
        }
    )


def test_a_kinds_cpu_time_is_divided_by_its_samples(samples: Counter[tuple[str, str]]) -> None:
    # the worker: 20 samples, 2.0 s of CPU; 100 CRs
    cpu = {"worker": 2.0, "watcher": 0.3, "redis-server": 0.5, "kopf": 0.1}
    profile = Profile("operator", 100, 9.0, samples, cpu, OWN_KINDS["operator"])
    assert profile.startup_seconds("worker") == pytest.approx(0.8)  # 8 of 20 samples
    assert profile.ms_per_cr("worker") == pytest.approx(12.0)  # the other 12: 1.2 s / 100 CRs
    assert profile.ms_per_cr("worker", "Kubernetes API client (HTTP, JSON)") == pytest.approx(6.0)
    assert profile.ms_per_cr("watcher") == pytest.approx(3.0)
    # redis-server has no samples: its whole CPU time, no components
    assert not profile.sampled("redis-server")
    assert profile.ms_per_cr("redis-server") == pytest.approx(5.0)
    assert profile.kinds() == ["watcher", "worker", "redis-server"]
    text = table([profile])
    assert "| Kubernetes API client (HTTP, JSON) | 0.00 | 6.00 |  |" in text
    assert "| **total** | **3.00** | **12.00** | **5.00** |" in text
    assert "operator 20.0 ms" in text
