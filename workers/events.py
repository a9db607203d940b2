"""Kubernetes Events, posted from a background thread so that no reconcile waits for one.

``workers.kube.Kube.emit_event`` builds each Event and hands it here (``record``); one daemon
thread per process posts them in order, as client-go's event broadcaster does for a Go
controller. Events are best effort there too: when the API server is slower than the
events come, the backlog is capped (``CAPACITY``) and an Event that does not fit is dropped,
logged and counted (``tango_operator_events_dropped_total``), never waited for. A worker
that shuts down gives the backlog a few seconds to drain (``flush``, from the Celery
``worker_shutdown`` signal in ``workers.tasks``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from workers import metrics

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]

CAPACITY = 1000
"""Events waiting to be posted at most (client-go's broadcaster queues 1000 as well)."""


class EventRecorder:
    """Posts the Events given to ``record`` with ``post``, in order, off the caller's thread."""

    def __init__(self, post: Callable[[JsonDict], None], *, capacity: int = CAPACITY) -> None:
        self.post = post
        self._backlog: queue.Queue[JsonDict] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def record(self, event: JsonDict) -> None:
        """Queue ``event`` for posting; drop it (logged, counted) when the backlog is full."""
        self._start()
        try:
            self._backlog.put_nowait(event)
        except queue.Full:
            metrics.EVENTS_DROPPED.inc()
            involved = event.get("involvedObject") or {}
            log.warning(
                "event dropped, backlog full kind=%s name=%s/%s reason=%s",
                involved.get("kind"),
                involved.get("namespace"),
                involved.get("name"),
                event.get("reason"),
            )

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the backlog to be posted; whether it was."""
        done = threading.Event()

        def wait_for_backlog() -> None:
            self._backlog.join()
            done.set()

        threading.Thread(target=wait_for_backlog, name="events-flush", daemon=True).start()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            event = self._backlog.get()
            try:
                self.post(event)
            except Exception:  # post logs its own failures; this keeps the thread alive
                log.exception("event not posted")
            finally:
                self._backlog.task_done()
