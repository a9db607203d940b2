"""The export watcher: starting device servers are looked for in TANGO, and woken.

Runs as a thread in every worker process (``workers.tasks`` starts it); the processes take
turns through a lease in Redis, so one looks at a time. Every ``interval`` seconds it reads
the starting servers (``tango_operator.workqueue.starting``, registered by the task layer when a
reconcile ends in Pending), asks TANGO which of their devices are exported, and when all of
a server's are, forgets it and wakes the server and every DeviceServer waiting for those
devices (``wake``: enqueue and send; the waiters urgently when they are few,
``URGENT_WAKE_LIMIT``). A dependent thus starts within a fraction of a second
of its dependency's export, without polling by full reconciles and
without waiting for the kubelet's next readiness probe of the provider's pod.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from tango_operator.keys import Key
from tango_operator.workqueue.fair import URGENT_WAKE_LIMIT, Waker
from tango_operator.workqueue.starting import StartingServers
from workers import settings
from workers.reconcile.ports import DependencyIndexPort, TangoPort, TangoUnavailableError

log = logging.getLogger(__name__)

MAX_AGE = 900.0
"""A server still not exported after this many seconds is left to its reconciles."""


class ExportWatcher:
    """Looks for the exports of the starting servers in TANGO and wakes them and their waiters.

    ``wake`` enqueues and sends a key; a server not exported after ``max_age`` seconds is
    forgotten here and left to its reconciles. ``holder`` names this process's turn.
    """

    def __init__(
        self,
        starting: StartingServers,
        tango: TangoPort,
        index: DependencyIndexPort,
        wake: Waker,
        *,
        interval: float = settings.DEFAULT_EXPORT_POLL_SECONDS,
        max_age: float = MAX_AGE,
    ) -> None:
        self.starting = starting
        self.tango = tango
        self.index = index
        self.wake = wake
        self.interval = interval
        self.max_age = max_age
        self.holder = uuid.uuid4().hex

    def poll_once(self) -> list[Key]:
        """One look at every starting server; the keys woken."""
        woken: list[Key] = []
        now = time.time()
        for entry in self.starting.entries():
            if now - entry.since > self.max_age:
                self.starting.forget(entry.key)
                continue
            try:
                if self.tango.unexported_devices(entry.tango_host, entry.devices):
                    continue
            except TangoUnavailableError:
                continue
            self.starting.forget(entry.key)
            # the waiters can start now: urgent if they are few; the server itself only has
            # its status to catch up on, so it does not compete with them for urgency
            waiters = [
                k for k in dict.fromkeys(self.index.waiters_of(entry.devices)) if k != entry.key
            ]
            self.wake(entry.key)
            urgent = len(waiters) <= URGENT_WAKE_LIMIT
            for key in waiters:
                self.wake(key, urgent=urgent)
            woken += [entry.key, *waiters]
            log.info("devices exported key=%s woken=%d", entry.key, 1 + len(waiters))
        return woken

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: take the turn, look, sleep; Redis or TANGO trouble is retried."""
        turn = max(2.0, self.interval * 20)
        while not stop.is_set():
            try:
                if not self.starting.take_turn(self.holder, turn):
                    stop.wait(turn / 2)
                    continue
                self.poll_once()
            except Exception:
                log.warning("export watcher failed; retrying", exc_info=True)
                stop.wait(1.0)
                continue
            stop.wait(self.interval)
