"""The Celery task: a thin shell around ``workers.runner.run``.

Receives ``Key.encode()`` from the watcher (or from another worker: a follow-up run, a woken
dependent), runs it under the queue contract with this process's runtime, sends the
follow-up messages, and records metrics. Each pool process also runs the export watcher
(``workers.exports``; ``TANGO_OPERATOR_EXPORT_POLL_SECONDS``, default 0.1, 0 turns it off).
It never retries through Celery: delays live in
the work queue's Redis sorted set, so no ETA message ever sits in a worker's memory.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_init, worker_process_init

from workers import metrics, runner
from workers.app import app
from workers.contract import PRIORITY_NORMAL, QUEUE_NAME, TASK_NAME, Key
from workers.exports import DEFAULT_INTERVAL, ExportWatcher
from workers.reconcile import dispatch
from workers.runtime import current

log = logging.getLogger(__name__)


def send(key: Key) -> None:
    app.send_task(TASK_NAME, args=[key.encode()], queue=QUEUE_NAME, priority=PRIORITY_NORMAL)


@app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile(member: str) -> dict[str, Any]:
    key = Key.decode(member)
    runtime = current()
    with metrics.ACTIVE.labels(key.kind).track_inprogress():
        report = runner.run(
            key,
            queue=runtime.queue,
            reconcile=lambda k: dispatch.reconcile(k, runtime.ports),
            send=send,
            starting=runtime.starting,
            wake_other=runtime.waker(send),
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
    summary = {
        "key": str(key),
        "result": report.result,
        "state": report.state,
        "failures": report.failures,
    }
    if report.result in ("error", "poisoned"):
        # the queue has already scheduled the retry; raising only marks the task FAILURE in
        # Flower and `celery events` (a failed task is still acked: the queue owns retries)
        raise ReconcileFailedError(summary)
    return summary


class ReconcileFailedError(Exception):
    """A reconcile that failed; its retry is already scheduled in the work queue."""


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _start_export_watcher(**_: Any) -> None:
    """In every pool process (after the fork, so PyTango is never shared across one); the
    processes take turns, so one looks at a time."""
    interval = float(os.environ.get("TANGO_OPERATOR_EXPORT_POLL_SECONDS", DEFAULT_INTERVAL))
    if interval <= 0:
        return
    try:
        runtime = current()
    except Exception:  # the first task reports the same problem, with its key
        log.exception("export watcher not started: the worker's runtime cannot be built")
        return
    watcher = ExportWatcher(
        runtime.starting,
        runtime.ports.tango,
        runtime.ports.index,
        runtime.waker(send),
        interval=interval,
    )
    thread = threading.Thread(
        target=watcher.run, args=(threading.Event(),), name="export-watcher", daemon=True
    )
    thread.start()


@worker_init.connect  # type: ignore[untyped-decorator]
def _serve_metrics(**_: Any) -> None:
    port = os.environ.get("TANGO_OPERATOR_METRICS_PORT")
    if port:
        metrics.serve(int(port))
        log.info("metrics served port=%s", port)
