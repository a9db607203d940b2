"""Prometheus metrics of the watcher, including the queue-wide figures from Redis.

Incremented by ``watcher.sources`` (watch restarts, relists, events), ``watcher.batch``
(the sizes of the bursts of events handled together), ``watcher.enqueue``
(keys offered to the queue, failures), ``watcher.leader`` (leadership) and
``watcher.resync``; the queue gauges are refreshed from ``WorkQueue.stats()`` by
``watcher.pump``; the custom resources' states, time to Running and dependency waits come
from the objects ``watcher.main`` hands to ``CUSTOM_RESOURCES``. ``watcher.main`` serves
them on TANGO_OPERATOR_METRICS_PORT when set.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter as Counter_
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from tango_operator.device_states import counts

JsonDict = dict[str, Any]

WATCH_RESTARTS = Counter(
    "tango_operator_watch_restarts_total",
    "Watch streams restarted, by resource and reason.",
    ["resource", "reason"],
)
RELISTS = Counter(
    "tango_operator_relists_total", "Full lists (start and after 410 Gone).", ["resource"]
)
RELIST_DELETIONS = Counter(
    "tango_operator_relist_deletions_total",
    "Objects found gone by a relist (deleted while no watch was open), by resource.",
    ["resource"],
)
EVENTS = Counter(
    "tango_operator_watch_events_total", "Watch events by resource and type.", ["resource", "type"]
)
EVENT_BURSTS = Histogram(
    "tango_operator_watch_event_burst_size",
    "Watch events handled together, their Redis records in one round trip (watcher.batch).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
ENQUEUED = Counter(
    "tango_operator_enqueued_total",
    "Keys offered to the work queue, by result (send or pending, duplicate, dirty).",
    ["kind", "result"],
)
ENQUEUE_ERRORS = Counter(
    "tango_operator_enqueue_errors_total",
    "Keys that could not be queued (stage=queue: Redis) or whose message was not sent "
    "(stage=send: the key stays marked queued until it is stale).",
    ["kind", "stage"],
)
LEADER = Gauge("tango_operator_leader", "1 while this watcher replica leads.")
LOST_MESSAGES = Counter(
    "tango_operator_lost_messages_total",
    "Reconcile messages found lost on their way to a worker, and sent again.",
)
RESYNCS = Counter("tango_operator_resyncs_total", "Periodic and post-relist resyncs.")
LAST_RESYNC = Gauge(
    "tango_operator_last_resync_timestamp_seconds", "Unix time of the last completed resync."
)
QUEUE = Gauge(
    "tango_operator_queue_keys",
    "Keys in the work queue by stage (queued, delayed, due, processing, failing).",
    ["stage"],
)


# --- custom resources by namespace and state; time to Running; dependency waits -------------
# Fed by ``watcher.main`` with every DeviceServer / DatabaseDS it lists or watches while it
# leads (the objects carry ``status.state``); forgotten when it stops leading, so a standby
# exports no CR series and the leader's are the cluster's.

TIME_TO_RUNNING = Histogram(
    "tango_operator_time_to_running_seconds",
    "From a custom resource's creationTimestamp to the first time the watcher sees it Running.",
    ["kind"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
DEPENDENCY_WAIT = Histogram(
    "tango_operator_dependency_wait_seconds",
    "Time a DeviceServer spent in state Waiting before it went on to Pending or Running.",
    ["kind"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
_CUSTOM_KINDS = frozenset({"DeviceServer", "DatabaseDS"})
_DONE_WAITING = frozenset({"Pending", "Running"})


def _timestamp(text: object) -> float | None:
    """RFC 3339 (``2024-01-02T03:04:05Z``) as Unix time; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _condition_since(obj: JsonDict, condition_type: str) -> float | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == condition_type:
            return _timestamp(condition.get("lastTransitionTime"))
    return None


@dataclass
class _Seen:
    uid: str
    state: str
    waiting_since: float | None = None
    reached_running: bool = False
    devices: str = ""
    """``status.deviceSummary`` (interned: most servers share a handful of texts)."""


