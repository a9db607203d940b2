"""The Celery task: a thin shell around ``workers.execution.run``.

Receives ``Key.encode()`` from the watcher (or from another worker: a follow-up run, a woken
dependent), runs it under the queue contract with this process's wiring
(``workers.wiring``), sends the follow-up messages through the core's ``Publisher``, and
records metrics; Events waiting to be posted are flushed when a process stops. While keys
wait their turn in the fair queue, the task then drains up to ``TANGO_OPERATOR_DISPATCH_DRAIN``
of them itself, in turn, one run each (``FairQueue.take``; docs/dispatch.md, "Draining a
backlog"), and reports them with its own. Each pool
process also runs the export watcher (``workers.export_watcher``;
``TANGO_OPERATOR_EXPORT_POLL_SECONDS``, default 0.1, 0 turns it off). It never retries
through Celery: delays live in the work queue's Redis sorted set, so no ETA message ever
sits in a worker's memory.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from tango_operator.celeryconfig import VISIBILITY_TIMEOUT
from tango_operator.keys import Key
from tango_operator.messages import TASK_NAME, Publisher, describe, queue_lists
from workers import execution, metrics, settings
from workers.app import app
from workers.export_watcher import ExportWatcher
from workers.reconcile import by_kind
from workers.wiring import Wiring, built, current

log = logging.getLogger(__name__)


DRAIN_SECONDS = VISIBILITY_TIMEOUT / 3
"""A task starts no drained key after this many seconds: its message stays unacknowledged
(``acks_late``) until the task ends, and one unacknowledged for ``VISIBILITY_TIMEOUT`` is
delivered again."""

send = Publisher(app)
"""Follow-ups and wake-ups this worker sends, at the normal priority."""


class ResourceInErrorState(Exception):  # noqa: N818 - Flower shows this name as the outcome
    """A reconcile that ran to its end and left the resource in state Error (a bad spec).

    Raised so that Flower lists the task as FAILURE, with the resource and its message, unlike
    one that left it Running; declared in the task's ``throws``, so the worker logs it at
    INFO without a traceback — nothing is retried, the resource waits for a spec change.
    """


@app.task(  # type: ignore[untyped-decorator]
    name=TASK_NAME, ignore_result=True, throws=(ResourceInErrorState,)
)
def reconcile(member: str) -> dict[str, Any]:
    """Reconcile the key encoded in ``member``: the Celery task every message runs.

    Returns the run's report (kept out of the result backend: ``ignore_result``); Flower
    shows it as the task's result.
    """
    key = Key.decode(member)
    wiring = current()
    _ensure_export_watcher()
    started = time.monotonic()
    report = _run_one(key, wiring)
    drained = _drain(wiring, until=started + DRAIN_SECONDS)
    summary: dict[str, Any] = {
        "resource": describe(key),
        "result": report.result,
        "state": report.state,
        "failures": report.failures,
    }
    if drained:
        # Flower shows them with the task: the keys it took from the lanes after its own
        summary["drained"] = [
            {"resource": describe(r.key), "result": r.result, "state": r.state} for r in drained
        ]
    if report.result in ("error", "poisoned"):
        # the queue has already scheduled the retry; raising only marks the task FAILURE in
        # Flower and `celery events` (a failed task is still acked: the queue owns retries)
        raise ReconcileFailedError(summary)
    if report.state == "Error":
        raise ResourceInErrorState(f"{describe(key)} is in state Error: {report.message}")
    return summary


def _run_one(key: Key, wiring: Wiring) -> execution.RunReport:
    """One run of ``key`` under the queue contract, with its metrics."""
    with metrics.ACTIVE.labels(key.kind).track_inprogress():
        report = execution.run(
            key,
            queue=wiring.queue,
            reconcile=lambda k: by_kind.reconcile(k, wiring.ports),
            send=send,
            starting=wiring.starting,
            wake_other=wiring.waker(send),
            write_behind=wiring.write_behind,
            read_ahead=wiring.read_ahead
            if by_kind.starts_with_owner_and_records(key.kind)
            else None,
        )
    metrics.RECONCILES.labels(key.kind, report.result).inc()
    if report.result in ("success", "retry", "error"):
        metrics.RECONCILE_SECONDS.labels(key.kind).observe(report.duration)
    if report.result in ("retry", "error"):
        metrics.RETRIES.labels(key.kind).inc()
    if report.queue_wait is not None:
        metrics.QUEUE_LATENCY.labels(key.kind).observe(report.queue_wait)
    if report.state:
        metrics.STATE_TRANSITIONS.labels(key.kind, report.state).inc()
    return report


def _drain(wiring: Wiring, *, until: float) -> list[execution.RunReport]:
    """Run up to ``drain`` keys that wait their turn in the fair queue, one after another.

    None is started after ``until`` (``time.monotonic()``).
    Each is taken in the ring's turn order (``FairQueue.take``), never while an urgent message
    waits in Celery, and run as a message's key would be (a failed run backs off in the queue
    as any other). A Redis error ends the drain: the dispatcher still sends the lanes' keys.
    """
    if wiring.fair is None:
        return []
    urgent_list = queue_lists()[0]
    reports: list[execution.RunReport] = []
    for _ in range(wiring.settings.dispatch.drain):
        if time.monotonic() >= until:
            break
        try:
            key = wiring.fair.take(
                unless_waiting=urgent_list, weights=wiring.settings.dispatch.weights
            )
        except Exception as exc:  # the watcher's dispatcher sends the lanes' keys anyway
            log.warning("drain stopped error=%r", exc)
            break
        if key is None:
            break
        metrics.DRAINED.labels(key.kind).inc()
        reports.append(_run_one(key, wiring))
    return reports


class ReconcileFailedError(Exception):
    """A reconcile that failed; its retry is already scheduled in the work queue."""


_export_watcher_lock = threading.Lock()
_export_watcher_pid: int | None = None


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _start_export_watcher(**_: Any) -> None:
    """In every prefork pool process, after the fork, so PyTango is never shared across one."""
    _ensure_export_watcher()


def _ensure_export_watcher() -> None:
    """Run one export watcher in this process (the thread pool's first task starts it).

    With several processes, they take turns, so one looks at a time.
    """
    global _export_watcher_pid  # noqa: PLW0603 - one watcher per process, started once
    with _export_watcher_lock:
        if _export_watcher_pid == os.getpid():
            return
        _export_watcher_pid = os.getpid()
    try:
        wiring = current()
    except Exception:  # the first task reports the same problem, with its key
        log.exception("export watcher not started: the worker's wiring cannot be built")
        return
    interval = wiring.settings.export_poll_seconds
    if interval <= 0:
        return
    watcher = ExportWatcher(
        wiring.starting,
        wiring.ports.tango,
        wiring.ports.index,
        wiring.waker(send),
        interval=interval,
    )
    thread = threading.Thread(
        target=watcher.run, args=(threading.Event(),), name="export-watcher", daemon=True
    )
    thread.start()


EVENT_FLUSH_SECONDS = 5.0
"""How long a stopping worker waits for its backlog of Events to be posted."""


@worker_shutdown.connect  # type: ignore[untyped-decorator]
@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _flush_events(**_: Any) -> None:
    """Post the Events still waiting (``workers.events``) before the process exits.

    The worker's own process with the threads pool; each child with prefork.
    """
    wiring = built()
    events = wiring.events if wiring is not None else None
    if events is not None and not events.flush(EVENT_FLUSH_SECONDS):
        log.warning("events still unposted after %.0fs at shutdown", EVENT_FLUSH_SECONDS)


PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
"""Celery's loggers of the two lines it writes for every task ("received", "succeeded")."""


@worker_init.connect  # type: ignore[untyped-decorator]
def _quiet_per_task_lines(**_: Any) -> None:
    """Leave Celery's two INFO lines per task to ``--loglevel DEBUG``.

    At hundreds of reconciles a second they were most of a worker's log, and a few percent of
    its CPU, saying what Flower and the reconcile metrics show better. Failures are logged at
    ERROR, as before. Runs before the worker builds its task strategies, which read the level.
    """
    if logging.getLogger("celery").getEffectiveLevel() > logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect  # type: ignore[untyped-decorator]
def _serve_metrics(**_: Any) -> None:
    loaded = settings.for_process()
    if loaded.metrics_port:
        metrics.serve(loaded.metrics_port, aggregate=loaded.metrics_multiprocess)
        log.info("metrics served port=%s", loaded.metrics_port)
