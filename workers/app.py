"""The Celery application of the workers: ``python -m workers.run`` runs its worker.

Configured by the core (``tango_operator.celery_app``, the same settings every producer
uses); the tasks are registered from ``workers.tasks`` when a worker starts.
"""

from __future__ import annotations

from tango_operator.celery_app import make_app

app = make_app("tango_operator", include=["workers.tasks"])
