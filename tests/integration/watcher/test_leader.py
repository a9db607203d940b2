"""Leader election on the Lease.

With ``python -m watcher`` processes and in-process electors against kubeemu: one leader at a time,
a released Lease is taken at once, a killed leader's within the lease duration, and a leader whose
Lease is taken steps down at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from devstack.redis_server import RedisServer
from tests.integration.watcher.conftest import (
    WATCHER_LEASE_SECONDS,
    WatcherProcess,
    create_ds,
    ds_key,
    lease_holder,
    sent_keys,
)
from tests.support.workers import wait_for
from watcher.kube import Kube
from watcher.leader import LeaderElector

# The first leader holds a Lease this long: its standbys could take it by expiry only after
# that, so a takeover sooner is the release's doing, however slow the machine is.
RELEASED_LEASE_SECONDS = 60
# a wait bounded by the configured Lease: twice it plus a margin for a loaded machine
TAKEOVER_WITHIN = WATCHER_LEASE_SECONDS * 2 + 10


def test_standby_takes_over_from_a_released_and_from_a_killed_leader(
    watcher_process: WatcherProcess,
    kube_client: client.ApiClient,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    first = "w1"
    processes = {
        first: watcher_process(
            first,
            TANGO_OPERATOR_LEASE_DURATION_SECONDS=str(RELEASED_LEASE_SECONDS),
            TANGO_OPERATOR_LEASE_RENEW_SECONDS=str(RELEASED_LEASE_SECONDS // 2),
        )
    }
    wait_for(lambda: lease_holder(kube_client) == first, timeout=30, what="the first leader")
    processes.update({name: watcher_process(name) for name in ("w2", "w3")})
    create_ds(kube_client, "early")
    wait_for(lambda: ds_key("early") in sent_keys(redis), timeout=30, what="the first message")

    # SIGTERM: the leader releases the Lease on its way out; a standby takes it at once
    processes[first].send_signal(signal.SIGTERM)
    released = time.monotonic()
    wait_for(
        lambda: lease_holder(kube_client) not in (first, "", None),
        timeout=TAKEOVER_WITHIN,
        interval=0.05,
        what="a standby to take the released Lease",
    )
    assert time.monotonic() - released < RELEASED_LEASE_SECONDS, "taken without expiring"
    assert processes[first].wait(timeout=30) == 0
    assert f"released lease identity={first}" in (tmp_path / f"watcher-{first}.log").read_text()
    second = lease_holder(kube_client)
    assert second is not None
    create_ds(kube_client, "after-release")
    wait_for(
        lambda: ds_key("after-release") in sent_keys(redis), timeout=30, what="new leader's key"
    )

    # SIGKILL: no release; the last standby waits for the Lease to expire
    processes[second].send_signal(signal.SIGKILL)
    third = next(name for name in processes if name not in (first, second))
    wait_for(
        lambda: lease_holder(kube_client) == third,
        timeout=TAKEOVER_WITHIN,
        interval=0.05,
        what="the last standby to take the expired Lease",
    )
    create_ds(kube_client, "after-kill")
    wait_for(lambda: ds_key("after-kill") in sent_keys(redis), timeout=30, what="third's key")

    # every leader listed every CR, yet the queue's dedupe let one message per key through
    sent = sent_keys(redis)
    for name in ("early", "after-release", "after-kill"):
        assert sent.count(ds_key(name)) == 1, sent


ELECTOR_LEASE_SECONDS = 2
ELECTOR_RETRY_SECONDS = 0.25
# the in-process electors' waits: the Lease twice plus a margin for a loaded machine; an
# elector that trusted the intruder's clock (an hour ahead) would wait an hour
ELECTOR_WAIT = ELECTOR_LEASE_SECONDS * 2 + 10


def _elector(api_client: client.ApiClient, identity: str) -> LeaderElector:
    return LeaderElector(
        Kube(api_client),
        namespace="default",
        name="tango-operator-watcher",
        identity=identity,
        lease_seconds=ELECTOR_LEASE_SECONDS,
        renew_seconds=1.5,
        retry_seconds=ELECTOR_RETRY_SECONDS,
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


def test_leader_steps_down_when_its_lease_is_taken(
    kube_client: client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    elector = _elector(kube_client, "me")
    stop = threading.Event()
    thread = threading.Thread(target=elector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert elector.leading.wait(ELECTOR_WAIT), "a lone candidate leads"
        caplog.set_level(logging.WARNING, logger="watcher.leader")
        # expiry must not trust the other holder's clock
        caplog.clear()
        before_intruding = time.monotonic()
        _intrude(kube_client)
        wait_for(
            lambda: not elector.leading.is_set(),
            timeout=ELECTOR_WAIT,
            interval=0.02,
            what="step down",
        )
        # at its next attempt, on seeing the intruder, not at the renew deadline
        reasons = [r.getMessage() for r in caplog.records if "lost leadership" in r.getMessage()]
        assert reasons == ["lost leadership identity=me reason='lease held by intruder'"]
        assert elector.leading.wait(ELECTOR_WAIT), "the intruder stopped renewing: it expires"
        # the Lease changed after ``before_intruding``: the elector saw the change no sooner,
        # and waits the Lease's duration from there (its own clock, not the intruder's)
        back = time.monotonic() - before_intruding
        assert back >= ELECTOR_LEASE_SECONDS, f"reacquired after {back:.2f}s, before expiry"
        assert lease_holder(kube_client) == "me"
    finally:
        stop.set()
        thread.join(timeout=30)
        elector.release()
    assert lease_holder(kube_client) == ""


def test_two_candidates_one_leader(kube_client: client.ApiClient) -> None:
    electors = [_elector(kube_client, name) for name in ("a", "b")]
    stop = threading.Event()
    threads = [threading.Thread(target=e.run, args=(stop,), daemon=True) for e in electors]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: any(e.leading.is_set() for e in electors),
            timeout=ELECTOR_WAIT,
            what="a leader",
        )
        # never two at once over a window of a Lease's length (none for a moment is allowed:
        # on a loaded machine a leader can miss its renew deadline and step down)
        leaders_seen = set()
        deadline = time.monotonic() + ELECTOR_LEASE_SECONDS
        while time.monotonic() < deadline:
            leading = [e.identity for e in electors if e.leading.is_set()]
            assert len(leading) <= 1, leading
            leaders_seen.update(leading)
            time.sleep(0.05)
        assert leaders_seen, "someone led during the window"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
