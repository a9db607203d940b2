"""watcher.enqueue against a real redis-server.

One message per key in flight, and a failed send (or an unreachable Redis) is counted, never raised.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from devstack.redis_server import RedisServer
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.workqueue import EnqueueResult, WorkQueue
from tests.integration.watcher.conftest import ds_key, sent_keys
from watcher.enqueue import Enqueuer


def _errors(stage: str) -> float:
    labels = {"kind": "DeviceServer", "stage": stage}
    return REGISTRY.get_sample_value("tango_operator_enqueue_errors_total", labels) or 0.0


def test_one_celery_message_per_queued_key(redis: RedisServer) -> None:
    enqueuer = Enqueuer(WorkQueue(redis.client()), make_publisher(redis.url))
    assert enqueuer.enqueue(ds_key("a")) is EnqueueResult.SEND
    assert enqueuer.enqueue(ds_key("a")) is EnqueueResult.DUPLICATE
    assert enqueuer.enqueue(ds_key("b")) is EnqueueResult.SEND
    assert sent_keys(redis) == [ds_key("a"), ds_key("b")]


def test_a_failed_send_is_counted_and_the_key_resent_once_stale(redis: RedisServer) -> None:
    clock = [1000.0]
    queue = WorkQueue(redis.client(), stale_after=60, clock=lambda: clock[0])
    attempts: list[Key] = []

    def broken(key: Key) -> None:
        attempts.append(key)
        raise ConnectionError("broker down")

    before = _errors("send")
    enqueuer = Enqueuer(queue, broken)
    assert enqueuer.enqueue(ds_key("a")) is EnqueueResult.SEND
    assert _errors("send") == before + 1
    assert enqueuer.enqueue(ds_key("a")) is EnqueueResult.DUPLICATE, "marked queued"
    clock[0] += 61
    assert enqueuer.enqueue(ds_key("a")) is EnqueueResult.SEND, "stale: sent again"
    assert attempts == [ds_key("a"), ds_key("a")]


def test_an_unreachable_redis_is_counted(redis: RedisServer) -> None:
    queue = WorkQueue(redis.client())
    redis.stop()
    before = _errors("queue")
    sent: list[Key] = []
    assert Enqueuer(queue, sent.append).enqueue(ds_key("a")) is None
    assert _errors("queue") == before + 1
    assert sent == []
