"""Events posted in the background (``workers.events``), against kubeemu.

A reconcile's Event does not wait for the API server; the Events arrive, in order, once the
backlog drains; a full backlog drops (and counts) instead of blocking; a failed post is
logged and the poster goes on.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client
from prometheus_client import REGISTRY

from kubeemu.testing import KubeEmu
from tests.support.crs import create_device_server
from workers.events import EventRecorder
from workers.kube import Kube


def _events(kube_client: client.ApiClient) -> list[Any]:
    listed = client.CoreV1Api(kube_client).list_namespaced_event("default")
    return sorted(listed.items, key=lambda e: e.metadata.creation_timestamp)


def test_an_event_is_posted_later_and_in_order(
    kubeemu: KubeEmu, kube_client: client.ApiClient
) -> None:
    resource = create_device_server(kube_client, "motor")
    kube = Kube(kube_client, background_events=True)
    assert kube.events is not None
    kubeemu.set_faults([{"latency_ms": 1500, "verbs": ["create"], "resources": ["events"]}])
    for reason in ("Pending", "Running", "Error"):
        kube.emit_event(resource, event_type="Normal", reason=reason, message=reason.lower())
    assert _events(kube_client) == [], "emit_event returned before any POST was answered"
    assert kube.events.flush(30.0)
    kubeemu.clear_faults()
    events = _events(kube_client)
    assert [e.reason for e in events] == ["Pending", "Running", "Error"]
    assert {e.involved_object.uid for e in events} == {resource["metadata"]["uid"]}


def _dropped() -> float:
    return REGISTRY.get_sample_value("tango_operator_events_dropped_total") or 0.0


def test_a_full_backlog_drops_instead_of_blocking() -> None:
    taken = threading.Event()
    release = threading.Event()
    posted: list[str] = []

    def slow_post(event: dict[str, Any]) -> None:
        taken.set()
        release.wait(10)
        posted.append(event["reason"])

    recorder = EventRecorder(slow_post, capacity=2)
    before = _dropped()
    recorder.record({"reason": "r0", "involvedObject": {}})
    assert taken.wait(10), "the poster took the first one"
    for number in range(1, 6):
        recorder.record({"reason": f"r{number}", "involvedObject": {}})  # returns at once
    assert _dropped() - before == 3, "two wait in the backlog, three do not fit"
    release.set()
    assert recorder.flush(10.0)
    assert posted == ["r0", "r1", "r2"], "the ones kept, in order"


def test_a_failed_post_does_not_stop_the_poster() -> None:
    posted: list[str] = []

    def flaky_post(event: dict[str, Any]) -> None:
        if event["reason"] == "boom":
            raise RuntimeError("API server gone")
        posted.append(event["reason"])

    recorder = EventRecorder(flaky_post)
    for reason in ("a", "boom", "b"):
        recorder.record({"reason": reason, "involvedObject": {}})
    assert recorder.flush(10.0)
    assert posted == ["a", "b"]
