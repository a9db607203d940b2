"""Messages lost between Redis and a worker are found, and only those (real redis-server).

The messages are the ones the operator's Publisher sends, in kombu's own format; a lost one
is made the way a killed worker loses it: popped from the broker's list and never recorded
as unacknowledged.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from redis import Redis

from devstack.redis_server import RedisServer
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.messages import queue_lists
from tango_operator.workqueue import EnqueueResult, WorkQueue
from tango_operator.workqueue.lost import UNACKED, messages_in_broker, reclaim
from tests.integration.workqueue.test_workqueue import FakeClock


def _key(name: str) -> Key:
    return Key("DeviceServer", "lab", name)


@pytest.fixture
def queue(redis_client: Redis) -> WorkQueue:
    return WorkQueue(redis_client, clock=FakeClock())


def _send(queue: WorkQueue, url: str, *names: str, urgent: bool = False) -> None:
    publisher = make_publisher(url)
    for name in names:
        assert queue.enqueue(_key(name)) is EnqueueResult.SEND
        publisher.send(_key(name), urgent=urgent)


def test_waiting_and_delivered_messages_are_found(
    queue: WorkQueue, redis_server: RedisServer
) -> None:
    _send(queue, redis_server.url, "waits", "delivered")
    _send(queue, redis_server.url, "urgent", urgent=True)
    normal = queue_lists()[1]
    # a worker took "delivered" (the oldest): kombu keeps it in `unacked` until the ack
    raw = cast(bytes, queue.redis.rpop(normal))
    queue.redis.hset(UNACKED, "tag-1", json.dumps([json.loads(raw), "", "tango-operator"]))
    found = messages_in_broker(queue, queue_lists())
    assert found == {_key(n).encode() for n in ("waits", "delivered", "urgent")}


def test_a_message_popped_and_never_recorded_is_reclaimed_once_old(
    queue: WorkQueue, redis_server: RedisServer
) -> None:
    _send(queue, redis_server.url, "lost", "kept")
    normal = queue_lists()[1]
    queue.redis.rpop(normal)  # "lost": a worker died between the pop and the record
    clock = cast(Any, queue.clock)
    assert reclaim(queue, queue_lists(), older_than=20) == [], "too young to tell"
    assert queue.enqueue(_key("lost")) is EnqueueResult.DUPLICATE, "still marked queued"
    clock.advance(25)
    assert reclaim(queue, queue_lists(), older_than=20) == [_key("lost")]
    assert queue.enqueue(_key("lost")) is EnqueueResult.SEND, "free to be sent again"
    assert queue.enqueue(_key("kept")) is EnqueueResult.DUPLICATE, "its message still waits"


def test_a_key_begun_meanwhile_is_not_reclaimed(
    queue: WorkQueue, redis_server: RedisServer
) -> None:
    _send(queue, redis_server.url, "taken")
    queue.redis.rpop(queue_lists()[1])
    cast(Any, queue.clock).advance(25)
    queue.begin(_key("taken"))  # the message was delivered after all: no mark any more
    assert reclaim(queue, queue_lists(), older_than=20) == []
