"""The starting-servers registry and the export watcher against a real redis-server.

The TANGO side is the stand-in: what is under test is who gets woken, and when.
"""

from __future__ import annotations

import threading
import time

from redis import Redis

from tango_operator.keys import Key
from tango_operator.workqueue.dependencies import RedisDependencyIndex
from tango_operator.workqueue.fair import URGENT_WAKE_LIMIT
from tango_operator.workqueue.starting import StartingServers
from tests.support.standin_tango import StandInTango
from tests.support.workers import EVENTUALLY
from workers.export_watcher import ExportWatcher

HOST = "127.0.0.1:10000"


def _key(name: str) -> Key:
    return Key("DeviceServer", "lab", name)


class Woken:
    """Records the wake-ups an export watcher makes, and whether each was urgent."""

    def __init__(self) -> None:
        self.calls: list[tuple[Key, bool]] = []

    def __call__(self, key: Key, *, urgent: bool = False) -> bool:
        self.calls.append((key, urgent))
        return True

    @property
    def keys(self) -> list[Key]:
        return [key for key, _ in self.calls]


def test_register_keeps_the_first_time_and_forget_removes(redis_client: Redis) -> None:
    starting = StartingServers(redis_client)
    starting.register(_key("a"), HOST, ("lab/a/1",))
    (first,) = starting.entries()
    time.sleep(0.01)
    starting.register(_key("a"), HOST, ("lab/a/1",))
    starting.register(_key("a"), HOST, ("lab/a/1", "lab/a/2"))
    (again,) = starting.entries()
    assert again.devices == ("lab/a/1", "lab/a/2")
    assert again.since == first.since, "still the same start"
    starting.forget(_key("a"))
    starting.forget(_key("nobody"))
    assert starting.entries() == []


def test_a_new_host_keeps_the_first_time_and_a_broken_entry_is_replaced(
    redis_client: Redis,
) -> None:
    """The registration is one script (``_REGISTER``); what it writes is read back as written."""
    starting = StartingServers(redis_client)
    odd = ('lab/"quoted"/1', "lab/back\\slash/2")
    starting.register(_key("a"), HOST, odd)
    (first,) = starting.entries()
    starting.register(_key("a"), "other-db:10000", odd)
    (moved,) = starting.entries()
    assert (moved.tango_host, moved.devices, moved.since) == ("other-db:10000", odd, first.since)
    redis_client.hset("tango-operator:starting", _key("b").encode(), "{not json")
    starting.register(_key("b"), HOST, ("lab/b/1",))
    assert [(e.key, e.devices) for e in starting.entries()] == [
        (_key("a"), odd),
        (_key("b"), ("lab/b/1",)),
    ]


def test_unreadable_entries_are_dropped(redis_client: Redis) -> None:
    starting = StartingServers(redis_client)
    redis_client.hset("tango-operator:starting", "not a key", "{}")
    starting.register(_key("a"), HOST, ("lab/a/1",))
    assert [e.key for e in starting.entries()] == [_key("a")]
    assert not redis_client.hexists("tango-operator:starting", "not a key")


def test_an_export_wakes_the_server_and_its_waiters_once(redis_client: Redis) -> None:
    starting = StartingServers(redis_client)
    index = RedisDependencyIndex(redis_client)
    tango = StandInTango(unexported={"lab/a/1"})
    woken = Woken()
    watcher = ExportWatcher(starting, tango, index, woken)
    starting.register(_key("a"), HOST, ("lab/a/1",))
    index.register(_key("b"), ("lab/a/1",))
    index.register(_key("c"), ("lab/a/1", "lab/other/1"))
    index.register(_key("x"), ("lab/unrelated/1",))

    assert watcher.poll_once() == []
    tango.unexported.clear()
    assert watcher.poll_once() == [_key("a"), _key("b"), _key("c")]
    # the waiters are urgent (they can start now); the server only catches up on its status
    assert woken.calls == [(_key("a"), False), (_key("b"), True), (_key("c"), True)]
    assert watcher.poll_once() == [], "a server is woken once, then forgotten"
    assert starting.entries() == []


def test_an_export_many_servers_wait_for_wakes_them_without_urgency(redis_client: Redis) -> None:
    """Urgent messages overtake every namespace's: only a wake-up of a few keys gets them."""
    starting = StartingServers(redis_client)
    index = RedisDependencyIndex(redis_client)
    woken = Woken()
    watcher = ExportWatcher(starting, StandInTango(), index, woken)
    waiters = [_key(f"w{n}") for n in range(URGENT_WAKE_LIMIT + 1)]
    starting.register(_key("a"), HOST, ("lab/a/1",))
    for waiter in waiters:
        index.register(waiter, ("lab/a/1",))
    assert watcher.poll_once() == [_key("a"), *waiters]
    assert {urgent for _, urgent in woken.calls} == {False}


def test_a_down_tango_host_is_skipped_and_old_entries_expire(redis_client: Redis) -> None:
    starting = StartingServers(redis_client)
    tango = StandInTango(down_hosts={HOST})
    woken = Woken()
    watcher = ExportWatcher(starting, tango, RedisDependencyIndex(redis_client), woken)
    starting.register(_key("a"), HOST, ("lab/a/1",))
    assert watcher.poll_once() == []
    assert len(starting.entries()) == 1, "kept while its TANGO host is down"
    watcher.max_age = 0.0
    time.sleep(0.01)
    assert watcher.poll_once() == []
    assert starting.entries() == [], "given up on after max_age"
    assert woken.calls == []


def test_processes_take_turns(redis_client: Redis) -> None:
    """Two watchers (two worker processes): only the one holding the turn looks."""
    starting = StartingServers(redis_client)
    index = RedisDependencyIndex(redis_client)
    tango = StandInTango()
    seen = {"one": Woken(), "two": Woken()}
    watchers = {
        name: ExportWatcher(starting, tango, index, seen[name], interval=0.02) for name in seen
    }
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in watchers.values()]
    for thread in threads:
        thread.start()
    try:
        for number in range(20):
            starting.register(_key(f"s{number}"), HOST, (f"lab/s/{number}",))
            time.sleep(0.03)
        deadline = time.monotonic() + EVENTUALLY
        while starting.entries() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    woken = seen["one"].keys + seen["two"].keys
    assert sorted(woken) == sorted(_key(f"s{n}") for n in range(20)), "each woken exactly once"
    assert [] in (seen["one"].keys, seen["two"].keys), "one process held the turn throughout"
