"""Prometheus metrics of the workers (prometheus_client, multi-process safe).

Updated by ``workers.tasks`` after every run of a key; served by the worker's main process
(``serve``) from the files every Celery child writes under PROMETHEUS_MULTIPROC_DIR, which
``tango-operator worker`` sets up. Queue depth and the other queue-wide figures come from
Redis and are exported by the watcher, which owns the queue's pump.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

RECONCILES = Counter(
    "tango_operator_reconcile_total",
    "Reconciles by kind and result (success, retry, error, busy, poisoned).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "tango_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DRAINED = Counter(
    "tango_operator_drained_keys_total",
    "Keys a task took from the fair queue's lanes itself, after its own (docs/dispatch.md).",
    ["kind"],
)
QUEUE_LATENCY = Histogram(
    "tango_operator_queue_latency_seconds",
    "From a key being enqueued to a worker starting it.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES = Counter(
    "tango_operator_reconcile_retries_total",
    "Reconciles that failed and were scheduled again with backoff.",
    ["kind"],
)
API_RETRIES = Counter(
    "tango_operator_api_request_retries_total",
    "Kubernetes API requests made again after a transient failure (workers.api_retry), "
    "by what failed: the HTTP status or the connection error's type.",
    ["failure"],
)
ACTIVE = Gauge(
    "tango_operator_active_reconciles",
    "Reconciles running now.",
    ["kind"],
    multiprocess_mode="livesum",
)
STATE_TRANSITIONS = Counter(
    "tango_operator_state_total",
    "Reconciles ending in each state, by kind.",
    ["kind", "state"],
)

EVENTS_DROPPED = Counter(
    "tango_operator_events_dropped_total",
    "Kubernetes Events dropped because the backlog of Events to post was full.",
)


def serve(port: int, *, aggregate: bool, address: str = "0.0.0.0") -> None:
    """Serve /metrics, aggregated over all pool processes with ``aggregate``.

    Aggregation needs ``PROMETHEUS_MULTIPROC_DIR`` set (see ``workers.settings``).
    """
    if aggregate:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=address, registry=registry)
    else:
        start_http_server(port, addr=address)
