"""One run of one key under the work-queue contract, independent of Celery.

Called by the Celery task (``workers.tasks``) with a decoded key; takes the key's lease in
Redis (so no other worker runs it at the same time), keeps it renewed while the reconciler
works, runs the reconciler, and hands the result back to the queue: success or failure
(backoff), requeue-after, the one follow-up run for events that arrived meanwhile, and
the keys the reconcile woke (dependents of a server that became Running), with the writes
the reconcile held back for that round trip; the reconcile's first reads can come with
the begin (``piggyback``). Messages are
sent through the ``send`` callable, so this module knows nothing of the transport.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from tango_operator.errors import PermanentError, TemporaryError
from tango_operator.keys import Key
from tango_operator.workqueue import Busy, EnqueueResult, Lease, WorkQueue
from tango_operator.workqueue.fair import URGENT_WAKE_LIMIT, Waker
from tango_operator.workqueue.piggyback import ReadAhead, ScriptCall, WriteBehind
from tango_operator.workqueue.renewal import LeaseRenewer
from tango_operator.workqueue.starting import StartingServers
from workers.reconcile.ports import Outcome

log = logging.getLogger(__name__)

Reconcile = Callable[[Key], Outcome]
Send = Callable[[Key], None]


@dataclass(frozen=True)
class RunReport:
    """What happened to one message, for the task's return value, logs and metrics."""

    key: Key
    result: str
    """``busy`` | ``poisoned`` | ``success`` | ``retry`` | ``error``"""
    state: str | None = None
    message: str = ""
    """The reconciler's reason for a resource left in state Error."""
    queued_at: float | None = None
    queue_wait: float | None = None
    """Seconds from the key being enqueued to this run starting (wall clock of Redis users)."""
    duration: float = 0.0
    failures: int = 0
    follow_up: bool = False
    woken: int = 0


_renewers: weakref.WeakKeyDictionary[WorkQueue, LeaseRenewer] = weakref.WeakKeyDictionary()
_renewers_lock = threading.Lock()


@contextmanager
def _renewed(queue: WorkQueue, lease: Lease) -> Iterator[threading.Event]:
    """Keep ``lease`` renewed by the process's renewer for ``queue``; the event is set if lost."""
    with _renewers_lock:
        renewer = _renewers.get(queue)
        if renewer is None:
            renewer = _renewers[queue] = LeaseRenewer(queue)
    renewal = renewer.register(lease)
    try:
        yield renewal.lost
    finally:
        renewer.unregister(renewal)


def wake(queue: WorkQueue, send: Send, key: Key, *, urgent: bool = False) -> bool:  # noqa: ARG001
    """Enqueue ``key`` and send its message unless one is in flight.

    Returns True when sent. The FIFO dispatch this serves keeps arrival order, so ``urgent`` changes
    nothing here.
    """
    if queue.enqueue(key) is EnqueueResult.SEND:
        send(key)
        return True
    return False


def run(
    key: Key,
    *,
    queue: WorkQueue,
    reconcile: Reconcile,
    send: Send,
    starting: StartingServers | None = None,
    wake_other: Waker | None = None,
    write_behind: WriteBehind | None = None,
    read_ahead: ReadAhead | None = None,
) -> RunReport:
    """Process one message for ``key``.

    ``starting`` records servers whose pods start; ``wake_other`` enqueues the keys a reconcile
    wakes (default: ``wake``, at once), urgently when they are few (``URGENT_WAKE_LIMIT``);
    ``write_behind`` holds the reconcile's writes that go with the release of the lease,
    ``read_ahead`` makes its first reads with the begin of the lease (``piggyback``).
    """
    claim = queue.begin(key, read_ahead=read_ahead)
    if isinstance(claim, Busy):
        log.debug("key busy elsewhere key=%s expires_in=%.1f", key, claim.holder_expires_in)
        return RunReport(key, "busy")
    lease = claim
    if lease.poisoned:
        finished = queue.finish(lease, success=False)
        log.error("key started %d times without finishing, backing off key=%s", lease.attempt, key)
        return RunReport(key, "poisoned", queued_at=lease.queued_at, failures=finished.failures)

    started = time.monotonic()
    queue_wait = None if lease.queued_at is None else max(0.0, time.time() - lease.queued_at)
    outcome: Outcome | None = None
    result, retry_after = "success", None
    preloaded = read_ahead.preloaded(key, lease.read_ahead) if read_ahead else nullcontext()
    collecting = write_behind.collecting() if write_behind else nullcontext(list[ScriptCall]())
    with _renewed(queue, lease) as lost, collecting as held, preloaded:
        try:
            outcome = reconcile(key)
        except TemporaryError as exc:
            result, retry_after = "retry", exc.delay
            log.info("reconcile will be retried key=%s reason=%s", key, exc)
        except PermanentError as exc:
            result = "error"
            log.error("reconcile failed key=%s reason=%s", key, exc)
        except Exception:
            result = "error"
            log.exception("reconcile crashed key=%s", key)
    duration = time.monotonic() - started
    if lost.is_set():
        log.warning("lease lapsed during the reconcile key=%s duration=%.1fs", key, duration)
    registering = outcome.starting if outcome is not None else None
    # a run that registers no starting server forgets the key's entry with its lease; one
    # that does registers it in the same round trip, just before the lease is released
    forget_in = starting.name if starting is not None and registering is None else None
    if starting is not None and registering is not None:
        held = [*held, starting.register_call(key, *registering)]
    if outcome is not None:
        # the latest reconcile saw the world last: what earlier ones scheduled is void
        finished = queue.finish(
            lease,
            success=True,
            requeue_after=outcome.requeue_after,
            supersede=True,
            forget_in=forget_in,
            held=held,
        )
    else:
        finished = queue.finish(
            lease, success=False, requeue_after=retry_after, forget_in=forget_in, held=held
        )
    if finished.follow_up:
        send(key)
    wake_one: Waker = wake_other or functools.partial(wake, queue, send)
    others = outcome.wake if outcome else ()
    urgent = len(others) <= URGENT_WAKE_LIMIT
    woken = sum(1 for other in others if wake_one(other, urgent=urgent))
    return RunReport(
        key,
        result,
        state=outcome.state if outcome else None,
        message=outcome.message if outcome else "",
        queued_at=lease.queued_at,
        queue_wait=queue_wait,
        duration=duration,
        failures=finished.failures,
        follow_up=finished.follow_up,
        woken=woken,
    )
