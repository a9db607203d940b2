"""The process's lease renewer against a real redis-server.

A registered lease outlives its length while registered, is let go once unregistered, and
reports the loss when another holder took the key; the thread stops when nothing is held.
"""

from __future__ import annotations

import threading
import time

import redis

from tango_operator.keys import Key
from tango_operator.workqueue import Busy, Lease, WorkQueue
from tango_operator.workqueue.renewal import LeaseRenewer
from tests.support.workers import EVENTUALLY

KEY = Key("DeviceServer", "team-a", "motor")


def _lease(queue: WorkQueue, key: Key = KEY) -> Lease:
    claim = queue.begin(key)
    assert isinstance(claim, Lease), claim
    return claim


def test_a_registered_lease_outlives_its_length(redis_client: redis.Redis) -> None:
    # a lease of a second (at 0.3 s a renewer starved for a moment by a loaded machine could
    # miss its turn); sleeps longer than it are the windows that prove renewal and its end
    queue = WorkQueue(redis_client, lease_seconds=1.0)
    other = WorkQueue(redis_client, lease_seconds=1.0)
    renewer = LeaseRenewer(queue)
    renewal = renewer.register(_lease(queue))
    time.sleep(2.5)  # more than two lease lengths
    assert isinstance(other.begin(KEY), Busy), "the renewed lease still holds the key"
    assert not renewal.lost.is_set()
    renewer.unregister(renewal)
    time.sleep(1.2)  # no more renewals: the lease runs out
    assert isinstance(other.begin(KEY), Lease)


def test_the_loss_of_a_lease_is_reported(redis_client: redis.Redis) -> None:
    queue = WorkQueue(redis_client, lease_seconds=0.3)
    renewer = LeaseRenewer(queue)
    renewal = renewer.register(_lease(queue))
    redis_client.set(f"{queue.prefix}lock:{KEY.encode()}", "someone-else")
    assert renewal.lost.wait(EVENTUALLY), "the renewer noticed another holder"


def test_many_leases_share_one_thread_that_ends_when_idle(redis_client: redis.Redis) -> None:
    # leases of a second, kept twice as long: a renewer starved for a moment by a loaded
    # machine still renews in time (at 0.3 s it could miss one)
    queue = WorkQueue(redis_client, lease_seconds=1.0)
    renewer = LeaseRenewer(queue)
    before = threading.active_count()
    keys = [Key("DeviceServer", "team-a", f"ds-{i}") for i in range(20)]
    renewals = [renewer.register(_lease(queue, key)) for key in keys]
    assert threading.active_count() == before + 1
    time.sleep(2.0)  # the leases outlive their length only if renewed
    assert all(redis_client.exists(f"{queue.prefix}lock:{key.encode()}") for key in keys)
    for renewal in renewals:
        renewer.unregister(renewal)
    deadline = time.monotonic() + EVENTUALLY
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before, "the renewer's thread ended with no lease held"
    again = renewer.register(_lease(queue, Key("DeviceServer", "team-a", "late")))
    assert threading.active_count() == before + 1, "and starts again with the next lease"
    renewer.unregister(again)
