"""The states of the DatabaseDSs as the watcher sees them, so workers need not read them.

One HASH (``databaseds``): ``<namespace>/<name>`` → the DatabaseDS's ``status.state``
(``DATABASEDS_DELETING`` of ``tango_operator.observed`` once it has a deletionTimestamp; the
field is removed when it is gone, and a key ``databaseds-deleted:<namespace>/<name>`` says
``DATABASEDS_DELETED`` for ``DELETED_MEMORY_SECONDS`` or until it is recorded again), and
``listed:<namespace>`` (``listed:*`` for all namespaces) once the watcher has listed the
DatabaseDSs of that scope since this Redis began.
Written by the watcher (``watcher.main``) from its DatabaseDS source; read by the
DeviceServer reconciler through ``workers.reconcile.databaseds_lookup``, which reads the API
instead while the answer is ``DATABASEDS_UNKNOWN`` (no list recorded: a new watcher, a
flushed Redis).
"""

from __future__ import annotations

from redis import Redis

from tango_operator.observed import (
    DATABASEDS_DELETED,
    DATABASEDS_UNKNOWN,
    DELETED_MEMORY_SECONDS,
)
from tango_operator.workqueue.queue import DEFAULT_PREFIX
from tango_operator.workqueue.replies import decoded


class RedisDatabaseStates:
    """The DatabaseDS states on one Redis, under ``prefix``."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.name = f"{prefix}databaseds"
        self.deleted = f"{prefix}databaseds-deleted:"

    def record(self, namespace: str, name: str, state: str | None) -> None:
        """Record a DatabaseDS's state (None: it is gone)."""
        field = f"{namespace}/{name}"
        pipe = self.redis.pipeline(transaction=True)
        if state is None:
            pipe.hdel(self.name, field)
            pipe.set(self.deleted + field, "1", ex=DELETED_MEMORY_SECONDS)
        else:
            pipe.hset(self.name, field, state)
            pipe.delete(self.deleted + field)
        pipe.execute()

    def mark_listed(self, namespace: str | None) -> None:
        """The DatabaseDSs of ``namespace`` (None: all) were just listed and recorded."""
        self.redis.hset(self.name, f"listed:{namespace or '*'}", "1")

    def state(self, namespace: str, name: str) -> str | None:
        """The state, None if absent, or unknown.

        ``DATABASEDS_DELETING`` while it is deleted, ``DATABASEDS_DELETED`` for a while after.
        """
        field = f"{namespace}/{name}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.name, [f"listed:{namespace}", "listed:*", field])
        pipe.exists(self.deleted + field)
        (listed_here, listed_all, state), deleted = pipe.execute()
        if state is not None:
            return decoded(state)
        if deleted:
            return DATABASEDS_DELETED
        if listed_here is None and listed_all is None:
            return DATABASEDS_UNKNOWN
        return None
