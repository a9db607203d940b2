"""The one way an operator process makes its Celery app.

The workers (``workers.app``), the watcher (``watcher.main``, a producer only) and Flower
(``workers.flower``) all build their app here, from the same settings module
(``tango_operator.celeryconfig``), so a sender and a consumer cannot disagree about
serialisation, priorities or the broker's transport options.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from celery.app.amqp import AMQP

from tango_operator import broker
from tango_operator.messages import Publisher
from tango_operator.redis_url import celery_url

CONFIG_MODULE = "tango_operator.celeryconfig"


class BrokerAMQP(AMQP):  # type: ignore[misc]
    """Celery's messaging helpers, making ``tango_operator.broker.Connection``s."""

    Connection = broker.Connection
    BrokerConnection = broker.Connection


def make_app(
    name: str,
    *,
    include: Sequence[str] = (),
    redis_url: str | None = None,
    shared_clients: bool = True,
) -> Celery:
    """A Celery app named ``name`` configured from ``CONFIG_MODULE``.

    ``include`` names the task modules a worker imports; ``redis_url`` (a URL from
    ``tango_operator.redis_url.redis_url``) replaces the environment's broker, for a caller
    that was handed its URL rather than reading it. ``shared_clients`` selects the transport
    of ``tango_operator.broker`` (False: kombu's own, which Flower needs).
    """
    app = Celery(name, include=list(include), amqp=BrokerAMQP if shared_clients else None)
    app.config_from_object(CONFIG_MODULE)
    if redis_url is not None:
        app.conf.broker_url = celery_url(redis_url)
    if shared_clients:
        app.conf.broker_transport = broker.TRANSPORT
    return app


def make_publisher(redis_url: str, *, name: str = "tango_operator_producer") -> Publisher:
    """A Publisher of reconcile messages to the broker at ``redis_url`` (a producer's app)."""
    return Publisher(make_app(name, redis_url=redis_url))
