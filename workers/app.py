"""The Celery application of the workers: ``celery -A workers.app worker`` runs it.

Configuration comes from ``workers.celeryconfig``; the tasks are registered from
``workers.tasks`` when a worker starts.
"""

from __future__ import annotations

from celery import Celery

app = Celery("tango_operator", include=["workers.tasks"])
app.config_from_object("workers.celeryconfig")
