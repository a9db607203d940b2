"""The reconcile message: the one Celery task, its queue and priorities, and how it is sent.

Producers are the watcher's dispatcher (``watcher.dispatch``, ``watcher.enqueue``) and the
workers' own follow-ups and wake-ups (``workers.tasks``); both send through a
:class:`Publisher` over a Celery app configured from ``tango_operator.celeryconfig``, so
the message (task name, JSON argument ``Key.encode()``, queue, priority) is built in one
place. The consumer is the task ``workers.tasks.reconcile``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tango_operator.keys import Key

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "tango_operator.reconcile"
"""The one Celery task: its only argument is ``Key.encode()``."""
QUEUE_NAME = "tango-operator"
"""The Celery queue the watcher's dispatcher feeds and the workers consume."""

PRIORITY_URGENT = 0
"""A dependency wake-up of a few keys (``tango_operator.workqueue.fair``): taken first."""
PRIORITY_NORMAL = 5
"""Every other reconcile message."""
PRIORITY_SEPARATOR = "\x06\x16"
BROKER_PRIORITY_OPTIONS: Mapping[str, object] = {
    "priority_steps": [PRIORITY_URGENT, PRIORITY_NORMAL],
    "sep": PRIORITY_SEPARATOR,
}
"""kombu's Redis transport keeps one list per priority step and a consumer pops them in
step order, lowest first: urgent messages live in the list named ``QUEUE_NAME``, the others
in ``QUEUE_NAME + sep + "5"``. Senders and consumers must agree on these options (a sender
picks the list), so every Celery app of the operator uses them (``broker_transport_options``);
kombu's own default separator is pinned so that ``queue_lists`` stays right. A message sent
without a priority counts as urgent (kombu's default, 0; Celery's ``send_task`` does not
apply ``task_default_priority``), so every sender of the operator names one."""


def queue_lists() -> tuple[str, str]:
    """The Redis lists holding the Celery queue's messages: urgent first, then normal."""
    return QUEUE_NAME, f"{QUEUE_NAME}{PRIORITY_SEPARATOR}{PRIORITY_NORMAL}"


def describe(key: Key) -> str:
    """``DeviceServer ns/name``: a key as Flower lists it (the task's ``argsrepr``)."""
    return f"{key.kind} {key.namespace}/{key.name}"


class Publisher:
    """Sends reconcile messages for keys through one Celery app.

    A message is built and sent with the app's own messaging helpers
    (``app.amqp.create_task_message`` and ``app.amqp.send_task_message``: the two halves of
    ``send_task``), so its format, serializer, retry policy and publish signals are Celery's.
    ``send_task`` around them also re-reads a dozen settings, routes the task by name,
    declares the queue again and makes a result object for every message; the watcher sends
    one or two messages per DeviceServer, and those steps were 40 % of its CPU per message
    (343 against 207 µs, docs/benchmarks.md). Here the queue is resolved once, and it is not
    declared by the sender: a message goes to the anonymous exchange, straight onto the
    queue's Redis list, and the workers declare the queue they consume. The task id is the
    standard library's ``uuid4``, as Celery's own: this module is imported by the supervisor
    of every pod (``tango_operator.cli``), which must not load kombu (6-7 MiB per pod).
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._queue: object | None = None

    def __call__(self, key: Key) -> None:
        """Send at the normal priority, behind the messages already queued."""
        self.send(key, urgent=False)

    def urgent(self, key: Key) -> None:
        """Send ahead of the messages already queued (a woken dependent)."""
        self.send(key, urgent=True)

    def send(self, key: Key, *, urgent: bool) -> None:
        """One message for ``key``; kombu picks its Redis list by the priority."""
        amqp = self.app.amqp
        if self._queue is None:
            self._queue = amqp.queues[QUEUE_NAME]
        # sent from inside a reconcile (a follow-up, a wake-up): Flower links it to that task
        parent_id = root_id = None
        if (parent := self.app.current_worker_task) is not None:
            parent_id = parent.request.id
            root_id = parent.request.root_id or parent_id
        message = amqp.create_task_message(
            str(uuid.uuid4()),
            TASK_NAME,
            [key.encode()],
            {},
            # what Flower and the worker's log show as the task's arguments: the resource
            argsrepr=describe(key),
            kwargsrepr="{}",
            root_id=root_id,
            parent_id=parent_id,
            ignore_result=True,
        )
        with self.app.producer_or_acquire() as producer:
            amqp.send_task_message(
                producer,
                TASK_NAME,
                message,
                queue=self._queue,
                priority=PRIORITY_URGENT if urgent else PRIORITY_NORMAL,
                declare=(),
            )
