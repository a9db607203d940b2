"""Watch events from every source → one handler thread, a burst at a time.

The sources (``watcher.sources``, a thread each) read and decode their streams and ``put``
each event here; their first-list and relist callbacks come through ``put_call``, in line
with their events. One thread (``run``) takes whatever has queued up — one event when the
cluster is quiet, a burst when it is busy — and hands it to ``handle`` (``Watcher.on_events``),
which records the whole burst in Redis in one round trip instead of one per event. Nothing
waits for a burst to form, so a quiet cluster's event is handled as soon as it is read.

Order is kept: events and callbacks are handled in the order they were put, so a source's
events are recorded before the callback that follows them (the resync after a list offers
keys whose owner copies are recorded already). At most ``limit`` items wait: a source that
finds the queue full waits (as it waited for Redis before), so a slow Redis holds the
streams back rather than filling memory. When the leadership ends (``stop``) what still
waits is dropped: the next leadership lists everything again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from watcher import metrics

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Event = tuple[str, str, JsonDict]
"""(kind, event type, object), as a source emits it."""
Item = Event | Callable[[], None]
LIMIT = 100
"""Items that may wait at most. Each waiting event holds its decoded object, and what many
objects alive at once leave behind in the allocator stays: the watcher of 10,000
DeviceServers (``make bench-memory``) grew by 3.6 MiB with 500 of them, 1 MiB with 100."""
BATCH = 100
"""Items handled together at most: a burst's records are one pipeline, whose commands (an
owner copy's JSON each) redis-py packs into one buffer."""
POLL_SECONDS = 0.25
"""How often a waiting put or an idle handler looks at ``stop``."""


class EventBatcher:
    """A bounded queue of events and callbacks with one consumer thread."""

    def __init__(
        self,
        handle: Callable[[Sequence[Event]], None],
        stop: threading.Event,
        *,
        limit: int = LIMIT,
        batch: int = BATCH,
    ) -> None:
        self.handle = handle
        self.stop = stop
        self.batch = batch
        self._items: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._room = threading.Semaphore(limit)

    def put(self, kind: str, event_type: str, obj: JsonDict) -> None:
        """Queue one event (waits while ``limit`` items wait; returns at once after ``stop``)."""
        self._put((kind, event_type, obj))

    def put_call(self, callback: Callable[[], None]) -> None:
        """Queue ``callback`` to run after every event put before it was handled."""
        self._put(callback)

    def _put(self, item: Item) -> None:
        while not self._room.acquire(timeout=POLL_SECONDS):
            if self.stop.is_set():
                return
        self._items.put(item)

    def run(self) -> None:
        """Handle bursts until ``stop`` is set; a failing burst is logged, never fatal."""
        while not self.stop.is_set():
            try:
                first = self._items.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            taken = [first]
            while len(taken) < self.batch:
                try:
                    taken.append(self._items.get_nowait())
                except queue.Empty:
                    break
            try:
                if not self.stop.is_set():
                    self._handle(taken)
            finally:
                self._room.release(len(taken))

    def _handle(self, taken: list[Item]) -> None:
        events: list[Event] = []
        for item in taken:
            if isinstance(item, tuple):
                events.append(item)
                continue
            self._handle_events(events)
            events = []
            try:
                item()
            except Exception:
                log.exception("callback of a source failed callback=%r", item)
        self._handle_events(events)

    def _handle_events(self, events: list[Event]) -> None:
        if not events:
            return
        metrics.EVENT_BURSTS.observe(len(events))
        try:
            self.handle(events)
        except Exception:
            log.exception("events not handled count=%d", len(events))
