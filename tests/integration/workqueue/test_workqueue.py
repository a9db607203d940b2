"""The work queue against a real redis-server: the guarantees of client-go's workqueue.

Dedupe, single-flight leases, exactly one dirty follow-up, lease expiry, recovery from a
dead holder, stale queued entries, backoff, requeue-after, concurrent pumps, poison keys,
a Redis restarted empty, a multi-threaded simulation and a model-based test against a
plain-Python model of the semantics.
"""

from __future__ import annotations

import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from devstack.redis_server import RedisServer
from tango_operator.keys import Key
from tango_operator.workqueue import Busy, EnqueueResult, FinishResult, Lease, WorkQueue

ROOT = Path(__file__).resolve().parents[3]
KEY = Key("DeviceServer", "tango", "motor-01")
SEND, DUPLICATE, DIRTY = EnqueueResult.SEND, EnqueueResult.DUPLICATE, EnqueueResult.DIRTY


class FakeClock:
    """A clock the test moves by hand (stale entries, backoff and due times)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lease_of(result: Lease | Busy) -> Lease:
    assert isinstance(result, Lease), f"expected a lease, got {result}"
    return result


def keys(count: int, prefix: str = "ds") -> list[Key]:
    return [Key("DeviceServer", "tango", f"{prefix}-{i:04d}") for i in range(count)]


# -- dedupe and dirty follow-up ---------------------------------------------------------


def test_a_queued_key_is_not_queued_again(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client)
    assert wq.enqueue(KEY) is SEND
    assert [wq.enqueue(KEY) for _ in range(20)] == [DUPLICATE] * 20
    assert wq.enqueue(Key("DatabaseDS", "tango", "databaseds")) is SEND
    assert wq.stats()["queued"] == 2

    lease = lease_of(wq.begin(KEY))
    assert lease.attempt == 1
    assert not lease.poisoned
    assert lease.queued_at is not None
    assert wq.stats()["queued"] == 1
    assert wq.stats()["processing"] == 1


def test_no_event_during_processing_means_no_follow_up(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client)
    wq.enqueue(KEY)
    result = wq.finish(lease_of(wq.begin(KEY)), success=True)
    assert result == FinishResult(released=True, follow_up=False, failures=0, next_due=None)
    assert wq.stats() == {"queued": 0, "delayed": 0, "due": 0, "processing": 0, "failing": 0}
    assert wq.enqueue(KEY) is SEND


def test_fifty_events_during_processing_give_exactly_one_follow_up(
    redis_client: redis.Redis,
) -> None:
    wq = WorkQueue(redis_client)
    assert wq.enqueue(KEY) is SEND
    lease = lease_of(wq.begin(KEY))
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: wq.enqueue(KEY), range(50)))
    assert results == [DIRTY] * 50

    first = wq.finish(lease, success=True)
    assert first.released
    assert first.follow_up
    assert wq.enqueue(KEY) is DUPLICATE  # the follow-up is marked queued
    follow_up = lease_of(wq.begin(KEY))
    assert follow_up.attempt == 1
    assert wq.finish(follow_up, success=True).follow_up is False
    assert wq.stats()["queued"] == 0
    assert wq.stats()["processing"] == 0


def test_follow_up_not_sent_twice_when_a_message_is_already_in_flight(
    redis_client: redis.Redis,
) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease = lease_of(wq.begin(KEY))
    assert wq.enqueue(KEY) is DIRTY
    time.sleep(0.35)  # the lease lapsed: the next event is sent normally
    assert wq.enqueue(KEY) is SEND
    late = wq.finish(lease, success=True)
    assert late.released is False
    assert late.follow_up is False  # the message sent above does the follow-up


def test_prefixes_keep_queues_apart(redis_client: redis.Redis) -> None:
    one = WorkQueue(redis_client, prefix="one:")
    two = WorkQueue(redis_client, prefix="two:")
    assert one.enqueue(KEY) is SEND
    assert two.enqueue(KEY) is SEND
    lease_of(one.begin(KEY))
    assert isinstance(two.begin(KEY), Lease)


@pytest.mark.parametrize("decode_responses", [False, True])
def test_works_with_either_client_decoding(
    redis_server: RedisServer, redis_client: redis.Redis, decode_responses: bool
) -> None:
    with redis_server.client(decode_responses=decode_responses) as client:
        wq = WorkQueue(client, clock=FakeClock())
        assert wq.enqueue(KEY) is SEND
        lease = lease_of(wq.begin(KEY))
        assert lease.queued_at == 1_000_000.0
        assert wq.enqueue(KEY) is DIRTY
        result = wq.finish(lease, success=True, requeue_after=0)
        assert result == FinishResult(True, True, 0, 1_000_000.0)
        assert wq.due() == [KEY]


# -- leases -----------------------------------------------------------------------------


def test_concurrent_begin_from_threads_gives_exactly_one_lease(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    workers = 12
    clients = [redis_server.client() for _ in range(workers)]
    queues = [WorkQueue(client) for client in clients]
    try:
        for key in keys(15):
            barrier = threading.Barrier(workers)

            def attempt(
                wq: WorkQueue, key: Key = key, barrier: threading.Barrier = barrier
            ) -> Lease | Busy:
                barrier.wait()
                return wq.begin(key)

            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(attempt, queues))
            assert sum(isinstance(r, Lease) for r in results) == 1
            assert sum(isinstance(r, Busy) for r in results) == workers - 1
    finally:
        for client in clients:
            client.close()


CONTENDER = """
import sys, time
from redis import Redis
from tango_operator.keys import Key
from tango_operator.workqueue import Lease, WorkQueue
port, start = int(sys.argv[1]), float(sys.argv[2])
wq = WorkQueue(Redis(host="127.0.0.1", port=port))
key = Key("DeviceServer", "tango", "contended")
wq.redis.ping()
time.sleep(max(0.0, start - time.time()))
print("lease" if isinstance(wq.begin(key), Lease) else "busy")
"""


def test_concurrent_begin_from_processes_gives_exactly_one_lease(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    start = time.time() + 1.5
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(redis_server.port), repr(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = sorted(p.communicate(timeout=30)[0].strip() for p in processes)
    assert outputs == ["busy"] * 5 + ["lease"]


def test_a_lapsed_lease_lets_another_worker_in(redis_server: RedisServer) -> None:
    with redis_server.client() as first_client, redis_server.client() as second_client:
        first = WorkQueue(first_client, lease_seconds=0.3)
        second = WorkQueue(second_client, lease_seconds=0.3)
        old = lease_of(first.begin(KEY))
        busy = second.begin(KEY)
        assert isinstance(busy, Busy)
        assert 0 < busy.holder_expires_in <= 0.3
        time.sleep(0.35)  # the first worker hangs past its lease
        new = lease_of(second.begin(KEY))
        assert new.token != old.token
        assert second.enqueue(KEY) is DIRTY  # an event for the new holder's run

        assert first.renew(old) is False
        late = first.finish(old, success=True)
        assert late.released is False
        assert late.follow_up is False  # the dirty mark belongs to the new holder
        assert second.renew(new) is True  # the late finish did not touch the new lease
        result = second.finish(new, success=True)
        assert result.released
        assert result.follow_up


def test_a_finish_forgets_the_key_in_another_hash_only_with_its_own_lease(
    redis_server: RedisServer,
) -> None:
    """``forget_in``: the starting registry's entry goes with the lease, not a newer holder's."""
    registry = "tango-operator:starting"
    with redis_server.client() as first_client, redis_server.client() as second_client:
        first = WorkQueue(first_client, lease_seconds=0.3)
        second = WorkQueue(second_client, lease_seconds=0.3)
        first_client.hset(registry, mapping={KEY.encode(): "mine", "other": "kept"})
        lease = lease_of(first.begin(KEY))
        assert first.finish(lease, success=True, forget_in=registry).released
        assert first_client.hgetall(registry) == {b"other": b"kept"}

        old = lease_of(first.begin(KEY))
        time.sleep(0.35)  # the first worker hangs past its lease; the second registers
        new = lease_of(second.begin(KEY))
        second_client.hset(registry, KEY.encode(), "the new holder's")
        assert first.finish(old, success=True, forget_in=registry).released is False
        assert second_client.hget(registry, KEY.encode()) == b"the new holder's"
        assert second.finish(new, success=True).released
        assert second_client.hget(registry, KEY.encode()) == b"the new holder's"


def test_a_new_run_absorbs_events_from_before_it_began(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease_of(wq.begin(KEY))  # this worker dies ...
    assert wq.enqueue(KEY) is DIRTY  # ... after an event arrived
    time.sleep(0.35)
    rerun = lease_of(wq.begin(KEY))  # the redelivered message: this run sees the change
    assert rerun.attempt == 2
    assert wq.finish(rerun, success=True).follow_up is False
    assert wq.due() == []


def test_renewing_keeps_the_lease(redis_client: redis.Redis) -> None:
    holder = WorkQueue(redis_client, lease_seconds=0.3)
    other = WorkQueue(redis_client, lease_seconds=0.3)
    lease = lease_of(holder.begin(KEY))
    for _ in range(6):  # 0.6 s in all: twice the lease
        time.sleep(0.1)
        assert holder.renew(lease) is True
        assert isinstance(other.begin(KEY), Busy)
    result = holder.finish(lease, success=True)
    assert result.released
    assert result.follow_up  # the Busy begins asked for one more run


def test_busy_key_is_recovered_when_the_holder_dies(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease_of(wq.begin(KEY))  # this worker is then killed: no renew, no finish
    assert isinstance(wq.begin(KEY), Busy)
    assert wq.due() == []
    time.sleep(0.35)
    assert wq.due() == [KEY]
    assert wq.due() == []
    assert wq.enqueue(KEY) is SEND
    assert lease_of(wq.begin(KEY)).attempt == 2  # one start without a finish before


def test_dirty_key_is_recovered_when_the_holder_dies(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease_of(wq.begin(KEY))
    assert wq.enqueue(KEY) is DIRTY
    time.sleep(0.35)
    assert wq.due() == [KEY]
    assert wq.due() == []


def test_dead_holder_without_events_is_not_resent(redis_client: redis.Redis) -> None:
    # Redelivery of the message itself is Celery's job (acks_late, reject on worker loss).
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease_of(wq.begin(KEY))
    time.sleep(0.35)
    assert wq.due() == []
    assert wq.stats()["processing"] == 0


def test_busy_key_runs_once_more_when_the_holder_finishes(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease = lease_of(wq.begin(KEY))
    assert isinstance(wq.begin(KEY), Busy)
    assert wq.finish(lease, success=True).follow_up is True
    time.sleep(0.35)
    assert wq.due() == []  # no second follow-up from the recovery path


def test_a_finish_after_the_lease_lapsed_still_sends_the_follow_up(
    redis_client: redis.Redis,
) -> None:
    wq = WorkQueue(redis_client, lease_seconds=0.3)
    lease = lease_of(wq.begin(KEY))
    assert wq.enqueue(KEY) is DIRTY
    time.sleep(0.35)  # nobody took the key meanwhile
    result = wq.finish(lease, success=True)
    assert result.released is False
    assert result.follow_up is True
    assert wq.due() == []


# -- stale entries, attempts ------------------------------------------------------------


def test_a_stale_queued_entry_may_be_sent_again(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock, stale_after=600)
    assert wq.enqueue(KEY) is SEND  # ... and the sender crashed before sending
    clock.advance(599)
    assert wq.enqueue(KEY) is DUPLICATE
    clock.advance(2)
    assert wq.enqueue(KEY) is SEND
    assert wq.enqueue(KEY) is DUPLICATE
    assert lease_of(wq.begin(KEY)).queued_at == clock.now


def test_poison_after_max_attempts(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, lease_seconds=0.05, max_attempts=2, clock=clock)
    for attempt in (1, 2):
        lease = lease_of(wq.begin(KEY))
        assert (lease.attempt, lease.poisoned) == (attempt, False)
        time.sleep(0.07)  # the worker is killed mid-reconcile; the message is redelivered
    poisoned = lease_of(wq.begin(KEY))
    assert (poisoned.attempt, poisoned.poisoned) == (3, True)

    recorded = wq.finish(poisoned, success=False)
    assert recorded.failures == 1
    assert recorded.next_due is not None
    assert clock.now < recorded.next_due <= clock.now + 0.5
    fresh = lease_of(wq.begin(KEY))
    assert (fresh.attempt, fresh.poisoned) == (1, False)


# -- backoff and requeue-after ----------------------------------------------------------


def test_backoff_grows_caps_and_resets(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock, rng=random.Random(7), backoff_cap=10)
    twin = random.Random(7)
    delays = []
    for failures in range(1, 9):
        result = wq.finish(lease_of(wq.begin(KEY)), success=False)
        nominal = min(10, 0.5 * 2 ** (failures - 1))
        expected = nominal * twin.uniform(0.5, 1.0)
        assert result.failures == failures
        assert result.next_due == pytest.approx(clock.now + expected, abs=1e-9)
        delays.append(expected)
        assert wq.stats()["failing"] == 1
        clock.advance(expected - 0.001)
        assert wq.due() == []
        clock.advance(0.002)
        assert wq.due() == [KEY]
    assert delays[-1] <= 10 <= delays[-2] * 2  # capped
    assert delays[3] > delays[0]

    success = wq.finish(lease_of(wq.begin(KEY)), success=True)
    assert success.failures == 0
    assert success.next_due is None
    assert wq.stats()["failing"] == 0
    again = wq.finish(lease_of(wq.begin(KEY)), success=False)
    assert again.failures == 1
    assert again.next_due is not None
    assert again.next_due - clock.now <= 0.5


def test_a_retry_after_longer_than_the_backoff_wins(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    result = wq.finish(lease_of(wq.begin(KEY)), success=False, requeue_after=42)
    assert result.next_due == clock.now + 42
    assert result.failures == 1


def test_requeue_after_pops_keys_in_due_order(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    a, b, c = keys(3)
    for key, after in ((a, 5.0), (b, 1.0), (c, 3.0)):
        result = wq.finish(lease_of(wq.begin(key)), success=True, requeue_after=after)
        assert result.next_due == clock.now + after
    assert wq.stats()["delayed"] == 3
    clock.advance(0.5)
    assert wq.due() == []
    clock.advance(0.5)
    assert wq.due() == [b]
    clock.advance(2)
    assert wq.due() == [c]
    clock.advance(10)
    assert wq.due() == [a]
    assert wq.due() == []


def test_requeue_after_keeps_the_earlier_due_time(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    start = clock.now
    assert wq.finish(lease_of(wq.begin(KEY)), success=True, requeue_after=10).next_due == (
        start + 10
    )
    assert wq.finish(lease_of(wq.begin(KEY)), success=True, requeue_after=2).next_due == (start + 2)
    assert wq.finish(lease_of(wq.begin(KEY)), success=True, requeue_after=20).next_due == (
        start + 2
    )
    clock.advance(2)
    assert wq.due() == [KEY]


def test_a_superseding_success_replaces_or_cancels_what_earlier_runs_scheduled(
    redis_client: redis.Redis,
) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    start = clock.now
    wq.finish(lease_of(wq.begin(KEY)), success=True, requeue_after=2)
    done = wq.finish(lease_of(wq.begin(KEY)), success=True, requeue_after=20, supersede=True)
    assert done.next_due == start + 20, "the latest reconcile decides, even when later"
    done = wq.finish(lease_of(wq.begin(KEY)), success=True, supersede=True)
    assert done.next_due is None
    clock.advance(30)
    assert wq.due() == [], "nothing left from the earlier runs"
    failed = wq.finish(lease_of(wq.begin(KEY)), success=False, supersede=True)
    assert failed.next_due is not None, "a failure keeps its backoff"


def test_due_respects_the_limit_earliest_first(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    scheduled = keys(30)
    for offset, key in enumerate(reversed(scheduled)):
        wq.finish(lease_of(wq.begin(key)), success=True, requeue_after=1 + offset)
    clock.advance(100)
    assert wq.due(limit=10) == list(reversed(scheduled))[:10]
    assert len(wq.due(limit=100)) == 20


def test_concurrent_pumps_pop_each_key_once(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    clock = FakeClock()
    scheduled = keys(400)
    wq = WorkQueue(redis_client, clock=clock)
    for key in scheduled:
        wq.finish(lease_of(wq.begin(key)), success=True, requeue_after=random.uniform(0, 5))
    clock.advance(5)
    pumps = 8
    barrier = threading.Barrier(pumps)

    def pump() -> list[Key]:
        popped: list[Key] = []
        with redis_server.client() as client:
            mine = WorkQueue(client, clock=clock)
            barrier.wait()
            for _ in range(len(scheduled)):  # bounded: a due() that never empties fails
                batch = mine.due(limit=7)
                if not batch:
                    break
                popped.extend(batch)
        return popped

    with ThreadPoolExecutor(max_workers=pumps) as pool:
        results = list(pool.map(lambda _: pump(), range(pumps)))
    everything = [key for batch in results for key in batch]
    assert len(everything) == len(scheduled)
    assert sorted(everything) == sorted(scheduled)
    assert sum(1 for batch in results if batch) > 1  # the pumps really did compete


# -- housekeeping -----------------------------------------------------------------------


def test_stats_count_each_part(redis_client: redis.Redis) -> None:
    clock = FakeClock()
    wq = WorkQueue(redis_client, clock=clock)
    queued, held, later, soon = keys(4)
    wq.finish(lease_of(wq.begin(later)), success=True, requeue_after=60)
    wq.finish(lease_of(wq.begin(soon)), success=False)
    wq.enqueue(queued)
    wq.enqueue(held)
    lease_of(wq.begin(held))
    assert wq.stats() == {"queued": 1, "delayed": 2, "due": 0, "processing": 1, "failing": 1}
    clock.advance(1)
    assert wq.stats()["due"] == 1


def test_forget_drops_failures_schedule_and_attempts(redis_client: redis.Redis) -> None:
    wq = WorkQueue(redis_client, prefix="p:")
    wq.finish(lease_of(wq.begin(KEY)), success=False)
    lease = lease_of(wq.begin(KEY))
    assert wq.stats()["failing"] == 1
    assert wq.stats()["delayed"] == 1
    wq.forget(KEY)
    assert wq.stats()["failing"] == 0
    assert wq.stats()["delayed"] == 0
    assert redis_client.exists(f"p:attempts:{KEY.encode()}") == 0
    assert wq.renew(lease) is True  # a running reconcile keeps its lease


def test_a_redis_restarted_empty_is_survived() -> None:
    with RedisServer() as server, server.client() as client:
        clock = FakeClock()
        wq = WorkQueue(client, clock=clock, lease_seconds=0.5)
        other = Key("DatabaseDS", "tango", "databaseds")
        assert wq.enqueue(KEY) is SEND
        lease = lease_of(wq.begin(KEY))
        assert wq.enqueue(KEY) is DIRTY
        wq.finish(lease_of(wq.begin(other)), success=False)

        server.restart(flush=True)

        assert wq.stats() == {"queued": 0, "delayed": 0, "due": 0, "processing": 0, "failing": 0}
        assert wq.renew(lease) is True, "the running reconcile takes its lock back"
        assert wq.finish(lease, success=True) == FinishResult(True, False, 0, None)
        clock.advance(1000)
        assert wq.due() == []
        wq.forget(other)
        assert wq.enqueue(KEY) is SEND
        assert isinstance(wq.begin(KEY), Busy), "no new lease while the grace lasts"
        time.sleep(0.55)  # the grace is Redis's TTL; the key's return is on the queue's clock
        clock.advance(1)
        assert wq.due() == [KEY], "the key refused during the grace comes back after it"
        assert wq.enqueue(KEY) is SEND
        assert lease_of(wq.begin(KEY)).attempt == 1


def test_no_second_lease_while_redis_forgets_a_running_one() -> None:
    """The soak's find.

    Redis restarted empty while a worker reconciled a key, and another worker was granted the key at
    once — two reconciles of one key at the same time.
    """
    with RedisServer() as server, server.client() as one, server.client() as two:
        holder = WorkQueue(one, lease_seconds=1)
        other = WorkQueue(two, lease_seconds=1)
        lease = lease_of(holder.begin(KEY))
        other.check_epoch()  # a worker that has been running: it saw the epoch

        server.restart(flush=True)

        assert other.enqueue(KEY) is SEND  # the watcher's resync: the key is new again
        refused = other.begin(KEY)
        assert isinstance(refused, Busy), "the leases of before may still be running"
        assert 0 < refused.holder_expires_in <= 1
        assert holder.renew(lease) is True  # the holder takes its lock back
        for _ in range(2):  # the grace ends; the holder goes on renewing
            time.sleep(0.55)
            assert holder.renew(lease) is True
        assert other.check_epoch() == 0
        assert isinstance(other.begin(KEY), Busy), "the holder's own lock keeps the key"
        assert holder.finish(lease, success=True).follow_up  # the refusals asked for one
        assert lease_of(other.begin(KEY)).attempt == 1


def test_a_flush_noticed_by_the_pump_pauses_even_a_fresh_worker(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker = WorkQueue(redis_client, lease_seconds=0.5)
    pump = WorkQueue(redis_server.client())  # the leading watcher: it never holds a lease
    lease_of(worker.begin(KEY))  # ... and this worker dies with the key
    assert pump.due() == []  # the pump learns how long leases are
    redis_client.flushall()
    assert pump.due() == []
    assert 0 < pump.check_epoch() <= 0.5
    fresh = WorkQueue(redis_server.client(), lease_seconds=0.5)  # started after the flush
    assert isinstance(fresh.begin(KEY), Busy)
    time.sleep(0.55)
    assert pump.due() == [KEY]
    assert lease_of(fresh.begin(KEY)).attempt == 1


def test_a_fresh_redis_and_a_flush_no_lease_saw_wait_for_nothing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    first = WorkQueue(redis_client, lease_seconds=30)
    assert first.check_epoch() == 0
    lease_of(first.begin(KEY))  # the first start of an installation: granted at once
    watcher = WorkQueue(redis_server.client())
    assert watcher.enqueue(KEY) is DIRTY
    redis_client.flushall()
    watcher.epoch.longest_lease = 0.0  # as if no lease had ever been granted
    assert watcher.due() == []
    assert watcher.check_epoch() == 0, "nobody held a lease: no grace"


def test_restart_without_flush_keeps_the_state() -> None:
    with RedisServer() as server, server.client() as client:
        wq = WorkQueue(client)
        lease = lease_of(wq.begin(KEY))
        server.restart(flush=False)
        assert wq.renew(lease) is True
        assert isinstance(wq.begin(KEY), Busy)


# -- many threads: a simulated broker ---------------------------------------------------


@dataclass
class _Simulation:
    """Producers and workers of the simulated broker, and what they saw (under ``guard``)."""

    redis_server: RedisServer
    names: list[Key]
    broker: queue.Queue[Key] = field(default_factory=queue.Queue)
    guard: threading.Lock = field(default_factory=threading.Lock)
    world: Counter[Key] = field(default_factory=Counter)
    """Versions of each object: bumped by a producer before it enqueues the key."""
    seen: Counter[Key] = field(default_factory=Counter)
    """The latest version of each object that a run read."""
    runs: Counter[Key] = field(default_factory=Counter)
    running: Counter[Key] = field(default_factory=Counter)
    overlaps: list[Key] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def producer(self, rng: random.Random) -> None:
        """Change 120 random objects, enqueueing each and "sending" a message on SEND."""
        with self.redis_server.client() as client:
            wq = WorkQueue(client)
            for _ in range(120):
                key = rng.choice(self.names)
                with self.guard:
                    self.world[key] += 1  # the object changes, then its event is enqueued
                if wq.enqueue(key) is SEND:
                    self.broker.put(key)
                time.sleep(rng.random() * 0.002)

    def worker(self, rng: random.Random) -> None:
        """Take messages until ``done``: begin, read the object, finish, send the follow-up."""
        with self.redis_server.client() as client:
            wq = WorkQueue(client)
            while not self.done.is_set():
                try:
                    key = self.broker.get(timeout=0.02)
                except queue.Empty:
                    continue
                got = wq.begin(key)
                if isinstance(got, Lease):
                    self._run(key, rng)
                    if wq.finish(got, success=True).follow_up:
                        self.broker.put(key)
                self.broker.task_done()

    def _run(self, key: Key, rng: random.Random) -> None:
        """One run of ``key``: count it, note an overlap, read the object."""
        with self.guard:
            self.running[key] += 1
            if self.running[key] > 1:
                self.overlaps.append(key)
            self.runs[key] += 1
            self.seen[key] = max(self.seen[key], self.world[key])  # the run reads the object
        time.sleep(rng.random() * 0.003)
        with self.guard:
            self.running[key] -= 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulation_never_two_runs_at_once_and_no_event_lost(
    redis_server: RedisServer, redis_client: redis.Redis, seed: int
) -> None:
    """Simulate producers and workers; a key never runs twice at once and no event is lost.

    Producers change an object (a version number) and enqueue its key, "sending" a message on SEND;
    workers take messages, begin, read the object, finish and send the follow-ups they are told to.
    Invariants: a key never has two runs at once, and the last version of every object was read by
    some run (no event lost).
    """
    sim = _Simulation(redis_server, keys(4, prefix=f"sim{seed}"))
    rng = random.Random(seed)
    producers = [
        threading.Thread(target=sim.producer, args=(random.Random(rng.random()),)) for _ in range(4)
    ]
    workers = [
        threading.Thread(target=sim.worker, args=(random.Random(rng.random()),)) for _ in range(6)
    ]
    for thread in producers + workers:
        thread.start()
    for thread in producers:
        thread.join()
    sim.broker.join()  # every message handled, follow-ups included
    sim.done.set()
    for thread in workers:
        thread.join()

    assert sim.overlaps == []
    assert sim.seen == sim.world, "a change was never read by a run"
    assert sum(sim.world.values()) == 480
    assert sum(sim.runs.values()) < 480  # events were coalesced
    assert WorkQueue(redis_client).stats()["processing"] == 0
    assert redis_client.keys("tango-operator:dirty:*") == []
    assert redis_client.keys("tango-operator:lock:*") == []


# -- model-based: the semantics, step by step -------------------------------------------


MODEL_KEYS = keys(3, prefix="model")


class _WorkQueueModel(RuleBasedStateMachine):
    """The work queue's semantics as plain sets and counters, checked against a real one.

    ``redis_client`` is set by the test in a subclass: the machine flushes it for each example.
    """

    redis_client: ClassVar[redis.Redis]
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.redis_client.flushall()
        self.clock = FakeClock()
        self.wq = WorkQueue(
            self.redis_client,
            clock=self.clock,
            rng=random.Random(3),
            max_attempts=3,
            stale_after=1e9,
            backoff_cap=20,
        )
        self.jitter = random.Random(3)
        self.queued: set[Key] = set()
        self.dirty: set[Key] = set()
        self.holders: dict[Key, str] = {}
        self.attempts: Counter[Key] = Counter()
        self.failures: Counter[Key] = Counter()
        self.delayed: dict[Key, float] = {}

    @rule(key=st.sampled_from(MODEL_KEYS))
    def enqueue(self, key: Key) -> None:
        if key in self.holders:
            expected = DIRTY
            self.dirty.add(key)
        elif key in self.queued:
            expected = DUPLICATE
        else:
            expected = SEND
            self.queued.add(key)
        assert self.wq.enqueue(key) is expected

    @rule(target=leases, key=st.sampled_from(MODEL_KEYS))
    def begin(self, key: Key) -> object:
        got = self.wq.begin(key)
        self.queued.discard(key)
        if key in self.holders:
            assert isinstance(got, Busy)
            self.dirty.add(key)
            return multiple()
        lease = lease_of(got)
        self.dirty.discard(key)
        self.holders[key] = lease.token
        self.attempts[key] += 1
        assert lease.attempt == self.attempts[key]
        assert lease.poisoned == (self.attempts[key] > 3)
        return lease

    @rule(
        lease=consumes(leases),
        success=st.booleans(),
        requeue_after=st.none() | st.floats(0, 30),
    )
    def finish(self, lease: Lease, success: bool, requeue_after: float | None) -> None:
        key = lease.key
        assert self.holders.pop(key) == lease.token
        self.attempts[key] = 0
        follow_up = key in self.dirty and key not in self.queued
        self.dirty.discard(key)
        if follow_up:
            self.queued.add(key)
        delay: float | None
        if success:
            self.failures[key] = 0
            delay = requeue_after
        else:
            self.failures[key] += 1
            nominal = min(20, 0.5 * 2 ** (self.failures[key] - 1))
            delay = nominal * self.jitter.uniform(0.5, 1.0)
            if requeue_after is not None:
                delay = max(delay, requeue_after)
        if delay is not None:
            due = self.clock.now + delay
            self.delayed[key] = min(self.delayed.get(key, due), due)
        result = self.wq.finish(lease, success=success, requeue_after=requeue_after)
        assert result.released
        assert result.follow_up == follow_up
        assert result.failures == self.failures[key]
        assert result.next_due == pytest.approx(self.delayed.get(key), abs=1e-6)

    @rule(seconds=st.floats(0, 10))
    def pump(self, seconds: float) -> None:
        self.clock.advance(seconds)
        got = self.wq.due()
        expected = {k for k, due in self.delayed.items() if due <= self.clock.now}
        assert sorted(got) == sorted(expected)
        assert [self.delayed[k] for k in got] == sorted(self.delayed[k] for k in got)
        for key in got:
            del self.delayed[key]

    @invariant()
    def counts_agree(self) -> None:
        stats = self.wq.stats()
        assert stats["queued"] == len(self.queued)
        assert stats["processing"] == len(self.holders)
        assert stats["delayed"] == len(self.delayed)
        assert stats["failing"] == sum(1 for n in self.failures.values() if n)


def test_matches_a_model_of_the_workqueue_semantics(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    connection = redis_client  # a class body does not see the function's names it assigns

    class Model(_WorkQueueModel):
        redis_client = connection

    run_state_machine_as_test(
        Model,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
