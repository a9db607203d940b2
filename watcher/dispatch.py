"""The dispatcher: pending keys → Celery, fairly across namespaces, a window at a time.

Runs in the leading watcher next to the pump (``watcher.main``). Whenever there may be room
— a key was added (``FairQueue.add`` pokes a signal list) or a tick passed, in which
workers took messages — it asks ``FairQueue.dispatch`` for keys up to the window and sends
one Celery message for each (``watcher.send``; a key ``dispatch`` marks urgent — a wake-up
of a few keys — goes at the urgent priority, ahead of the messages already queued). The
window is fixed, or automatic: twice
the largest number of reconciles seen running in the last minute, plus a floor, so that it
grows with the workers (like a slow start) and the Celery queue stays a small multiple of
them. When the workers drain the lanes themselves (``TANGO_OPERATOR_DISPATCH_DRAIN``, on by
default: a busy worker takes the next key in turn without a message), messages only start
idle workers: the automatic window is the reconciles that could run but do not (the peak of
the last minute minus those running now) plus the floor, which finds out whether more
workers are idle and keeps messages going if one of them is stuck with a dead worker. While
the workers are all busy that is the floor's few messages, taken by the next workers to end
their drains, so a key sent never waits behind a long queue while the lanes move on without
it; and while every message sent is taken at once (workers are idle), the next look comes
after ``QUICK_SECONDS`` instead of a tick, so that a burst reaches every worker quickly.

A send that fails leaves its key marked in flight; the work queue treats it as lost once
stale and it is added again by the next event, pump or resync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from tango_operator.keys import Key
from tango_operator.workqueue.fair import FairQueue
from watcher import metrics

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05
QUICK_SECONDS = 0.005
FLOOR = 4
PEAK_SECONDS = 60.0
MAX_AUTO_WINDOW = 2000


class Dispatcher:
    """Sends the fair queue's pending keys to Celery, a window at a time.

    ``send`` publishes a key's message; ``send_urgent``, when given, publishes it at the urgent
    priority. ``window`` fixes the number of keys in flight (None: automatic); ``weights`` are
    the keys per turn of each namespace; ``draining``: the workers take pending keys
    themselves (``FairQueue.take``), so the automatic window only starts idle workers.
    """

    def __init__(
        self,
        fair: FairQueue,
        send: Callable[[Key], None],
        *,
        send_urgent: Callable[[Key], None] | None = None,
        window: int | None = None,
        weights: Mapping[str, int] | None = None,
        draining: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fair = fair
        self.send = send
        self.send_urgent = send_urgent or send
        self.fixed_window = window
        self.weights = dict(weights or {})
        self.draining = draining
        self.clock = clock
        self.idle_workers = False
        """The last look found every message sent before it taken already."""
        self._peaks: deque[tuple[float, int]] = deque()
        """Reconciles seen running in the last ``PEAK_SECONDS`` (time, count), each count
        larger than every later one: the first is the peak (a sliding-window maximum, so a
        look costs the same however often the dispatcher looks)."""
        self._running = 0
        """Reconciles running at the last look."""

    def window(self) -> int:
        """The keys in flight at most now.

        The fixed window; when the workers drain the lanes, the peak of the last minute minus
        the reconciles running now, plus the floor; else twice the peak plus the floor (both
        capped at ``MAX_AUTO_WINDOW``).
        """
        if self.fixed_window is not None:
            return self.fixed_window
        peak = self._peaks[0][1] if self._peaks else 0
        if self.draining:
            return min(MAX_AUTO_WINDOW, max(0, peak - self._running) + FLOOR)
        return min(MAX_AUTO_WINDOW, 2 * peak + FLOOR)

    def _observe(self, processing: int) -> None:
        now = self.clock()
        self._running = processing
        while self._peaks and self._peaks[-1][1] <= processing:
            self._peaks.pop()  # never the peak again: this one is as large and outlives it
        self._peaks.append((now, processing))
        while self._peaks[0][0] < now - PEAK_SECONDS:
            self._peaks.popleft()

    def dispatch_once(self) -> tuple[int, bool]:
        """Send what fits; (keys sent, whether the window is full)."""
        window = self.window()
        result = self.fair.dispatch(window, self.weights)
        self._observe(result.processing)
        self.idle_workers = result.in_flight == 0 and bool(result.keys)
        metrics.DISPATCH_WINDOW.set(window)
        for key in result.keys:
            try:
                (self.send_urgent if key in result.urgent else self.send)(key)
            except Exception as exc:
                log.warning("send failed key=%s error=%r", key.encode(), exc)
                metrics.ENQUEUE_ERRORS.labels(key.kind, "send").inc()
                continue
            metrics.DISPATCHED.labels(key.kind).inc()
        return len(result.keys), result.in_flight + len(result.keys) >= window

    def run(self, stop: threading.Event) -> None:
        """Dispatch, then wait for a new key, until ``stop`` is set.

        The wait ends at a new key, or at a tick when the window is full and only workers taking
        messages can make room. Redis trouble is retried.
        """
        redis = self.fair.queue.redis
        while not stop.is_set():
            try:
                _, full = self.dispatch_once()
                if full and self.draining and self.idle_workers:
                    stop.wait(QUICK_SECONDS)  # they took all at once: more are idle
                elif full:
                    stop.wait(TICK_SECONDS)
                else:
                    redis.blpop([self.fair.signal], timeout=TICK_SECONDS * 4)
            except Exception as exc:
                log.warning("dispatch failed error=%r", exc)
                stop.wait(1.0)
