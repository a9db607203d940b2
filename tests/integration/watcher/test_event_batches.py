"""Bursts of watch events: recorded in one round trip to Redis, keys offered once, after.

The watcher runs in-process against kubeemu and a real redis-server (``start_watcher``) and
is handed bursts of events directly (``Watcher.on_events``), as its event thread hands it
what the sources queued (``watcher.batch``, tested on its own below). Round trips are
counted where they happen: each takes one connection from the client's pool, so the
pool's ``get_connection`` is counted in the test's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import REGISTRY
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from devstack.redis_server import RedisServer
from tango_operator import crd
from tango_operator.keys import Key
from tango_operator.workqueue.fair import AddResult
from tango_operator.workqueue.ledger import RedisChildLedger
from tango_operator.workqueue.piggyback import ScriptCall, send_together
from tango_operator.workqueue.queue import EnqueueResult
from tests.integration.watcher.conftest import Recording, StartWatcher, create_ds, ds_key
from tests.support.workers import wait_for
from watcher.batch import Event, EventBatcher

JsonDict = dict[str, Any]
MANAGED = {"app.kubernetes.io/managed-by": "tango-operator"}


def _ds(name: str, version: str, image: str = "i") -> JsonDict:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "generation": 1 if image == "i" else 2,
        },
        "spec": {"image": image},
    }


def _statefulset_of(owner: str, version: str) -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": owner,
            "namespace": "default",
            "resourceVersion": version,
            "generation": 1,
            "labels": MANAGED,
            "ownerReferences": [
                {
                    "apiVersion": crd.API_VERSION,
                    "kind": "DeviceServer",
                    "name": owner,
                    "uid": f"uid-{owner}",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 1},
        "status": {"replicas": 1, "readyReplicas": 0},
    }


def _count_round_trips(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each round trip this thread makes through ``redis``."""
    pool = redis.connection_pool
    taken = pool.get_connection
    me = threading.get_ident()
    trips: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == me:
            trips.append(1)
        return taken(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counted)
    return trips


