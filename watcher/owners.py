"""The watcher's copies of the custom resources, for the workers to read instead of the API.

``watcher.main`` records every listed and watched DeviceServer and DatabaseDS with the call
made here (sent with the other calls of its burst of events) before the key is enqueued, so
a worker that takes the key finds a copy at least as new as the event that sent it
(``tango_operator.workqueue.ledger``, ``RedisChildLedger.observe_owner``; the workers' side
is ``workers.reconcile.owners``). A copy that could not be recorded (Redis
trouble) may be behind: it is dropped as soon as Redis answers again (``retry``, from the
pump's tick), so that the workers read the API until the next event records a fresh one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tango_operator.keys import Key
from tango_operator.workqueue.ledger import RedisChildLedger
from tango_operator.workqueue.piggyback import ScriptCall

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]


class OwnerRecorder:
    """Records each event of a custom resource as its owner copy."""

    def __init__(self, ledger: RedisChildLedger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._unrecorded: set[Key] = set()

    def call(self, kind: str, event_type: str, obj: JsonDict) -> tuple[Key, ScriptCall] | None:
        """The call that records one event of a custom resource (DELETED leaves a tombstone).

        None for an object without a namespace or name. The caller sends it (with the other
        calls of its burst) and reports the reply to ``recorded``.
        """
        meta = obj.get("metadata") or {}
        if not meta.get("namespace") or not meta.get("name"):
            return None
        key = Key(kind, str(meta["namespace"]), str(meta["name"]))
        return key, self.ledger.observe_owner_call(key, None if event_type == "DELETED" else obj)

    def recorded(self, key: Key, reply: object) -> None:
        """The reply to ``key``'s call: an exception leaves the copy to be dropped (``retry``)."""
        if isinstance(reply, Exception):
            log.warning("owner copy not recorded key=%s error=%r", key, reply)
            with self._lock:
                self._unrecorded.add(key)
            return
        with self._lock:
            self._unrecorded.discard(key)

    def retry(self) -> None:
        """Drop the copies whose last event could not be recorded (they may be behind)."""
        with self._lock:
            pending, self._unrecorded = self._unrecorded, set()
        failed: set[Key] = set()
        for key in pending:
            try:
                self.ledger.drop_owner_copy(key)
            except Exception:
                failed.add(key)
        if failed:
            with self._lock:
                self._unrecorded |= failed