class CustomResources:
    """The last state seen of every custom resource, and the transitions between states.

    The states are exported as ``tango_operator_custom_resources{kind, namespace, state}`` (a
    count) at scrape time, and each DeviceServer's devices by TANGO State as
    ``tango_operator_devices{namespace, deviceserver, state}`` (from ``status.deviceSummary``);
    the transitions it sees are observed into TIME_TO_RUNNING and DEPENDENCY_WAIT.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self.selected: Callable[[str], bool] = lambda _namespace: True
        """Which namespaces are the operator's (``TANGO_OPERATOR_NAMESPACE_SELECTOR``): every
        resource is tracked, so a namespace that starts matching is counted at once, but
        only those of selected namespaces are exported and timed."""

    def observe(self, kind: str, event_type: str, obj: JsonDict) -> None:
        """Take in one event on a custom resource.

        Records its state, and observes the time to Running or the dependency wait it ends.
        """
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if kind not in _CUSTOM_KINDS or not namespace or not name:
            return
        key = (kind, str(namespace), str(name))
        with self._lock:
            if event_type == "DELETED":
                self._seen.pop(key, None)
                return
            uid = str(meta.get("uid") or "")
            status = obj.get("status") or {}
            state = str(status.get("state") or "Unknown")
            devices = sys.intern(str(status.get("deviceSummary") or ""))
            before = self._seen.get(key)
            if before is not None and before.uid != uid:
                before = None  # deleted and created again under the same name
            now = self._clock()
            seen = _Seen(uid, state, devices=devices)
            if before is None:
                # first sight (a new object, or any object after a relist or a failover)
                seen.reached_running = state == "Running"
                if state == "Waiting":
                    seen.waiting_since = _condition_since(obj, "DependenciesReady") or now
                self._seen[key] = seen
                return
            seen.reached_running = before.reached_running
            seen.waiting_since = before.waiting_since
            timed = self.selected(str(namespace))
            if state == "Waiting" and before.state != "Waiting":
                seen.waiting_since = now
            elif before.state == "Waiting" and state != "Waiting":
                if timed and state in _DONE_WAITING and before.waiting_since is not None:
                    DEPENDENCY_WAIT.labels(kind).observe(max(0.0, now - before.waiting_since))
                seen.waiting_since = None
            if state == "Running" and not before.reached_running:
                created = _timestamp(meta.get("creationTimestamp"))
                if timed and created is not None:
                    TIME_TO_RUNNING.labels(kind).observe(max(0.0, now - created))
                seen.reached_running = True
            self._seen[key] = seen

    def forget_all(self) -> None:
        """Leadership lost: another replica exports the cluster's view now."""
        with self._lock:
            self._seen.clear()

    def collect(self) -> Iterator[Metric]:
        """Yield the CR counts by kind, namespace and state, and the device states (the scrape)."""
        family = GaugeMetricFamily(
            "tango_operator_custom_resources",
            "DeviceServers and DatabaseDSs by namespace and status.state (Unknown: no status "
            "yet), as the leading watcher last saw them.",
            labels=["kind", "namespace", "state"],
        )
        with self._lock:
            selected = [(k, s) for k, s in self._seen.items() if self.selected(k[1])]
        totals = Counter_((k[0], k[1], s.state) for k, s in selected)
        summaries = [((k[1], k[2]), s.devices) for k, s in selected if s.devices]
        for (kind, namespace, state), count in sorted(totals.items()):
            family.add_metric([kind, namespace, state], count)
        yield family
        devices = GaugeMetricFamily(
            "tango_operator_devices",
            "Devices of each DeviceServer by TANGO State (ON, FAULT, ALARM, UNKNOWN: not read, "
            "...), from status.deviceSummary, as the leading watcher last saw them.",
            labels=["namespace", "deviceserver", "state"],
        )
        for (namespace, name), summary in sorted(summaries):
            for device_state, count in sorted(counts(summary).items()):
                devices.add_metric([namespace, name, device_state], count)
        yield devices

    def describe(self) -> Iterator[Metric]:
        """Yield the families without samples: the registry learns their names at registration."""
        yield GaugeMetricFamily("tango_operator_custom_resources", "", labels=[])
        yield GaugeMetricFamily("tango_operator_devices", "", labels=[])


CUSTOM_RESOURCES = CustomResources()
REGISTRY.register(CUSTOM_RESOURCES)
DISPATCH_WINDOW = Gauge(
    "tango_operator_dispatch_window",
    "Keys the fair dispatcher lets be in flight (sent to Celery, not yet started) at once.",
)
DISPATCHED = Counter(
    "tango_operator_dispatched_total", "Keys sent to Celery by the fair dispatcher.", ["kind"]
)
PENDING = Gauge(
    "tango_operator_pending_keys",
    "Keys waiting in Redis for the fair dispatcher, by namespace.",
    ["namespace"],
)
