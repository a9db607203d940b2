"""``python -m workers.flower [FLOWER OPTIONS]``: Celery Flower on the operator's queue.

The broker comes from ``tango_operator.celeryconfig`` (``TANGO_OPERATOR_REDIS_URL`` and
``TANGO_OPERATOR_REDIS_PASSWORD``, like the watcher and the workers); no task module is
imported, since Flower only reads the workers' events, so the Flower image needs Celery and
Flower but neither the reconcilers nor PyTango. Flower's own options pass through unchanged
(``--max_tasks``, ``--purge_offline_workers``, ``--basic_auth`` or ``FLOWER_BASIC_AUTH`` …).

One change to Flower: it serves ``/metrics`` without authentication even when basic auth is
on (only ``/healthcheck`` is meant to be open, for probes). The handler is replaced by one
that asks for the same credentials as every other page.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flower import urls
from flower.views import monitor
from tornado import web

from tango_operator.celery_app import make_app

# kombu's own transport: Flower reconnects to the broker from the URL, which names it
app = make_app("tango_operator_flower", shared_clients=False)


class AuthenticatedMetrics(monitor.Metrics):  # type: ignore[misc]  # flower is untyped
    """Flower's Prometheus endpoint behind Flower's authentication (401 without it)."""

    @web.authenticated
    async def get(self) -> None:
        """Serve Flower's metrics to an authenticated client (else 401)."""
        await super().get()


def protect_metrics() -> None:
    """Route ``/metrics`` to ``AuthenticatedMetrics`` (before Flower builds its app)."""
    for index, handler in enumerate(urls.handlers):
        if isinstance(handler, tuple) and handler[1] is monitor.Metrics:
            urls.handlers[index] = (handler[0], AuthenticatedMetrics, *handler[2:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run Flower with ``argv`` (Flower's own options) on the operator's broker; the exit status."""
    protect_metrics()
    arguments = list(sys.argv[1:] if argv is None else argv)
    status = app.start(["flower", *arguments])
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
