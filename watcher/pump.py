"""The requeue-after pump: keys whose delay has passed go back on the queue.

Delays live in Redis (``WorkQueue.due`` pops the ``delayed`` set and sweeps lapsed leases);
while this replica leads, each due key goes to ``enqueue`` (``watcher.enqueue``) and the
queue gauges (``watcher.metrics.QUEUE``) are refreshed from ``WorkQueue.stats``. The pump
wakes when the earliest key falls due (at most every 0.5 s, at least every 20 ms), so a
requeue-after is kept to within a few tens of milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tango_operator.keys import Key
from tango_operator.messages import queue_lists
from tango_operator.workqueue import WorkQueue, lost
from tango_operator.workqueue.fair import FairQueue
from watcher import metrics

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 0.5
LOST_CHECK_SECONDS = 5.0
"""How often the pump looks for reconcile messages lost on their way to a worker."""
LOST_AFTER_SECONDS = 20.0
"""A key marked queued this long without its message anywhere in the broker is sent again."""
MIN_INTERVAL_SECONDS = 0.02
BATCH = 500


def pump_once(queue: WorkQueue, enqueue: Callable[[Key], object]) -> int:
    """Enqueue every due key (batch after batch while batches are full); how many."""
    count = 0
    while True:
        keys = queue.due(limit=BATCH)
        for key in keys:
            enqueue(key)
        count += len(keys)
        if len(keys) < BATCH:
            return count


def _refresh_gauges(queue: WorkQueue, fair: FairQueue | None) -> None:
    for stage, value in queue.stats().items():
        metrics.QUEUE.labels(stage).set(value)
    if fair is None:
        return
    by_namespace = fair.pending_by_namespace()
    metrics.QUEUE.labels("pending").set(sum(by_namespace.values()))
    for namespace, count in by_namespace.items():
        metrics.PENDING.labels(namespace).set(count)
    shown = {s.labels["namespace"] for family in metrics.PENDING.collect() for s in family.samples}
    for namespace in shown - set(by_namespace):  # drained since the last refresh
        metrics.PENDING.remove(namespace)


def run_pump(
    queue: WorkQueue,
    enqueue: Callable[[Key], object],
    stop: threading.Event,
    interval: float = INTERVAL_SECONDS,
    *,
    fair: FairQueue | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Until ``stop`` is set; Redis errors are logged and retried on the next tick.

    Every ``LOST_CHECK_SECONDS`` it also frees and enqueues again the keys whose message was
    lost on the way to a worker (``tango_operator.workqueue.lost``). ``on_tick`` runs at every
    tick after Redis answered (the watcher's retry of owner copies, ``watcher.owners``).
    """
    wait = interval
    last_stats = last_lost_check = 0.0
    while not stop.wait(wait):
        wait = interval
        try:
            pumped = pump_once(queue, enqueue)
            if pumped:
                log.debug("pumped keys=%d", pumped)
            now = queue.clock()
            if now - last_lost_check >= LOST_CHECK_SECONDS:
                last_lost_check = now
                for key in lost.reclaim(queue, queue_lists(), older_than=LOST_AFTER_SECONDS):
                    log.warning("message lost on its way to a worker, sending again key=%s", key)
                    metrics.LOST_MESSAGES.inc()
                    enqueue(key)
            if now - last_stats >= interval:
                _refresh_gauges(queue, fair)
                last_stats = now
            if on_tick is not None:
                on_tick()
            due = queue.next_due()
            if due is not None:
                wait = min(interval, max(MIN_INTERVAL_SECONDS, due - now))
        except Exception as exc:
            log.warning("pump failed error=%r", exc)
