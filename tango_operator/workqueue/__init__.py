"""The operator's work queue on Redis: client-go's workqueue guarantees, for many processes.

The watcher enqueues (``watcher.enqueue``), pumps due keys (``watcher.pump``) and dispatches
fairly (``watcher.dispatch``); worker tasks bracket each reconcile with begin, renew and
finish (``workers.execution``). The contract is described in ``queue.py`` here; the fair
dispatcher's lanes in ``fair.py``, the dependency index in ``dependencies.py``, the servers
whose export is watched in ``starting.py``. This package and ``tango_operator.celery_app``
are the only places that talk to Redis.
"""

from __future__ import annotations

from redis import Redis

from tango_operator.workqueue.backoff import backoff_delay
from tango_operator.workqueue.queue import (
    DEFAULT_PREFIX,
    Busy,
    EnqueueResult,
    FinishResult,
    Lease,
    WorkQueue,
)

__all__ = [
    "DEFAULT_PREFIX",
    "Busy",
    "EnqueueResult",
    "FinishResult",
    "Lease",
    "Redis",
    "WorkQueue",
    "backoff_delay",
    "connect",
]


def connect(url: str) -> Redis:
    """A Redis client for ``url`` (from ``tango_operator.redis_url``) with short timeouts.

    An operation never hangs a watcher thread or a worker for long.
    """
    return Redis.from_url(url, socket_timeout=10, health_check_interval=30)
