"""A recorder of message deliveries, loaded into the tests' worker processes.

It is loaded with ``celery worker --include tests.support.delivery_trace``
(``tests.support.workers.WorkerPool``).

Celery's ``task_prerun`` fires in the pool process that is about to run a task, before the
task body — so before the work queue's ``begin`` looks at the key. For every reconcile
message one line ``deliver <pid> <member> <time.monotonic>`` is appended to the file named by
``TANGO_DELIVERY_TRACE``. A delivery stamped after some moment is a message the key's queue
handed out after it: the measure of how often an event makes the key run, which the TANGO
stand-in's ``enter`` lines (written in the middle of a reconcile) cannot give exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_prerun

from tango_operator.messages import TASK_NAME
from tests.support.standin_tango import append_line


@task_prerun.connect  # type: ignore[untyped-decorator]
def _record_delivery(task: Any = None, args: Any = None, **_: Any) -> None:
    trace = os.environ.get("TANGO_DELIVERY_TRACE")
    if not trace or task is None or task.name != TASK_NAME or not args:
        return
    append_line(trace, f"deliver {os.getpid()} {args[0]} {time.monotonic():.6f}\n")


def deliveries(trace: Path, member: str) -> list[tuple[int, float]]:
    """(pid, time.monotonic) of every delivery of ``member``'s messages, in the order written.

    Empty before the first.
    """
    if not trace.exists():
        return []
    found = []
    for line in trace.read_text().splitlines():
        _, pid, delivered, stamp = line.split()
        if delivered == member:
            found.append((int(pid), float(stamp)))
    return found
