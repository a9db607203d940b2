"""A run's first reads come with its lease and its owner-copy write with the release (real Redis).

``tango_operator.workqueue.piggyback``: ``WorkQueue.begin`` sends the ledger's reads after its
script and the run answers from them once; a refused begin, an unknown epoch or script go the
plain way. While a run collects, ``RedisChildLedger.wrote_owner`` is held and
``WorkQueue.finish`` sends it ahead of the release in one pipeline; outside a run it is
written at once; a Redis that forgot the scripts gets them loaded again.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from redis import Redis

from tango_operator.errors import TemporaryError
from tango_operator.keys import Key
from tango_operator.workqueue import Busy, Lease, WorkQueue
from tango_operator.workqueue.dependencies import RedisDependencyIndex
from tango_operator.workqueue.ledger import RedisChildLedger
from tango_operator.workqueue.piggyback import WriteBehind
from tango_operator.workqueue.starting import StartingServers
from workers.execution import run
from workers.reconcile.ports import Outcome

OWNER = Key("DeviceServer", "lab", "motor")


def _cr(version: str, state: str = "Pending") -> dict[str, Any]:
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {"name": "motor", "namespace": "lab", "resourceVersion": version},
        "status": {"state": state},
    }


def _copied(ledger: RedisChildLedger) -> str | None:
    copy = ledger.owner_copy(OWNER)
    return None if copy.obj is None else str(copy.obj["metadata"]["resourceVersion"])


def _lease(queue: WorkQueue) -> Lease:
    claim = queue.begin(OWNER)
    assert isinstance(claim, Lease)
    return claim


@pytest.fixture
def ledger(redis_client: Redis) -> RedisChildLedger:
    ledger = RedisChildLedger(redis_client, write_behind=WriteBehind())
    ledger.observe_owner(OWNER, _cr("5"))  # the watcher's copy
    return ledger


def test_a_held_copy_is_written_ahead_of_the_release(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    queue, other = WorkQueue(redis_client), WorkQueue(redis_client)
    lease = _lease(queue)
    with ledger.write_behind.collecting() as held:
        ledger.wrote_owner(OWNER, _cr("7", "Running"))
        assert _copied(ledger) == "5", "held while the run goes on"
    assert len(held) == 1
    assert _copied(ledger) == "5"
    assert isinstance(other.begin(OWNER), Busy)
    finished = queue.finish(lease, success=True, held=held)
    assert finished.released
    assert _copied(ledger) == "7", "written by the release's round trip"
    assert isinstance(other.begin(OWNER), Lease), "and the key is free"


def test_outside_a_run_the_copy_is_written_at_once(ledger: RedisChildLedger) -> None:
    ledger.wrote_owner(OWNER, _cr("7"))
    assert _copied(ledger) == "7"


def test_held_calls_and_the_release_survive_a_redis_that_forgot_its_scripts(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    queue = WorkQueue(redis_client)
    lease = _lease(queue)
    with ledger.write_behind.collecting() as held:
        ledger.wrote_owner(OWNER, _cr("8"))
    redis_client.script_flush()  # as after a restart of redis-server
    assert queue.finish(lease, success=True, held=held).released
    assert _copied(ledger) == "8"
    assert isinstance(queue.begin(OWNER), Lease)


def test_a_held_call_of_a_run_that_fails_still_goes_with_its_release(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    """The status was written before the failure: its answer is as true as a success's."""
    seen_during: list[str | None] = []

    def reconcile(key: Key) -> Outcome:
        ledger.wrote_owner(key, _cr("9", "Error"))
        seen_during.append(_copied(ledger))
        raise TemporaryError("the API server went away after the status was written")

    report = run(
        OWNER,
        queue=WorkQueue(redis_client),
        reconcile=reconcile,
        send=lambda _: None,
        write_behind=ledger.write_behind,
    )
    assert report.result == "retry"
    assert seen_during == ["5"]
    assert _copied(ledger) == "9"


def test_runs_on_two_threads_hold_their_own_calls(ledger: RedisChildLedger) -> None:
    behind = ledger.write_behind
    theirs: list[str] = []

    def other_run() -> None:
        with behind.collecting() as held:
            ledger.wrote_owner(OWNER, _cr("12"))
        theirs.extend(str(call.args[0]) for call in held)

    with behind.collecting() as held:
        ledger.wrote_owner(OWNER, _cr("6"))
        thread = threading.Thread(target=other_run)
        thread.start()
        thread.join()
    assert [str(call.args[0]) for call in held] == ["6"]
    assert theirs == ["12"]
    assert _copied(ledger) == "5", "neither was sent"


