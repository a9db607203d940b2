"""The custom-resource series of watcher.metrics.CustomResources.

CRs by namespace and state, time to Running and dependency waits, from the objects the watcher lists
and watches (the series the chart's Grafana dashboard draws).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from watcher import metrics
from watcher.metrics import CustomResources

JsonDict = dict[str, Any]
T0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _cr(
    name: str,
    state: str | None,
    *,
    kind: str = "DeviceServer",
    namespace: str = "lab",
    uid: str = "u1",
    conditions: list[JsonDict] | None = None,
) -> JsonDict:
    obj: JsonDict = {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
    }
    if state is not None:
        obj["status"] = {"state": state, "conditions": conditions or []}
    return obj


def _samples(collector: CustomResources, name: str) -> list[Any]:
    registry = CollectorRegistry()
    registry.register(collector)
    return [s for family in registry.collect() if family.name == name for s in family.samples]


def _counts(collector: CustomResources) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["kind"], s.labels["namespace"], s.labels["state"]): s.value
        for s in _samples(collector, "tango_operator_custom_resources")
    }


def _devices(collector: CustomResources) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["namespace"], s.labels["deviceserver"], s.labels["state"]): s.value
        for s in _samples(collector, "tango_operator_devices")
    }


def _histogram(histogram: Histogram, kind: str) -> tuple[float, float]:
    """(count, sum) of one kind's series."""
    samples = {
        s.name.rpartition("_")[2]: s.value
        for family in histogram.labels(kind).collect()
        for s in family.samples
    }
    return samples["count"], samples["sum"]


def test_counts_by_kind_namespace_and_state() -> None:
    crs = CustomResources()
    crs.observe("DeviceServer", "ADDED", _cr("a", None))
    crs.observe("DeviceServer", "ADDED", _cr("b", "Waiting", uid="u2"))
    crs.observe("DeviceServer", "ADDED", _cr("c", "Waiting", namespace="other", uid="u3"))
    crs.observe("DatabaseDS", "ADDED", _cr("db", "Running", kind="DatabaseDS", uid="u4"))
    crs.observe("StatefulSet", "ADDED", _cr("child", "Running", uid="u5"))  # not a CR
    assert _counts(crs) == {
        ("DeviceServer", "lab", "Unknown"): 1,
        ("DeviceServer", "lab", "Waiting"): 1,
        ("DeviceServer", "other", "Waiting"): 1,
        ("DatabaseDS", "lab", "Running"): 1,
    }
    crs.observe("DeviceServer", "MODIFIED", _cr("a", "Waiting"))
    crs.observe("DeviceServer", "DELETED", _cr("b", "Waiting", uid="u2"))
    assert _counts(crs)[("DeviceServer", "lab", "Waiting")] == 1
    crs.forget_all()
    assert _counts(crs) == {}


def test_devices_by_tango_state_per_device_server() -> None:
    crs = CustomResources()
    motors = _cr("motors", "Running")
    motors["status"]["deviceSummary"] = "2/3 ON, 1 FAULT"
    crs.observe("DeviceServer", "ADDED", motors)
    camera = _cr("camera", "Running", namespace="other", uid="u2")
    camera["status"]["deviceSummary"] = "1/1 ON"
    crs.observe("DeviceServer", "ADDED", camera)
    crs.observe("DeviceServer", "ADDED", _cr("waiter", "Waiting", uid="u3"))
    assert _devices(crs) == {
        ("lab", "motors", "ON"): 2,
        ("lab", "motors", "FAULT"): 1,
        ("other", "camera", "ON"): 1,
    }
    # the fault is cleared; the camera stops running (its status drops the summary)
    motors["status"]["deviceSummary"] = "3/3 ON"
    crs.observe("DeviceServer", "MODIFIED", motors)
    crs.observe("DeviceServer", "MODIFIED", _cr("camera", "Pending", namespace="other", uid="u2"))
    assert _devices(crs) == {("lab", "motors", "ON"): 3}
    # a namespace the operator does not select is not exported
    crs.selected = lambda namespace: namespace != "lab"
    assert _devices(crs) == {}


def test_time_to_running_once_per_object() -> None:
    clock = Clock()
    crs = CustomResources(clock)
    before = _histogram(metrics.TIME_TO_RUNNING, "DatabaseDS")
    crs.observe("DatabaseDS", "ADDED", _cr("db", None, kind="DatabaseDS"))
    clock.now = T0 + 42
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Building", kind="DatabaseDS"))
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Running", kind="DatabaseDS"))
    count, total = _histogram(metrics.TIME_TO_RUNNING, "DatabaseDS")
    assert (count - before[0], total - before[1]) == (1, 42)
    # back to Building (a pod restart) and Running again: not a new "time to Running"
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Building", kind="DatabaseDS"))
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Running", kind="DatabaseDS"))
    assert _histogram(metrics.TIME_TO_RUNNING, "DatabaseDS")[0] == count
    # first seen already Running (after a failover): nothing to measure
    crs.observe("DatabaseDS", "ADDED", _cr("old", "Running", kind="DatabaseDS", uid="u9"))
    assert _histogram(metrics.TIME_TO_RUNNING, "DatabaseDS")[0] == count
    # deleted and created again under the same name: measured again
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Building", kind="DatabaseDS", uid="new"))
    crs.observe("DatabaseDS", "MODIFIED", _cr("db", "Running", kind="DatabaseDS", uid="new"))
    assert _histogram(metrics.TIME_TO_RUNNING, "DatabaseDS")[0] == count + 1


def test_dependency_wait_from_entering_to_leaving_waiting() -> None:
    clock = Clock()
    crs = CustomResources(clock)
    before = _histogram(metrics.DEPENDENCY_WAIT, "DeviceServer")
    crs.observe("DeviceServer", "ADDED", _cr("w", "Building"))
    clock.now = T0 + 10
    crs.observe("DeviceServer", "MODIFIED", _cr("w", "Waiting"))
    clock.now = T0 + 10.25
    crs.observe("DeviceServer", "MODIFIED", _cr("w", "Pending"))
    count, total = _histogram(metrics.DEPENDENCY_WAIT, "DeviceServer")
    assert (count - before[0], total - before[1]) == (1, 0.25)
    # a wait that ends in Error (the spec changed) is no dependency wait
    crs.observe("DeviceServer", "MODIFIED", _cr("w", "Waiting"))
    crs.observe("DeviceServer", "MODIFIED", _cr("w", "Error"))
    assert _histogram(metrics.DEPENDENCY_WAIT, "DeviceServer")[0] == count


def test_wait_seen_first_mid_way_starts_at_the_condition() -> None:
    clock = Clock()
    crs = CustomResources(clock)
    before = _histogram(metrics.DEPENDENCY_WAIT, "DeviceServer")
    waiting = _cr(
        "late",
        "Waiting",
        conditions=[
            {
                "type": "DependenciesReady",
                "status": "False",
                "lastTransitionTime": "2025-01-01T00:00:30Z",
            }
        ],
    )
    clock.now = T0 + 100
    crs.observe("DeviceServer", "ADDED", waiting)  # e.g. the new leader's first list
    clock.now = T0 + 130
    crs.observe("DeviceServer", "MODIFIED", _cr("late", "Running"))
    count, total = _histogram(metrics.DEPENDENCY_WAIT, "DeviceServer")
    assert (count - before[0], total - before[1]) == (1, 100)