def _version_at_offer(
    watcher: Recording, redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> dict[Key, str | None]:
    """The owner copy's resourceVersion in Redis when each key was offered (own client)."""
    seen: dict[Key, str | None] = {}
    offer = watcher.enqueue
    ledger = RedisChildLedger(redis.client(), prefix=watcher.queue.prefix)

    def enqueue(key: Key, **kwargs: Any) -> EnqueueResult | AddResult | None:
        copy = ledger.owner_copy(key)
        seen[key] = (copy.obj or {}).get("metadata", {}).get("resourceVersion")
        return offer(key, **kwargs)

    monkeypatch.setattr(watcher, "enqueue", enqueue)
    return seen


def test_a_burst_is_recorded_in_one_round_trip_and_each_key_offered_once_after_it(
    start_watcher: StartWatcher,
    kube_client: client.ApiClient,
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watcher = start_watcher()
    # a first burst loads the scripts (a fresh Redis knows none: each is sent again alone)
    watcher.on_events(
        [
            ("DeviceServer", "ADDED", _ds("warm", "5")),
            ("StatefulSet", "ADDED", _statefulset_of("warm", "6")),
        ]
    )
    offered_before = len(watcher.offered)
    at_offer = _version_at_offer(watcher, redis, monkeypatch)
    trips = _count_round_trips(watcher.queue.redis, monkeypatch)

    watcher.on_events(
        [
            ("DeviceServer", "ADDED", _ds("a", "10")),
            ("DeviceServer", "ADDED", _ds("b", "11")),
            ("StatefulSet", "ADDED", _statefulset_of("a", "12")),  # not the operator's apply
            ("DeviceServer", "MODIFIED", _ds("a", "13", image="j")),  # a spec change
        ]
    )

    assert watcher.offered[offered_before:] == [ds_key("a"), ds_key("b")], "each key once"
    assert at_offer == {ds_key("a"): "13", ds_key("b"): "11"}, (
        "every copy of the burst is in Redis before its first key is offered"
    )
    # one pipeline for the four records, then one enqueue per key (FIFO dispatch)
    assert len(trips) == 3, f"{len(trips)} round trips"


def test_the_resync_after_a_relist_holds_up_no_event(
    start_watcher: StartWatcher,
    kube_client: client.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relist's callback runs after the events before it, its resync beside the ones after."""
    watcher = start_watcher()
    resyncing, release = threading.Event(), threading.Event()

    def slow_resync() -> None:  # a resync of many CRs: a list and an offer of each
        resyncing.set()
        release.wait(30)

    monkeypatch.setattr(watcher, "resync", slow_resync)
    source = next(s for s in watcher.sources if s.resource.plural == "deviceservers")
    try:
        source.on_relist()  # as after a 410 Gone: queued behind the source's events
        assert resyncing.wait(10), "the relist's resync started"
        create_ds(kube_client, "during")
        wait_for(
            lambda: ds_key("during") in watcher.offered,
            timeout=10,
            what="an event handled while the resync runs",
        )
    finally:
        release.set()


def test_a_malformed_event_costs_only_itself(
    start_watcher: StartWatcher, kube_client: client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = start_watcher()
    offered_before = len(watcher.offered)
    with caplog.at_level(logging.ERROR, logger="watcher"):
        watcher.on_events(
            [
                ("DeviceServer", "ADDED", _ds("a", "20")),
                ("DeviceServer", "ADDED", {"metadata": "not an object"}),
                ("DeviceServer", "ADDED", _ds("b", "21")),
            ]
        )
    assert watcher.offered[offered_before:] == [ds_key("a"), ds_key("b")]
    assert "event not handled kind=DeviceServer type=ADDED" in caplog.text


def test_a_burst_while_redis_is_down_leaves_the_copies_to_drop_and_the_owners_to_look(
    start_watcher: StartWatcher, kube_client: client.ApiClient, redis: RedisServer
) -> None:
    watcher = start_watcher()
    ledger = RedisChildLedger(redis.client())
    watcher.on_events([("DeviceServer", "ADDED", _ds("a", "30"))])
    assert ledger.owner_copy(ds_key("a")).known
    offered_before = len(watcher.offered)

    with redis.client() as admin:
        admin.save()  # the copy of version 30 comes back with the server
    redis.stop()
    watcher.on_events(
        [
            ("DeviceServer", "MODIFIED", _ds("a", "31", image="j")),
            ("StatefulSet", "ADDED", _statefulset_of("c", "32")),
        ]
    )
    # the ledger could not say: the StatefulSet's owner looks, to be safe (the enqueue itself
    # fails while Redis is down, and the next event or resync offers the key again)
    assert watcher.offered[offered_before:] == [ds_key("a"), ds_key("c")]

    redis.restart(flush=False)
    assert ledger.owner_copy(ds_key("a")).known, "version 30's copy, behind the event of 31"
    watcher.owners.retry()  # the pump's tick, once Redis answers
    assert not ledger.owner_copy(ds_key("a")).known, "a copy that may be behind is dropped"


# --- send_together --------------------------------------------------------------------------

INCREMENT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def test_send_together_answers_each_call_in_order_and_keeps_errors_apart(
    redis: RedisServer,
) -> None:
    client = redis.client()
    script = client.register_script(INCREMENT)
    client.set("text", "not a number")
    calls = [
        ScriptCall(script, ["n"], [2]),
        ScriptCall(script, ["text"], [1]),  # fails on its own
        ScriptCall(script, ["n"], [3]),
    ]
    script(keys=["warm"], args=[0])  # loaded: the pipeline's EVALSHAs find it

    first, failed, last = send_together(client, calls)

    assert (first, last) == (2, 5)
    assert isinstance(failed, Exception)
    assert "not an integer" in str(failed)
    assert send_together(client, []) == []


def test_send_together_loads_a_script_redis_lost_and_keeps_the_order(
    redis: RedisServer,
) -> None:
    client = redis.client()
    append = client.register_script("return redis.call('APPEND', KEYS[1], ARGV[1])")
    client.script_flush()  # as after a restart: no script is known

    replies = send_together(client, [ScriptCall(append, ["log"], [letter]) for letter in "abc"])

    assert replies == [1, 2, 3]
    assert client.get("log") == b"abc"


def test_send_together_answers_every_call_with_the_error_when_redis_is_unreachable(
    redis: RedisServer,
) -> None:
    client = redis.client()
    script = client.register_script(INCREMENT)
    redis.stop()
    try:
        replies = send_together(client, [ScriptCall(script, ["n"], [1])] * 3)
    finally:
        redis.restart()
    assert len(replies) == 3
    assert all(isinstance(reply, RedisConnectionError) for reply in replies)


# --- the event thread -----------------------------------------------------------------------


class Handled:
    """What an ``EventBatcher`` handed on: its bursts, and the callbacks among them."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.bursts: list[int] = []
        self.fail_next = False

    def handle(self, events: Sequence[Event]) -> None:
        self.bursts.append(len(events))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a burst that fails")
        self.log.extend(obj["metadata"]["name"] for _, _, obj in events)

    def callback(self, name: str) -> Callable[[], None]:
        return lambda: self.log.append(name)


def _event(name: str) -> tuple[str, str, JsonDict]:
    return ("DeviceServer", "ADDED", {"metadata": {"name": name}})


def _bursts() -> tuple[float, float]:
    """The burst-size histogram's count and sum."""
    name = "tango_operator_watch_event_burst_size"
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    return count, REGISTRY.get_sample_value(f"{name}_sum") or 0.0


def _running(batcher: EventBatcher) -> threading.Thread:
    thread = threading.Thread(target=batcher.run, daemon=True)
    thread.start()
    return thread


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_event_thread_takes_what_queued_up_as_one_burst_in_order() -> None:
    handled, stop = Handled(), threading.Event()
    batcher = EventBatcher(handled.handle, stop, batch=3)
    bursts_before, events_before = _bursts()
    for name in ("a", "b"):
        batcher.put(*_event(name))
    batcher.put_call(handled.callback("listed"))  # after a and b, before c
    for name in ("c", "d", "e", "f"):
        batcher.put(*_event(name))
    thread = _running(batcher)
    _until(lambda: len(handled.log) == 7, "every item handled")
    stop.set()
    thread.join(timeout=5)

    assert handled.log == ["a", "b", "listed", "c", "d", "e", "f"]
    # at most three items a turn, a callback between two bursts: [a b | listed] [c d e] [f]
    assert handled.bursts == [2, 3, 1]
    bursts, events = _bursts()
    assert (bursts - bursts_before, events - events_before) == (3, 6), "the burst-size metric"


def test_a_failing_burst_is_logged_and_the_thread_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled, stop = Handled(), threading.Event()
    batcher = EventBatcher(handled.handle, stop)
    thread = _running(batcher)
    handled.fail_next = True
    with caplog.at_level(logging.ERROR, logger="watcher.batch"):
        batcher.put(*_event("lost"))
        _until(lambda: handled.bursts == [1], "the failing burst")
        batcher.put(*_event("next"))
        _until(lambda: handled.log == ["next"], "the next event")
    stop.set()
    thread.join(timeout=5)
    assert "events not handled count=1" in caplog.text


def test_a_full_queue_holds_the_sources_back_and_lets_them_go_at_stop() -> None:
    handled, stop = Handled(), threading.Event()
    batcher = EventBatcher(handled.handle, stop, limit=2)
    batcher.put(*_event("a"))
    batcher.put(*_event("b"))
    third = threading.Thread(target=batcher.put, args=_event("c"), daemon=True)
    third.start()
    third.join(timeout=0.6)
    assert third.is_alive(), "a third event waits while two wait unhandled"

    thread = _running(batcher)  # the handler takes a and b: room for c
    third.join(timeout=5)
    assert not third.is_alive()
    _until(lambda: handled.log == ["a", "b", "c"], "c handled after the room was made")

    stop.set()
    thread.join(timeout=5)
    blocked = EventBatcher(handled.handle, stop, limit=1)
    blocked.put(*_event("d"))
    started = time.monotonic()
    blocked.put(*_event("e"))  # full, and stopped: returns instead of waiting
    assert time.monotonic() - started < 2
    assert handled.log == ["a", "b", "c"], "nothing is handled after stop"