def test_the_first_reads_come_with_the_lease(redis_client: Redis, ledger: RedisChildLedger) -> None:
    queue = WorkQueue(redis_client)
    queue.check_epoch()  # a process that has seen the epoch (any earlier call does)
    lease = queue.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    assert lease.read_ahead is not None
    ledger.observe_owner(OWNER, _cr("9"))  # after the begin: the preloaded read is older
    with ledger.preloaded(OWNER, lease.read_ahead):
        copy, records, plan = ledger.owner_and_records(OWNER)
        assert copy.obj is not None
        assert copy.obj["metadata"]["resourceVersion"] == "5"
        assert (records, plan) == ({}, None)
        again, _, _ = ledger.owner_and_records(OWNER)  # a second read goes to Redis
        assert again.obj is not None
        assert again.obj["metadata"]["resourceVersion"] == "9"
    assert queue.finish(lease, success=True).released


def test_a_refused_begin_reads_nothing_ahead(redis_client: Redis, ledger: RedisChildLedger) -> None:
    holder, other = WorkQueue(redis_client), WorkQueue(redis_client)
    holder.check_epoch()
    other.check_epoch()
    lease = holder.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    busy = other.begin(OWNER, read_ahead=ledger)
    assert isinstance(busy, Busy)
    assert holder.finish(lease, success=True).follow_up, "the refused begin asked for a rerun"


def test_begin_goes_the_plain_way_without_an_epoch_or_a_script(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    fresh = WorkQueue(redis_client)  # knows no epoch yet: looks at it first
    lease = fresh.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    assert lease.read_ahead is None
    assert fresh.finish(lease, success=True).released
    redis_client.script_flush()  # as after a restart of redis-server
    lease = fresh.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    assert lease.read_ahead is None, "the script was loaded by the plain begin"
    assert fresh.finish(lease, success=True).released
    lease = fresh.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    assert lease.read_ahead is not None


def test_a_redis_that_lost_its_data_is_noticed_as_without_reading_ahead(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    queue = WorkQueue(redis_client, lease_seconds=5)
    lease = queue.begin(OWNER, read_ahead=ledger)
    assert isinstance(lease, Lease)
    redis_client.flushall()  # leases of before may still run: the grace period
    assert isinstance(queue.begin(Key("DeviceServer", "lab", "other"), read_ahead=ledger), Busy)


def test_a_run_reads_what_was_read_with_its_lease(
    redis_client: Redis, ledger: RedisChildLedger
) -> None:
    queue = WorkQueue(redis_client)
    queue.check_epoch()
    seen: list[str] = []

    def reconcile(key: Key) -> Outcome:
        copy, _, _ = ledger.owner_and_records(key)
        assert copy.obj is not None
        seen.append(str(copy.obj["metadata"]["resourceVersion"]))
        return Outcome(state="Pending")

    def enqueue_and_run() -> None:
        report = run(
            OWNER, queue=queue, reconcile=reconcile, send=lambda _: None, read_ahead=ledger
        )
        assert report.result == "success"

    enqueue_and_run()
    ledger.observe_owner(OWNER, _cr("6"))
    enqueue_and_run()
    assert seen == ["5", "6"]


def test_a_forgotten_wait_and_a_starting_server_go_with_the_release(
    redis_client: Redis,
) -> None:
    behind = WriteBehind()
    index = RedisDependencyIndex(redis_client, write_behind=behind)
    starting = StartingServers(redis_client)
    index.register(OWNER, ("lab/db/1", "lab/db/2"))
    provider_devices = ("lab/db/1",)

    def reconcile(key: Key) -> Outcome:
        index.forget(key)  # the server no longer waits: it starts
        assert index.waiters_of(provider_devices) == [key], "held until the release"
        assert starting.entries() == []
        return Outcome(state="Pending", starting=("db:10000", ("lab/motor/1",)))

    report = run(
        OWNER,
        queue=WorkQueue(redis_client),
        reconcile=reconcile,
        send=lambda _: None,
        starting=starting,
        write_behind=behind,
    )
    assert report.result == "success"
    assert index.waiters_of(("lab/db/1", "lab/db/2")) == []
    assert not redis_client.exists("tango-operator:waits:" + OWNER.encode())
    assert [(e.key, e.devices) for e in starting.entries()] == [(OWNER, ("lab/motor/1",))]
