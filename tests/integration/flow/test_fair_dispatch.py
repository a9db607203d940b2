"""Fair dispatch end to end.

The real watcher (its dispatcher) and real worker processes on kubeemu and redis-server. A flood of
DeviceServers in one namespace does not hold up a late DeviceServer in another, and the Celery queue
stays short while the flood drains; an urgent message overtakes the queue; a task drains keys
that wait their turn. (The timing comparison with FIFO dispatch is the fairness benchmark, not
a test.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from devstack.redis_server import RedisServer
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue
from tango_operator.workqueue.fair import FairQueue
from tests.support.crs import create_device_server, running
from tests.support.standin_tango import reconcile_starts
from tests.support.workers import REPO, WorkerPool, celery_queue_length, wait_for

FLOOD = 150


@pytest.mark.slow
def test_a_late_namespace_overtakes_a_flood(
    pool: WorkerPool, redis: RedisServer, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    pool.processes, pool.concurrency = 2, 1
    pool.extra_env["TANGO_OPERATOR_DISPATCH"] = "fair"
    pool.start()
    core = client.CoreV1Api(kube_client)
    for namespace in ("flood", "late"):
        core.create_namespace({"metadata": {"name": namespace}})
    for number in range(FLOOD):
        create_device_server(kube_client, f"f{number}", "flood")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "watcher"],
        env={**pool.environment(), "TANGO_OPERATOR_DISPATCH": "fair"},
        stdout=(tmp_path / "watcher.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    longest_celery_queue = 0
    try:
        wait_for(lambda: running(kube_client, "flood") >= 5, timeout=60, what="the flood started")
        created = time.monotonic()
        create_device_server(kube_client, "late", "late")
        with redis.client() as connection:

            def late_running() -> bool:
                nonlocal longest_celery_queue
                length = celery_queue_length(connection)
                longest_celery_queue = max(longest_celery_queue, length)
                return running(kube_client, "late") == 1

            wait_for(late_running, timeout=60, interval=0.05, what="the late DeviceServer")
        seen_running = time.monotonic()
        # How many reconciles ran while the late DeviceServer waited for its two: FIFO runs
        # the flood's queue first (about 130 here), fair dispatch takes the late namespace at
        # its next turn. (Counting the flood's Running CRs instead measures nothing once the
        # workers drain the lanes: the flood's second passes then end in bursts of dozens.)
        ahead = [t for _, _, t in reconcile_starts(pool.trace) if created <= t <= seen_running]
        assert len(ahead) < FLOOD / 3, f"the late namespace waited for {len(ahead)} reconciles"
        assert longest_celery_queue <= 20, "the Celery queue stays a few messages long"
        wait_for(
            lambda: running(kube_client, "flood") == FLOOD, timeout=240, what="the whole flood"
        )
    finally:
        watcher.terminate()
        watcher.wait(timeout=20)


def test_an_urgent_message_is_taken_before_those_queued_ahead_of_it(
    pool: WorkerPool, redis: RedisServer, kube_client: client.ApiClient
) -> None:
    """The watcher's sender and a real worker through kombu's priority lists.

    A woken dependent sent at the urgent priority runs before the messages that were already
    waiting (``tango_operator.messages``), instead of after a window of them.
    """
    names = [f"n{number}" for number in range(6)]
    for name in [*names, "woken"]:
        create_device_server(kube_client, name, databaseds=f"db-{name}.example")
    sender = make_publisher(redis.url)
    for name in names:
        sender(Key("DeviceServer", "default", name))
    sender.urgent(Key("DeviceServer", "default", "woken"))
    with redis.client() as connection:
        assert celery_queue_length(connection) == 7
    pool.processes, pool.concurrency = 1, 1
    pool.start()

    def hosts_in_order() -> list[str]:
        return [host for _, host, _ in reconcile_starts(pool.trace)]

    wait_for(lambda: len(set(hosts_in_order())) == 7, timeout=60, what="all seven reconciled")
    order = list(dict.fromkeys(hosts_in_order()))
    assert order[0] == "db-woken.example:10000", order
    assert order[1:] == [f"db-{name}.example:10000" for name in names], "the rest in FIFO order"


def test_a_task_drains_the_keys_waiting_their_turn(
    pool: WorkerPool, redis: RedisServer, kube_client: client.ApiClient
) -> None:
    """One message, then the worker takes ``TANGO_OPERATOR_DISPATCH_DRAIN`` more in turn itself.

    No watcher runs: the keys wait in the fair queue's lanes as the watcher would leave them,
    and only the first is sent, as its dispatcher would with a window of one.
    """
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": "other"}})
    keys = [
        Key("DeviceServer", namespace, f"{prefix}{number}")
        for prefix, namespace in (("a", "default"), ("b", "other"))
        for number in range(3)
    ]
    for key in keys:
        create_device_server(
            kube_client, key.name, key.namespace, databaseds=f"db-{key.name}.example"
        )
    with redis.client() as connection:
        fair = FairQueue(WorkQueue(connection))
        for key in keys:
            fair.add(key)
        sent = fair.dispatch(1).keys
        assert sent == [Key("DeviceServer", "default", "a0")]
        make_publisher(redis.url)(sent[0])
        pool.processes, pool.concurrency = 1, 1
        pool.extra_env.update(
            {"TANGO_OPERATOR_DISPATCH": "fair", "TANGO_OPERATOR_DISPATCH_DRAIN": "3"}
        )
        pool.start()

        def hosts_in_order() -> list[str]:
            return [host.split(".")[0] for _, host, _ in reconcile_starts(pool.trace)]

        wait_for(lambda: len(hosts_in_order()) >= 4, timeout=60, what="four reconciles")
        time.sleep(1.5)  # nothing else may run: no more messages, no watcher
        assert hosts_in_order() == ["db-a0", "db-b0", "db-a1", "db-b1"], "its own, then in turn"
        assert len(pool.deliveries.read_text().splitlines()) == 1, "one message for all four"
        assert fair.pending() == 2, "the rest wait for the dispatcher"
