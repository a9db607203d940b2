"""The /metrics endpoints of a worker and of the watcher.

They scrape, parse with prometheus_client's parser, and carry the queue's series after a reconcile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kubernetes import client

from devstack.ports import free_port
from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.support.metrics import scrape
from tests.support.workers import REPO, WorkerPool, wait_for


def test_worker_and_watcher_metrics(
    kubeemu: KubeEmu,
    redis: RedisServer,
    pool: WorkerPool,
    kube_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    worker_port, watcher_port = free_port(), free_port()
    pool.extra_env["TANGO_OPERATOR_METRICS_PORT"] = str(worker_port)
    pool.start()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "watcher"],
        env={
            **pool.environment(),
            "TANGO_OPERATOR_METRICS_PORT": str(watcher_port),
            "TANGO_OPERATOR_IDENTITY": "metrics",
        },
        stdout=(tmp_path / "watcher.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            "default",
            "deviceservers",
            {
                "apiVersion": crd.API_VERSION,
                "kind": "DeviceServer",
                "metadata": {"name": "measured"},
                "spec": {
                    "dsname": "M",
                    "args": "measured",
                    "command": "/x",
                    "databaseds": "db.example",
                    "image": "i",
                },
            },
        )
        success = (
            "tango_operator_reconcile_total",
            frozenset({("kind", "DeviceServer"), ("result", "success")}),
        )
        wait_for(
            lambda: scrape(worker_port).get(success, 0) >= 1,
            timeout=30,
            what="a successful reconcile in the worker's metrics",
        )
        worker = scrape(worker_port)
        latency = (
            "tango_operator_queue_latency_seconds_count",
            frozenset({("kind", "DeviceServer")}),
        )
        assert worker[latency] >= 1
        running = (
            "tango_operator_state_total",
            frozenset({("kind", "DeviceServer"), ("state", "Running")}),
        )
        wait_for(
            lambda: scrape(worker_port).get(running, 0) >= 1,
            timeout=30,
            what="a Running reconcile",
        )

        # the pump publishes the queue gauges every half second; a loaded machine may lag
        leader: tuple[str, frozenset[tuple[str, str]]] = ("tango_operator_leader", frozenset())
        gauge = ("tango_operator_queue_keys", frozenset({("stage", "delayed")}))

        # the leader gauge is 1 once this watcher holds the Lease
        def leading_with_queue_series() -> bool:
            samples = scrape(watcher_port)
            return samples.get(leader) == 1 and gauge in samples

        wait_for(
            leading_with_queue_series,
            timeout=15,
            what="the watcher's queue series and its leader gauge at 1",
        )
        watcher_samples = scrape(watcher_port)
        assert ("tango_operator_queue_keys", frozenset({("stage", "delayed")})) in watcher_samples
        assert any(
            name == "tango_operator_enqueued_total" and value >= 1
            for (name, _), value in watcher_samples.items()
        )
    finally:
        watcher.terminate()
        watcher.wait(timeout=20)
