"""The operator's work queue on Redis: see ``workers.queue.workqueue`` for the contract.

Used by the watcher (enqueue, due) and by the worker tasks (begin, renew, finish).
"""

from __future__ import annotations

from workers.queue.backoff import backoff_delay
from workers.queue.workqueue import (
    DEFAULT_PREFIX,
    Busy,
    EnqueueResult,
    FinishResult,
    Lease,
    WorkQueue,
)

__all__ = [
    "DEFAULT_PREFIX",
    "Busy",
    "EnqueueResult",
    "FinishResult",
    "Lease",
    "WorkQueue",
    "backoff_delay",
]
