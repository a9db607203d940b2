"""``kubernetes.watch.Watch`` against kubeemu: resume, 410 Gone after compaction, relist."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu
from tests.support.workers import EVENTUALLY

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


def _create(core: client.CoreV1Api, name: str) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": name}})


def _names(items: list[Any]) -> set[str]:
    return {item.metadata.name for item in items}


def test_list_watch_compaction_gone_relist_loses_nothing(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    _create(core, "before")
    listed = core.list_namespaced_config_map("default")
    seen = _names(listed.items)
    last_rv = listed.metadata.resource_version

    # watch from the list's RV and see changes made after it
    _create(core, "during-1")
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, "default", resource_version=last_rv, timeout_seconds=5
    ):
        seen.add(event["object"].metadata.name)
        last_rv = event["object"].metadata.resource_version
        if event["object"].metadata.name == "during-1":
            stream.stop()
    assert "during-1" in seen

    # changes while disconnected, then history compaction: resuming from last_rv is 410 Gone
    _create(core, "while-away")
    kubeemu.compact()
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=last_rv
        ):
            pass
    assert caught.value.status == 410

    # relist from scratch, then watch from the new list RV: nothing was lost
    relisted = core.list_namespaced_config_map("default")
    seen |= _names(relisted.items)
    _create(core, "after-relist")
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=relisted.metadata.resource_version,
        timeout_seconds=5,
    ):
        seen.add(event["object"].metadata.name)
        if event["object"].metadata.name == "after-relist":
            stream.stop()
    assert {"before", "during-1", "while-away", "after-relist"} <= seen


def test_watch_event_kinds_and_finalizer_flow(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "fin", "finalizers": ["example.com/x"]}, "data": {}}
    )
    core.delete_namespaced_config_map("fin", "default")
    held = core.read_namespaced_config_map("fin", "default")
    held.metadata.finalizers = None
    core.replace_namespaced_config_map("fin", "default", held)

    events: list[tuple[str, bool]] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5
    ):
        events.append((event["type"], event["object"].metadata.deletion_timestamp is not None))
        if event["type"] == "DELETED":
            stream.stop()
    assert events == [("ADDED", False), ("MODIFIED", True), ("DELETED", True)]


def test_bookmarks_carry_resource_version(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    bookmarks: list[str] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=4,
    ):
        if event["type"] == "BOOKMARK":
            bookmarks.append(event["raw_object"]["metadata"]["resourceVersion"])
            stream.stop()
    assert bookmarks
    assert int(bookmarks[0]) >= int(rv)


def test_dropped_watch_ends_stream_and_resume_sees_later_changes(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    received: list[str] = []
    finished = threading.Event()

    def consume() -> None:
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            timeout_seconds=10,
        ):
            received.append(event["object"].metadata.name)
        finished.set()

    thread = threading.Thread(target=consume)
    thread.start()
    _create(core, "one")
    deadline = time.monotonic() + EVENTUALLY
    while "one" not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kubeemu.drop_watches() >= 1
    # before the watch's own 10 s timeout could end it
    assert finished.wait(5), "a dropped watch must end the HTTP stream"
    thread.join()
    assert received == ["one"]
