"""Lists, Tables and watches on the wire.

List bodies, paging and its 410, server-side Tables, the watch stream format, bookmarks and many
watchers.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from kubeemu.testing import KubeEmu
from tests.conftest import Cli
from tests.kubeapi.crds import GROUP, PLURAL, VERSION, widget
from tests.kubeapi.raw import call, status_body

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
CM = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _create(kubeemu: KubeEmu, name: str, namespace: str = "default", **labels: str) -> JsonDict:
    body = {"metadata": {"name": name, "labels": labels}}
    reply = call(kubeemu, "POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
    assert reply.status == 201, reply.body
    created: JsonDict = reply.body
    return created


def _events(kubeemu: KubeEmu, path: str) -> tuple[str, list[JsonDict]]:
    """Read a whole watch stream (the path must carry timeoutSeconds)."""
    with urllib.request.urlopen(kubeemu.url + path, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        return content_type, [json.loads(line) for line in response if line.strip()]


# --- lists ---------------------------------------------------------------------------------------
def test_list_body_kind_order_and_all_namespaces(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", "/api/v1/namespaces", {"metadata": {"name": "aaa"}})
    for namespace, name in (("default", "b"), ("aaa", "z"), ("default", "a")):
        _create(kubeemu, name, namespace)
    listed = call(kubeemu, "GET", CM).body
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert listed["metadata"]["resourceVersion"].isdigit()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    # built-in list items carry no TypeMeta on a real apiserver either
    assert "kind" not in listed["items"][0]
    assert "apiVersion" not in listed["items"][0]
    everywhere = call(kubeemu, "GET", "/api/v1/configmaps").body
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        ("aaa", "z"),
        ("default", "a"),
        ("default", "b"),
    ]


def test_custom_resource_list_items_keep_their_type(kubeemu: KubeEmu, widget_crd: JsonDict) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    call(kubeemu, "POST", path, widget("w"))
    listed = call(kubeemu, "GET", path).body
    assert listed["kind"] == "WidgetList"
    assert (listed["items"][0]["apiVersion"], listed["items"][0]["kind"]) == (
        f"{GROUP}/{VERSION}",
        "Widget",
    )


def test_unsupported_field_selector_is_400(kubeemu: KubeEmu) -> None:
    reply = call(kubeemu, "GET", f"{CM}?fieldSelector=data.a%3D1")
    assert reply.body == status_body(
        400,
        "BadRequest",
        '"data.a" is not a known field selector: only "metadata.name", "metadata.namespace"',
    )
    # kinds with their own field labels (and custom resources) word it differently
    secrets = call(kubeemu, "GET", "/api/v1/namespaces/default/secrets?fieldSelector=data.a%3D1")
    assert secrets.body["message"] == "field label not supported: data.a"
    bad_label = call(kubeemu, "GET", f"{CM}?labelSelector=a%20in%20(b")
    assert bad_label.status == 400


def test_per_kind_field_selectors(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for name, kind in (("opaque", "Opaque"), ("tls", "kubernetes.io/tls")):
        data = {"tls.crt": "", "tls.key": ""} if kind == "kubernetes.io/tls" else {}
        core.create_namespaced_secret(
            "default", {"metadata": {"name": name}, "type": kind, "data": data}
        )
    tls = core.list_namespaced_secret("default", field_selector="type=kubernetes.io/tls")
    assert [s.metadata.name for s in tls.items] == ["tls"]
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    assert core.list_namespaced_pod("default", field_selector="status.phase=Running").items == []
    not_named = core.list_namespaced_secret("default", field_selector="metadata.name!=tls")
    assert [s.metadata.name for s in not_named.items] == ["opaque"]


def test_paging_counts_remaining_items_and_expires_after_compaction(kubeemu: KubeEmu) -> None:
    for index in range(5):
        _create(kubeemu, f"page-{index}")
    first = call(kubeemu, "GET", f"{CM}?limit=2").body
    assert [i["metadata"]["name"] for i in first["items"]] == ["page-0", "page-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    token = urllib.parse.quote(first["metadata"]["continue"])
    second = call(kubeemu, "GET", f"{CM}?limit=2&continue={token}").body
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["remainingItemCount"] == 1

    _create(kubeemu, "page-late")
    kubeemu.compact()
    expired = call(kubeemu, "GET", f"{CM}?limit=2&continue={token}")
    assert expired.status == 410
    assert expired.body["reason"] == "Expired"
    assert expired.body["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result."
    )
    # the 410 carries a token that continues, inconsistently, from the same place
    rest = call(
        kubeemu,
        "GET",
        f"{CM}?limit=10&continue={urllib.parse.quote(expired.body['metadata']['continue'])}",
    ).body
    assert [i["metadata"]["name"] for i in rest["items"]] == [
        "page-2",
        "page-3",
        "page-4",
        "page-late",
    ]


# --- tables --------------------------------------------------------------------------------------
def test_server_side_tables(kubeemu: KubeEmu, widget_crd: JsonDict) -> None:
    _create(kubeemu, "tab")
    table = call(kubeemu, "GET", CM, accept=TABLE).body
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]]
    assert columns == [("Name", "string", "name"), ("Data", "string", ""), ("Age", "string", "")]
    row = table["rows"][0]
    assert row["cells"][:2] == ["tab", 0]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["name"] == "tab"
    assert "data" not in row["object"], "includeObject defaults to Metadata"
    full = call(kubeemu, "GET", f"{CM}/tab?includeObject=Object", accept=TABLE).body
    assert len(full["rows"]) == 1, "a GET of one object is a one-row Table"
    assert full["rows"][0]["object"]["metadata"]["name"] == "tab"

    widgets = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    call(kubeemu, "POST", widgets, widget("w", size=4))
    custom = call(kubeemu, "GET", widgets, accept=TABLE).body
    assert [c["name"] for c in custom["columnDefinitions"]] == ["Name", "Size", "Phase", "Age"]
    name, size, phase, age = custom["rows"][0]["cells"]
    # a date column is rendered by the server as an age, like ConvertToHumanReadableDateType
    assert (name, size, phase) == ("w", 4, None)
    assert age.endswith("s")


def test_kubectl_get_all_namespaces_uses_the_row_objects(kubectl: Cli, kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    _create(kubeemu, "one", "team")
    lines = kubectl.run("get", "configmaps", "-A").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert lines[1].split()[:3] == ["team", "one", "0"]


# --- watches -------------------------------------------------------------------------------------
def test_watch_without_version_starts_with_synthetic_added_events(
    kubeemu: KubeEmu,
) -> None:
    _create(kubeemu, "old-1")
    _create(kubeemu, "old-2")
    content_type, events = _events(kubeemu, f"{CM}?watch=true&timeoutSeconds=1")
    assert content_type == "application/json"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "old-1"),
        ("ADDED", "old-2"),
    ]
    assert all(
        e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1" for e in events
    )
    _, from_zero = _events(kubeemu, f"{CM}?watch=1&resourceVersion=0&timeoutSeconds=1")
    assert len(from_zero) == 2


def test_watch_of_a_named_path_sees_only_that_object(kubeemu: KubeEmu) -> None:
    rv = _create(kubeemu, "other")["metadata"]["resourceVersion"]
    _create(kubeemu, "mine")
    _create(kubeemu, "other-2")
    _, events = _events(kubeemu, f"{CM}/mine?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "mine")]


def test_too_old_resource_version_is_an_error_event(kubeemu: KubeEmu) -> None:
    rv = _create(kubeemu, "a")["metadata"]["resourceVersion"]
    _create(kubeemu, "b")
    current = kubeemu.compact()
    with urllib.request.urlopen(
        kubeemu.url + f"{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=5", timeout=10
    ) as response:
        assert response.status == 200, "the 410 travels inside the stream"
        lines = response.read().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {rv} ({current})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]


@pytest.mark.slow
def test_bookmarks_only_when_asked(
    kubeemu: KubeEmu,
) -> None:  # the fixture's bookmark interval is 1 s
    rv = _create(kubeemu, "bm")["metadata"]["resourceVersion"]
    _, plain = _events(kubeemu, f"{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=2.5")
    assert plain == []
    _, asked = _events(
        kubeemu, f"{CM}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2.5"
    )
    assert len(asked) >= 2, "one per interval, and one before the timeout"
    assert asked[0] == {
        "type": "BOOKMARK",
        "object": {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv, "creationTimestamp": None},
        },
    }


def test_many_concurrent_watches_and_clean_disconnects(kubeemu: KubeEmu) -> None:
    rv = _create(kubeemu, "start")["metadata"]["resourceVersion"]
    watchers = 40
    seen: list[list[str]] = [[] for _ in range(watchers)]

    def watch(index: int) -> None:
        path = f"{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=4"
        _, events = _events(kubeemu, path)
        seen[index] = [e["object"]["metadata"]["name"] for e in events]

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: kubeemu.stats()["openWatches"] >= watchers, "all watches open")
    _create(kubeemu, "broadcast")
    # a client that goes away mid-stream releases its watch
    host, port = urllib.parse.urlsplit(kubeemu.url).netloc.split(":")
    quitter = http.client.HTTPConnection(host, int(port), timeout=10)
    quitter.request("GET", f"{CM}?watch=true&resourceVersion={rv}")
    assert quitter.getresponse().status == 200
    _wait_for(lambda: kubeemu.stats()["openWatches"] == watchers + 1, "the extra watch")
    quitter.close()
    _wait_for(lambda: kubeemu.stats()["openWatches"] == watchers, "disconnect noticed")
    for thread in threads:
        thread.join()
    assert all(names == ["broadcast"] for names in seen), seen
    assert kubeemu.stats()["openWatches"] == 0


def _wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
