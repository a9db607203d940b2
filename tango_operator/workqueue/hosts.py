"""The states of the DatabaseDSs as the watcher sees them, so workers need not read them.

One HASH (``databaseds``): ``<namespace>/<name>`` → the DatabaseDS's ``status.state``
(``DATABASEDS_DELETING`` of ``tango_operator.observed`` once it has a deletionTimestamp; the
field is removed when it is gone), and ``listed:<namespace>`` (``listed:*`` for all
namespaces) once the watcher has listed the DatabaseDSs of that scope since this Redis began.
Written by the watcher (``watcher.main``) from its DatabaseDS source; read by the
DeviceServer reconciler through ``workers.reconcile.databaseds_lookup``, which reads the API
instead while the answer is ``DATABASEDS_UNKNOWN`` (no list recorded: a new watcher, a
flushed Redis).
"""

from __future__ import annotations

from typing import Any, cast

from redis import Redis

from tango_operator.observed import DATABASEDS_UNKNOWN
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded


class RedisDatabaseStates:
    """The DatabaseDS states on one Redis, under ``prefix``."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.name = f"{prefix}databaseds"

    def record(self, namespace: str, name: str, state: str | None) -> None:
        """Record a DatabaseDS's state (None: it is gone)."""
        field = f"{namespace}/{name}"
        if state is None:
            self.redis.hdel(self.name, field)
        else:
            self.redis.hset(self.name, field, state)

    def mark_listed(self, namespace: str | None) -> None:
        """The DatabaseDSs of ``namespace`` (None: all) were just listed and recorded."""
        self.redis.hset(self.name, f"listed:{namespace or '*'}", "1")

    def state(self, namespace: str, name: str) -> str | None:
        """The state (``DATABASEDS_DELETING`` while deleted), None if absent, or unknown."""
        listed_here, listed_all, state = cast(
            list[Any],
            self.redis.hmget(self.name, [f"listed:{namespace}", "listed:*", f"{namespace}/{name}"]),
        )
        if state is not None:
            return decoded(state)
        if listed_here is None and listed_all is None:
            return DATABASEDS_UNKNOWN
        return None
