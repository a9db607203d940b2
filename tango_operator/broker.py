"""Celery's Redis transport, with one client object per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` object — and with it redis-py's table of
some two hundred reply callbacks — for every publish, every acknowledgement and every
unacked-message bookkeeping call (``Channel.conn_or_acquire``), although the connections
themselves come from the channel's pool either way. In a worker handling hundreds of messages
a second that construction was a quarter of the Celery consumer's CPU (docs/benchmarks.md).
This channel builds the client once per connection pool and hands the same one out:
redis-py clients are safe to share between threads (each command takes a connection from the
pool; pipelines and pub/sub, which are not, are made from it per use, as before).

``tango_operator.celery_app.make_app`` selects it (Celery's ``broker_transport``) for the
watcher and the workers. Flower keeps kombu's own class: it rebuilds its broker connection
from the connection's URL, which names the transport by its alias.

A connection given a transport by its class path prints that path where the URL's scheme
belongs (``tango_operator.broker:Transport://…``) — in Celery's banner and in its "Cannot
connect to …" errors, the lines a user reads to see where the broker is and whether TLS is
on. ``make_app`` has Celery build ``Connection``s (through its ``amqp`` class), which print
``redis://`` or ``rediss://`` instead, password masked as before.
"""

from __future__ import annotations

from typing import Any

from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis

TRANSPORT = "tango_operator.broker:Transport"
"""The value of Celery's ``broker_transport`` that selects this transport."""


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, sharing one synchronous client per connection pool."""

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """The shared client (a new one only for a new pool); the event loop's as before."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client(  # type: ignore[no-untyped-call]
                asynchronous=False
            )
        return client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with ``Channel``."""

    Channel = Channel


class Connection(kombu_connection.Connection):
    """kombu's connection, printing the Redis URL's own scheme rather than ``TRANSPORT``."""

    def as_uri(self, include_password: Any = False, mask: Any = "**", *args: Any) -> str:
        """The URL as kombu prints it, with ``redis`` or ``rediss`` (TLS) for its scheme."""
        uri: str = super().as_uri(include_password, mask, *args)
        if self.transport_cls != TRANSPORT:
            return uri
        scheme = "rediss" if self.ssl else "redis"
        return scheme + uri.removeprefix(TRANSPORT)
