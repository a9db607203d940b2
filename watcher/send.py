"""The watcher's only use of Celery: publishing one reconcile message for a key.

Called by ``watcher.enqueue`` when the work queue says a key must be sent; the message goes to
the Redis broker, JSON-serialised, on the workers' queue (``workers.contract``): at the
urgent priority for a dependency wake-up the dispatcher was asked to hurry
(``watcher.dispatch``), at the normal one otherwise.
"""

from __future__ import annotations

from celery import Celery

from workers.contract import (
    BROKER_PRIORITY_OPTIONS,
    PRIORITY_NORMAL,
    PRIORITY_URGENT,
    QUEUE_NAME,
    TASK_NAME,
    Key,
    celery_url,
)


class Sender:
    def __init__(self, redis_url: str) -> None:
        self.app = Celery("tango_operator_watcher", broker=celery_url(redis_url))
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
            task_send_sent_event=True,
            broker_transport_options=dict(BROKER_PRIORITY_OPTIONS),
        )

    def __call__(self, key: Key) -> None:
        self._send(key, PRIORITY_NORMAL)

    def urgent(self, key: Key) -> None:
        """Ahead of the messages already queued (a woken dependent, ``watcher.dispatch``)."""
        self._send(key, PRIORITY_URGENT)

    def _send(self, key: Key, priority: int) -> None:
        self.app.send_task(TASK_NAME, args=[key.encode()], queue=QUEUE_NAME, priority=priority)
