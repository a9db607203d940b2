"""Fair dispatch against a real redis-server.

Dedupe by the work queue's rules, round-robin and weights across namespaces, the in-flight window,
wake-ups to the front, urgency, the dispatcher's automatic window, and a worker's ``take``.
"""

from __future__ import annotations

import pytest
from redis import Redis

from tango_operator.dispatch_settings import DispatchSettings
from tango_operator.keys import Key
from tango_operator.messages import queue_lists
from tango_operator.workqueue import EnqueueResult, Lease, WorkQueue
from tango_operator.workqueue.fair import AddResult, FairQueue
from tango_operator.workqueue.lost import reclaim
from watcher.dispatch import FLOOR, Dispatcher


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _key(namespace: str, name: str) -> Key:
    return Key("DeviceServer", namespace, name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(redis_client: Redis, clock: Clock) -> WorkQueue:
    return WorkQueue(redis_client, clock=clock, stale_after=60)


@pytest.fixture
def fair(queue: WorkQueue) -> FairQueue:
    return FairQueue(queue)


def _names(keys: list[Key]) -> list[str]:
    return [f"{k.namespace}/{k.name}" for k in keys]


def test_add_dedupes_by_the_work_queues_rules(fair: FairQueue, queue: WorkQueue) -> None:
    a = _key("a", "1")
    assert fair.add(a) is AddResult.PENDING
    assert fair.add(a) is AddResult.DUPLICATE, "already pending"
    assert fair.dispatch(10).keys == [a]
    assert fair.add(a) is AddResult.DUPLICATE, "in flight"
    lease = queue.begin(a)
    assert isinstance(lease, Lease)
    assert fair.add(a) is AddResult.DIRTY, "being processed: one follow-up"
    assert queue.finish(lease, success=True).follow_up
    assert fair.pending() == 0


def test_namespaces_take_turns(fair: FairQueue) -> None:
    for name in "12345":
        fair.add(_key("a", name))
    fair.add(_key("b", "1"))
    fair.add(_key("c", "1"))
    fair.add(_key("c", "2"))
    dispatched = fair.dispatch(100)
    assert _names(dispatched.keys) == ["a/1", "b/1", "c/1", "a/2", "c/2", "a/3", "a/4", "a/5"]
    assert fair.pending() == 0
    assert fair.pending_by_namespace() == {}


def test_weights_give_a_namespace_more_keys_per_turn(fair: FairQueue) -> None:
    for name in "12345":
        fair.add(_key("a", name))
        fair.add(_key("b", name))
    dispatched = fair.dispatch(6, {"a": 3})
    assert _names(dispatched.keys) == ["a/1", "a/2", "a/3", "b/1", "a/4", "a/5"]


def test_a_weighted_turn_cut_short_by_the_window_goes_on_at_the_next_dispatch(
    fair: FairQueue, queue: WorkQueue
) -> None:
    for name in "123":
        fair.add(_key("a", name))
        fair.add(_key("b", name))
    assert _names(fair.dispatch(2, {"a": 3}).keys) == ["a/1", "a/2"]
    for key in (_key("a", "1"), _key("a", "2")):  # started: room again
        queue.begin(key)
    assert _names(fair.dispatch(2, {"a": 3}).keys) == ["a/3", "b/1"], "a's third key first"


def test_the_window_bounds_the_keys_in_flight(
    fair: FairQueue, queue: WorkQueue, clock: Clock
) -> None:
    for number in range(10):
        fair.add(_key("a", str(number)))
    first = fair.dispatch(4)
    assert len(first.keys) == 4
    assert first.in_flight == 0
    second = fair.dispatch(4)
    assert second.keys == []
    assert second.in_flight == 4, "no room until workers take messages"
    for key in first.keys[:3]:
        assert isinstance(queue.begin(key), Lease)
    third = fair.dispatch(4)
    assert len(third.keys) == 3
    assert third.processing == 3
    assert fair.pending_by_namespace() == {"a": 3}
    clock.now += 61  # a message lost for longer than stale_after no longer takes room
    assert len(fair.dispatch(4).keys) == 3


def test_a_late_arrival_in_another_namespace_overtakes_a_flood(fair: FairQueue) -> None:
    for number in range(2000):
        fair.add(_key("flood", str(number)))
    assert len(fair.dispatch(8).keys) == 8
    fair.add(_key("quiet", "one"))
    for _ in range(7):  # workers take seven messages...
        fair.queue.begin(_key("flood", str(_)))
    # round-robin: at most one more key of the flood goes before it
    assert _names(fair.dispatch(8).keys)[:2] == ["flood/8", "quiet/one"]


def test_a_wake_up_goes_to_the_front_of_its_namespace(fair: FairQueue) -> None:
    for name in "123":
        fair.add(_key("a", name))
    assert fair.add(_key("a", "woken"), front=True) is AddResult.PENDING
    assert fair.add(_key("a", "3"), front=True) is AddResult.DUPLICATE, "moved up"
    assert _names(fair.dispatch(10).keys) == ["a/3", "a/woken", "a/1", "a/2"]


def test_an_urgent_wake_up_is_marked_for_the_dispatcher_once(fair: FairQueue) -> None:
    plain, woken, moved = _key("a", "plain"), _key("a", "woken"), _key("b", "moved")
    fair.add(plain)
    fair.add(moved)
    assert fair.add(woken, front=True, urgent=True) is AddResult.PENDING
    assert fair.add(moved, front=True, urgent=True) is AddResult.DUPLICATE, "pending: upgraded"
    dispatched = fair.dispatch(10)
    assert set(dispatched.keys[:2]) == {woken, moved}, "urgent keys go out of turn"
    assert dispatched.keys[2:] == [plain]
    assert dispatched.urgent == {woken, moved}
    assert fair.pending() == 0
    # urgency belongs to that wake-up, not to the key: the next time it is a plain event
    for key in dispatched.keys:
        lease = fair.queue.begin(key)
        assert isinstance(lease, Lease)
        fair.queue.finish(lease, success=True)
    fair.add(woken)
    again = fair.dispatch(10)
    assert again.keys == [woken]
    assert again.urgent == frozenset()


def test_urgent_keys_pass_a_full_window_up_to_a_reserve_of_one_more(fair: FairQueue) -> None:
    for number in range(10):
        fair.add(_key("flood", str(number)))
    assert len(fair.dispatch(4).keys) == 4, "the window is full"
    woken = [_key("quiet", str(number)) for number in range(6)]
    for key in woken:
        fair.add(key, front=True, urgent=True)
    first = fair.dispatch(4)
    assert len(first.keys) == 4
    assert first.urgent == set(first.keys) <= set(woken)
    assert fair.dispatch(4).keys == [], "two windows in flight: the rest wait"
    assert fair.pending_by_namespace() == {"flood": 6, "quiet": 2}
    for key in [_key("flood", str(n)) for n in range(4)] + first.keys:
        fair.queue.begin(key)  # workers take everything in flight
    second = fair.dispatch(4)
    assert second.urgent == set(woken) - set(first.keys), "urgent first again"
    assert len(second.keys) == 4
    assert set(second.keys[:2]) == second.urgent
    assert all(key.namespace == "flood" for key in second.keys[2:])


def test_an_urgent_wake_up_of_a_key_in_flight_changes_nothing(
    fair: FairQueue, queue: WorkQueue
) -> None:
    a = _key("a", "1")
    fair.add(a)
    assert fair.dispatch(10).keys == [a]
    assert fair.add(a, front=True, urgent=True) is AddResult.DUPLICATE, "its message is queued"
    lease = queue.begin(a)
    assert isinstance(lease, Lease)
    assert fair.add(a, front=True, urgent=True) is AddResult.DIRTY
    assert queue.finish(lease, success=True).follow_up
    assert fair.queue.redis.scard(fair.prefix + "urgent") == 0, "no urgency left behind"


def test_the_dispatcher_sends_urgent_keys_through_the_urgent_sender(fair: FairQueue) -> None:
    normal: list[Key] = []
    urgent: list[Key] = []
    dispatcher = Dispatcher(fair, normal.append, send_urgent=urgent.append, window=10)
    fair.add(_key("a", "1"))
    fair.add(_key("a", "2"), front=True, urgent=True)
    fair.add(_key("a", "3"), front=True)
    assert dispatcher.dispatch_once() == (3, False)
    assert urgent == [_key("a", "2")]
    assert normal == [_key("a", "3"), _key("a", "1")]


def test_a_key_processed_when_its_turn_comes_is_marked_for_a_follow_up(
    fair: FairQueue, queue: WorkQueue
) -> None:
    a = _key("a", "1")
    fair.add(a)
    lease = queue.enqueue(a) and queue.begin(a)  # a message sent another way got there first
    assert isinstance(lease, Lease)
    assert fair.dispatch(10).keys == []
    assert queue.finish(lease, success=True).follow_up, "the pending event is not lost"


def test_the_automatic_window_grows_with_the_workers(fair: FairQueue, queue: WorkQueue) -> None:
    sent: list[Key] = []
    ticks = Clock()
    dispatcher = Dispatcher(fair, sent.append, clock=ticks)
    for number in range(100):
        fair.add(_key("a", str(number)))
    assert dispatcher.dispatch_once() == (FLOOR, True)
    for key in sent:  # all taken by workers: the next look sees them running
        queue.begin(key)
    assert dispatcher.dispatch_once() == (FLOOR, True), "sized by what was seen before"
    assert dispatcher.window() == 2 * FLOOR + FLOOR, "four running: room for twelve"
    assert dispatcher.dispatch_once() == (2 * FLOOR, True)
    assert len(sent) == 4 * FLOOR
    ticks.now += 120  # the busy moment is forgotten after a minute
    for key in sent:
        lease = queue.begin(key)
        if isinstance(lease, Lease):
            queue.finish(lease, success=True)
    dispatcher.dispatch_once()
    assert dispatcher.window() >= FLOOR


URGENT_LIST = queue_lists()[0]


def test_take_follows_the_turns_outside_the_window(fair: FairQueue, queue: WorkQueue) -> None:
    for name in ("1", "2", "3"):
        fair.add(_key("a", name))
    fair.add(_key("b", "1"))
    assert _names(fair.dispatch(1).keys) == ["a/1"], "the window is full now"
    taken = [fair.take(unless_waiting=URGENT_LIST) for _ in range(4)]
    assert _names([k for k in taken if k is not None]) == ["b/1", "a/2", "a/3"]
    assert taken[3] is None, "nothing pending"
    assert fair.pending() == 0
    for key in (_key("b", "1"), _key("a", "2")):
        assert queue.enqueue(key) is EnqueueResult.DUPLICATE, "marked in flight, as dispatched"
        assert isinstance(queue.begin(key), Lease), "then leased by its taker"


def test_take_honours_the_weights(fair: FairQueue) -> None:
    for name in ("1", "2", "3"):
        fair.add(_key("prod", name))
        fair.add(_key("dev", name))
    weights = {"prod": 2}
    taken = [fair.take(unless_waiting=URGENT_LIST, weights=weights) for _ in range(6)]
    # one key at a time, prod still gets two per turn (its credit keeps the head of the ring)
    assert _names([k for k in taken if k]) == [
        "prod/1", "prod/2", "dev/1", "prod/3", "dev/2", "dev/3"
    ]  # fmt: skip


def test_take_waits_while_an_urgent_message_waits_in_celery(fair: FairQueue) -> None:
    fair.add(_key("a", "1"))
    fair.queue.redis.lpush(URGENT_LIST, "an urgent message a worker has not taken yet")
    assert fair.take(unless_waiting=URGENT_LIST) is None, "the worker goes to Celery first"
    assert fair.pending() == 1, "the key keeps its place"
    fair.queue.redis.delete(URGENT_LIST)
    assert fair.take(unless_waiting=URGENT_LIST) == _key("a", "1")


def test_take_leaves_urgency_to_the_dispatcher_but_takes_an_urgent_key_in_turn(
    fair: FairQueue,
) -> None:
    fair.add(_key("a", "1"))
    fair.add(_key("b", "1"))
    fair.add(_key("b", "woken"), front=True, urgent=True)
    assert fair.take(unless_waiting=URGENT_LIST) == _key("a", "1"), "not out of turn"
    assert fair.take(unless_waiting=URGENT_LIST) == _key("b", "woken"), "first of its lane"
    assert fair.dispatch(10).keys == [_key("b", "1")], "taken keys are not sent again"


def test_take_marks_a_key_being_processed_for_a_follow_up(
    fair: FairQueue, queue: WorkQueue
) -> None:
    a, b = _key("a", "1"), _key("a", "2")
    fair.add(a)
    fair.add(b)
    lease = queue.enqueue(a) and queue.begin(a)  # another worker runs it now
    assert isinstance(lease, Lease)
    assert fair.take(unless_waiting=URGENT_LIST) == b, "a is passed over, not run twice"
    assert queue.finish(lease, success=True).follow_up, "its pending event is not lost"


def test_a_taker_that_dies_before_the_lease_loses_no_key(
    fair: FairQueue, queue: WorkQueue, clock: Clock
) -> None:
    a = _key("a", "1")
    fair.add(a)
    assert fair.take(unless_waiting=URGENT_LIST) == a  # ... and the worker dies here
    assert fair.add(a) is AddResult.DUPLICATE, "marked in flight"
    clock.now += 25
    assert reclaim(queue, queue_lists(), older_than=20) == [a], "no message anywhere: freed"
    assert fair.add(a) is AddResult.PENDING


def test_a_draining_dispatcher_only_starts_idle_workers(fair: FairQueue, queue: WorkQueue) -> None:
    sent: list[Key] = []
    dispatcher = Dispatcher(fair, sent.append, draining=True, clock=Clock())
    for number in range(100):
        fair.add(_key("a", str(number)))
    assert dispatcher.dispatch_once() == (FLOOR, True)
    for key in sent:  # idle workers took them at once
        queue.begin(key)
    assert dispatcher.dispatch_once() == (FLOOR, True), "all four busy: the floor again"
    assert dispatcher.idle_workers, "every message was taken: look again soon"
    assert dispatcher.dispatch_once() == (0, True), "four wait in Celery: no more"
    assert not dispatcher.idle_workers
    assert len(sent) == 2 * FLOOR
    assert fair.pending() == 100 - 2 * FLOOR, "the rest wait in the lanes, to be drained"


def test_settings_from_the_environment() -> None:
    assert DispatchSettings.from_environment({}) == DispatchSettings("fair", None, {})
    assert DispatchSettings.from_environment({}).drain == 7
    parsed = DispatchSettings.from_environment(
        {
            "TANGO_OPERATOR_DISPATCH": "fifo",
            "TANGO_OPERATOR_DISPATCH_WINDOW": "12",
            "TANGO_OPERATOR_NAMESPACE_WEIGHTS": '{"prod": 4}',
            "TANGO_OPERATOR_DISPATCH_DRAIN": "0",
        }
    )
    assert parsed == DispatchSettings("fifo", 12, {"prod": 4}, drain=0)
    for bad in (
        {"TANGO_OPERATOR_DISPATCH_DRAIN": "-1"},
        {"TANGO_OPERATOR_DISPATCH_DRAIN": "all"},
        {"TANGO_OPERATOR_DISPATCH": "lifo"},
        {"TANGO_OPERATOR_DISPATCH_WINDOW": "0"},
        {"TANGO_OPERATOR_DISPATCH_WINDOW": "many"},
        {"TANGO_OPERATOR_NAMESPACE_WEIGHTS": "{"},
        {"TANGO_OPERATOR_NAMESPACE_WEIGHTS": '{"prod": 0}'},
        {"TANGO_OPERATOR_NAMESPACE_WEIGHTS": '["prod"]'},
    ):
        with pytest.raises(match="TANGO_OPERATOR_"):
            DispatchSettings.from_environment(bad)
