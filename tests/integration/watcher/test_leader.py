"""Leader election on the Lease.

With ``python -m watcher`` processes and in-process electors against kubeemu: one leader at a time,
a released Lease is taken at once, a killed leader's within the lease duration, and a leader whose
Lease is taken steps down at once.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

from kubernetes import client

from devstack.redis_server import RedisServer
from tests.integration.watcher.conftest import (
    WatcherProcess,
    create_ds,
    ds_key,
    lease_holder,
    sent_keys,
)
from tests.support.workers import wait_for
from watcher.kube import Kube
from watcher.leader import LeaderElector

LEASE_SECONDS = 3


def test_standby_takes_over_from_a_released_and_from_a_killed_leader(
    watcher_process: WatcherProcess, kube_client: client.ApiClient, redis: RedisServer
) -> None:
    processes = {name: watcher_process(name) for name in ("w1", "w2", "w3")}
    wait_for(lambda: lease_holder(kube_client) in processes, timeout=20, what="a leader")
    first = lease_holder(kube_client)
    assert first is not None
    create_ds(kube_client, "early")
    wait_for(lambda: ds_key("early") in sent_keys(redis), timeout=10, what="the first message")

    # SIGTERM: the leader releases the Lease on its way out; a standby takes it at once
    processes[first].send_signal(signal.SIGTERM)
    released = time.monotonic()
    wait_for(
        lambda: lease_holder(kube_client) not in (first, "", None),
        timeout=LEASE_SECONDS,
        interval=0.05,
        what="a standby to take the released Lease",
    )
    assert time.monotonic() - released < 2.0, "a released Lease is taken without expiring"
    assert processes[first].wait(timeout=10) == 0
    second = lease_holder(kube_client)
    assert second is not None
    create_ds(kube_client, "after-release")
    wait_for(
        lambda: ds_key("after-release") in sent_keys(redis), timeout=10, what="new leader's key"
    )

    # SIGKILL: no release; the last standby waits for the Lease to expire
    processes[second].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    third = next(name for name in processes if name not in (first, second))
    wait_for(
        lambda: lease_holder(kube_client) == third,
        timeout=LEASE_SECONDS + 3,
        interval=0.05,
        what="the last standby to take the expired Lease",
    )
    takeover = time.monotonic() - killed
    assert takeover < LEASE_SECONDS + 3, f"takeover took {takeover:.1f}s"
    create_ds(kube_client, "after-kill")
    wait_for(lambda: ds_key("after-kill") in sent_keys(redis), timeout=10, what="third's key")

    # every leader listed every CR, yet the queue's dedupe let one message per key through
    sent = sent_keys(redis)
    for name in ("early", "after-release", "after-kill"):
        assert sent.count(ds_key(name)) == 1, sent


def _elector(api_client: client.ApiClient, identity: str) -> LeaderElector:
    return LeaderElector(
        Kube(api_client),
        namespace="default",
        name="tango-operator-watcher",
        identity=identity,
        lease_seconds=2,
        renew_seconds=1.5,
        retry_seconds=0.25,
    )


def _intrude(api_client: client.ApiClient) -> None:
    """Another holder renews with a clock an hour ahead (retrying the leader's 409s)."""
    leases = client.CoordinationV1Api(api_client)
    for _ in range(20):
        lease = leases.read_namespaced_lease("tango-operator-watcher", "default")
        lease.spec.holder_identity = "intruder"
        lease.spec.renew_time = datetime.now(UTC) + timedelta(hours=1)
        try:
            leases.replace_namespaced_lease("tango-operator-watcher", "default", lease)
            return
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError("could not write the Lease")


def test_leader_steps_down_when_its_lease_is_taken(kube_client: client.ApiClient) -> None:
    elector = _elector(kube_client, "me")
    stop = threading.Event()
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert elector.leading.wait(5), "a lone candidate leads"
        # expiry must not trust the other holder's clock
        _intrude(kube_client)
        taken = time.monotonic()
        wait_for(lambda: not elector.leading.is_set(), timeout=1, interval=0.02, what="step down")
        assert time.monotonic() - taken < 1.0, "stepped down at the next attempt, not later"
        assert elector.leading.wait(5), "the intruder stopped renewing: its Lease expires"
        back = time.monotonic() - taken
        assert 1.9 <= back < 2 + 1.5, f"reacquired after {back:.1f}s, lease duration 2s"
        assert lease_holder(kube_client) == "me"
    finally:
        stop.set()
        thread.join(timeout=5)
        elector.release()
    assert lease_holder(kube_client) == ""


def test_two_candidates_one_leader(kube_client: client.ApiClient) -> None:
    electors = [_elector(kube_client, name) for name in ("a", "b")]
    stop = threading.Event()
    threads = [threading.Thread(target=e.run, args=(stop,), daemon=True) for e in electors]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: any(e.leading.is_set() for e in electors), timeout=5, what="a leader")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert sum(e.leading.is_set() for e in electors) == 1
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
