"""The operator's Celery transport (``tango_operator.broker``) against a real redis-server.

The watcher's and the workers' apps use it, Flower's keeps kombu's own; one client object
serves every command of a channel, and messages still go through it both ways.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from devstack.redis_server import RedisServer
from tango_operator import broker
from tango_operator.celery_app import make_app


def test_the_operator_shares_one_client_per_channel_and_flower_does_not(
    redis: RedisServer,
) -> None:
    app = make_app("tango_operator_test", redis_url=redis.url)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(connection.transport, broker.Transport)
        # Celery's banner and its "Cannot connect to" lines print this: the URL, not a class path
        assert connection.as_uri() == f"redis://:**@127.0.0.1:{redis.port}/0", connection.as_uri()
        first = channel._create_client()
        assert channel._create_client() is first, "one client for every command"
        with channel.conn_or_acquire() as client:
            assert client is first
            assert client.ping()
    flower = make_app("tango_operator_flower_test", redis_url=redis.url, shared_clients=False)
    with flower.connection_for_write() as connection:
        assert type(connection.transport) is kombu_redis.Transport
        assert connection.as_uri().startswith("redis://"), "Flower rebuilds it from the URL"


def test_messages_go_through_the_shared_client(redis: RedisServer) -> None:
    app = make_app("tango_operator_test", redis_url=redis.url)
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("tango-operator-broker-test")
        for number in range(20):
            queue.put({"n": number})
        received = []
        for _ in range(20):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        queue.close()
    assert received == list(range(20))
    with redis.client() as client:
        assert client.hlen("unacked") == 0, "every acknowledgement reached Redis"
