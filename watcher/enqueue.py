"""Keys → the work queue's dedupe → at most one Celery message per key in flight.

``watcher.main`` funnels every key here (from watch events, the pump and the resync).
With fair dispatch (the default) the key is added to ``FairQueue``, where it waits for the
dispatcher (``watcher.dispatch``); with FIFO dispatch ``WorkQueue.enqueue`` (Redis)
decides: SEND → ``send(key)`` publishes the message (``watcher.send``); DUPLICATE and
DIRTY send nothing. Failures are logged and counted, never raised: a key lost here comes
back with the next event or resync (docs/architecture.md, the queue contract).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tango_operator.keys import Key
from tango_operator.workqueue import EnqueueResult, WorkQueue
from tango_operator.workqueue.fair import AddResult, FairQueue
from watcher import metrics

log = logging.getLogger(__name__)


class Enqueuer:
    """Puts keys into the work queue (or the fair queue) and sends what the queue says to send."""

    def __init__(
        self, queue: WorkQueue, send: Callable[[Key], None], fair: FairQueue | None = None
    ) -> None:
        self.queue = queue
        self.send = send
        self.fair = fair

    def enqueue(
        self, key: Key, *, weak: bool = False, front: bool = False
    ) -> EnqueueResult | AddResult | None:
        """The queue's answer for ``key``, or None when Redis could not be reached.

        ``weak`` (the resync): a key being reconciled right now is left alone. ``front``:
        ahead of the other keys of its namespace's lane (FIFO dispatch has no lanes).
        """
        if self.fair is not None:
            try:
                added = self.fair.add(key, weak=weak, front=front)
            except Exception as exc:
                log.warning("enqueue failed key=%s error=%r", key.encode(), exc)
                metrics.ENQUEUE_ERRORS.labels(key.kind, "queue").inc()
                return None
            metrics.ENQUEUED.labels(key.kind, added.value).inc()
            return added
        try:
            result = self.queue.enqueue(key, weak=weak)
        except Exception as exc:  # Redis down: the resync after it returns recovers the key
            log.warning("enqueue failed key=%s error=%r", key.encode(), exc)
            metrics.ENQUEUE_ERRORS.labels(key.kind, "queue").inc()
            return None
        metrics.ENQUEUED.labels(key.kind, result.value).inc()
        if result is EnqueueResult.SEND:
            try:
                self.send(key)
            except Exception as exc:
                # marked queued without a message: sent again once stale (WorkQueue.stale_after)
                log.warning(
                    "send failed key=%s error=%r resend_after=%.0fs",
                    key.encode(),
                    exc,
                    self.queue.stale_after,
                )
                metrics.ENQUEUE_ERRORS.labels(key.kind, "send").inc()
        return result
