"""One thread per process that keeps every lease it holds renewed.

``workers.execution`` registers each lease it takes (``WorkQueue.begin``) for the length of
its reconcile and unregisters it at the end. The thread renews each registered lease every
third of its length (``WorkQueue.renew``) and sets the lease's ``lost`` event when another
holder has the key. A thread per reconcile would cost a thread start and a join on every
message, although almost no reconcile lives long enough to renew once. The thread ends when
nothing is registered any more and starts again with the next lease.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from tango_operator.workqueue.queue import Lease, WorkQueue

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.05
"""The shortest renewal period (seconds), whatever the lease length."""


class Renewal:
    """One registered lease: ``lost`` is set when another holder took its key."""

    __slots__ = ("active", "lease", "lost")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.lost = threading.Event()
        self.active = True


class LeaseRenewer:
    """Renews the leases registered with it, from one daemon thread started on first use."""

    def __init__(self, queue: WorkQueue, clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.clock = clock
        self.interval = max(queue.lease_seconds / 3, MIN_INTERVAL)
        self._due: list[tuple[float, int, Renewal]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def register(self, lease: Lease) -> Renewal:
        """Keep ``lease`` renewed until ``unregister``."""
        renewal = Renewal(lease)
        with self._changed:
            heapq.heappush(self._due, (self.clock() + self.interval, next(self._order), renewal))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
        return renewal

    def unregister(self, renewal: Renewal) -> None:
        """Stop renewing (the heap entry is dropped when it comes due)."""
        renewal.active = False

    def _run(self) -> None:
        """Renew what comes due; return once nothing is registered (``register`` restarts it)."""
        while True:
            with self._changed:
                if not self._due:
                    self._thread = None
                    return
                due_at, _, renewal = self._due[0]
                wait = due_at - self.clock()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._due)
            if not renewal.active:
                continue
            if self._renew(renewal):
                with self._changed:
                    next_at = self.clock() + self.interval
                    heapq.heappush(self._due, (next_at, next(self._order), renewal))

    def _renew(self, renewal: Renewal) -> bool:
        """Renew once; False when the lease is lost for good (no more renewals)."""
        try:
            if not self.queue.renew(renewal.lease):
                renewal.lost.set()
                return False
        except Exception:  # a Redis hiccup: try again at the next tick
            log.warning("lease renewal failed key=%s", renewal.lease.key, exc_info=True)
        return True
