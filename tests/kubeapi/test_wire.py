"""Wire-level behaviour that the client libraries hide.

Discovery and OpenAPI documents, watch timeouts and selector transitions, list resourceVersion=0,
delete bodies, name validation and CRD naming rules (raw HTTP with urllib, and the Python client).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from kubeemu.testing import KubeEmu

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]


def _get(kubeemu: KubeEmu, path: str) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(kubeemu.url + path, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        if not error.headers["Content-Type"].startswith("application/json"):
            return error.code, dict(error.headers), payload.decode()
        return error.code, dict(error.headers), json.loads(payload)


def test_core_discovery_is_legacy_json(kubeemu: KubeEmu) -> None:
    status, headers, body = _get(kubeemu, "/api")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body["kind"] == "APIVersions"
    assert body["versions"] == ["v1"]
    _, _, groups = _get(kubeemu, "/apis")
    apps = next(g for g in groups["groups"] if g["name"] == "apps")
    assert apps["preferredVersion"] == apps["versions"][0]
    _, _, resources = _get(kubeemu, "/apis/apps/v1")
    names = {r["name"]: r for r in resources["resources"]}
    assert names["statefulsets/status"]["verbs"] == ["get", "patch", "update"]
    assert names["statefulsets/scale"]["group"] == "autoscaling"
    status, _, missing = _get(kubeemu, "/apis/apps/v9")
    assert status == 404
    assert missing["reason"] == "NotFound", "a built-in group answers with a Status"
    status, headers, text = _get(kubeemu, "/apis/nowhere.example.com/v1")
    assert (status, text) == (404, "404 page not found\n"), "any other group: Go's http.NotFound"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_openapi_v3_has_patch_with_field_validation(kubeemu: KubeEmu) -> None:
    _, _, root = _get(kubeemu, "/openapi/v3")
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    _, _, document = _get(kubeemu, url)
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "StatefulSet",
    }
    assert "fieldValidation" in {p["name"] for p in patch.get("parameters", [])} | {
        p["name"]
        for p in document["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"].get(
            "parameters", []
        )
    }
    status, _, _ = _get(kubeemu, "/openapi/v2")
    assert status == 404, "only v3 is served; kubectl and helm use it"


def test_list_with_resource_version_zero_is_current(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "rv0"}})
    listed = core.list_namespaced_config_map("default", resource_version="0")
    assert [c.metadata.name for c in listed.items] == ["rv0"]
    assert int(listed.metadata.resource_version) >= int(listed.items[0].metadata.resource_version)


def test_watch_timeout_ends_the_stream(kubeemu: KubeEmu) -> None:
    watch_seconds, socket_timeout = 1, 60
    started = time.monotonic()
    request = urllib.request.Request(
        kubeemu.url
        + f"/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds={watch_seconds}"
    )
    # the server ends the stream: a read that returns, not the client's socket timeout
    with urllib.request.urlopen(request, timeout=socket_timeout) as response:
        assert response.read() == b""
    assert time.monotonic() - started >= watch_seconds * 0.9, "not before the timeout"


def test_selector_watch_sees_objects_enter_and_leave(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    seen: list[tuple[str, str]] = []
    url = (
        kubeemu.url + "/api/v1/namespaces/default/configmaps"
        "?watch=1&labelSelector=team%3Da&timeoutSeconds=3"
    )

    def watch() -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            for line in response:
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "w", "labels": {"team": "b"}}}
    )
    core.patch_namespaced_config_map("w", "default", {"metadata": {"labels": {"team": "a"}}})
    core.patch_namespaced_config_map("w", "default", {"metadata": {"labels": {"team": "b"}}})
    thread.join()
    assert seen == [("ADDED", "w"), ("DELETED", "w")]


def test_delete_answers_a_status_or_the_object(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "gone"}})
    deleted = api_client.sanitize_for_serialization(
        core.delete_namespaced_config_map("gone", "default")
    )
    assert deleted["status"] == "Success"
    assert deleted["details"]["name"] == "gone"
    core.create_namespaced_service_account("default", {"metadata": {"name": "sa"}})
    returned = core.delete_namespaced_service_account("sa", "default")
    assert returned.metadata.name == "sa", "service accounts return the deleted object"


@pytest.mark.parametrize(
    ("name", "labels"),
    [("Bad_Name", {}), ("ok", {"bad key!": "v"}), ("ok", {"k": "x" * 64})],
)
def test_names_and_labels_are_validated(
    api_client: client.ApiClient, name: str, labels: dict[str, str]
) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["reason"] == "Invalid"


def test_crd_name_must_be_plural_dot_group(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    crd: JsonDict = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    with pytest.raises(client.ApiException) as caught:
        extensions.create_custom_resource_definition(crd)
    assert caught.value.status == 422
    assert "metadata.name" in json.loads(caught.value.body)["message"]
