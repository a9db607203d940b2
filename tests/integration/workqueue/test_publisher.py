"""The reconcile messages the ``Publisher`` puts on a real redis-server, as a worker reads them.

The Publisher builds its messages with Celery's own helpers rather than ``send_task``
(``tango_operator.messages``); these tests hold its output to what ``send_task`` gives a
worker: the task's name, its one JSON argument, the resource Flower shows, the priority list
kombu pops, and no queue declared by the sender.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from redis import Redis

from devstack.redis_server import RedisServer
from tango_operator.celery_app import make_publisher
from tango_operator.keys import Key
from tango_operator.messages import PRIORITY_NORMAL, PRIORITY_URGENT, TASK_NAME, queue_lists

KEY = Key("DeviceServer", "lab", "motor")
OTHER = Key("DatabaseDS", "lab", "tango-db")


def _messages(client: Redis, name: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in cast(list[bytes], client.lrange(name, 0, -1))]


def test_normal_and_urgent_messages_land_on_their_lists_as_celery_tasks(
    redis: RedisServer,
) -> None:
    publisher = make_publisher(redis.url)
    publisher(KEY)
    publisher.urgent(OTHER)
    client = Redis.from_url(redis.url)
    urgent_list, normal_list = queue_lists()

    (normal,) = _messages(client, normal_list)
    (urgent,) = _messages(client, urgent_list)
    for message, key, priority in (
        (normal, KEY, PRIORITY_NORMAL),
        (urgent, OTHER, PRIORITY_URGENT),
    ):
        headers, properties = message["headers"], message["properties"]
        assert headers["task"] == TASK_NAME
        assert headers["argsrepr"] == f"{key.kind} {key.namespace}/{key.name}"
        assert headers["id"] == properties["correlation_id"], "Celery's task id"
        assert properties["priority"] == priority
        assert message["content-type"] == "application/json"
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        assert (args, kwargs) == ([key.encode()], {})
        assert Key.decode(args[0]) == key
    assert normal["headers"]["id"] != urgent["headers"]["id"]


def test_the_sender_declares_no_queue(redis: RedisServer) -> None:
    """The anonymous exchange puts a message straight on the list: no binding is written."""
    publisher = make_publisher(redis.url)
    for _ in range(3):
        publisher(KEY)
    client = Redis.from_url(redis.url)
    assert cast(list[bytes], client.keys("*")) == [queue_lists()[1].encode()]
    assert client.llen(queue_lists()[1]) == 3
