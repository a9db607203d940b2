"""The official Python client (typed API) against kubeemu: the wire bodies real code relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kubeapi.crds import GROUP, PLURAL, VERSION, widget

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


def _status(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_replace_with_stale_resource_version_is_409_conflict(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}}
    )
    assert created.metadata.uid
    assert created.metadata.creation_timestamp
    stale = created.metadata.resource_version
    fresh = core.read_namespaced_config_map("cfg", "default")
    fresh.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cfg", "default", fresh)
    assert int(updated.metadata.resource_version) > int(stale)

    fresh.data = {"a": "3"}
    fresh.metadata.resource_version = stale
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cfg", "default", fresh)
    assert caught.value.status == 409
    assert _status(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on configmaps "cfg": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "cfg", "kind": "configmaps"},
        "code": 409,
    }
    assert core.read_namespaced_config_map("cfg", "default").data == {"a": "2"}


def test_create_existing_and_get_missing(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "twice"}})
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {"name": "twice"}})
    assert caught.value.status == 409
    assert _status(caught.value)["reason"] == "AlreadyExists"
    assert _status(caught.value)["message"] == 'configmaps "twice" already exists'

    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("absent", "default")
    assert _status(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "absent" not found',
        "reason": "NotFound",
        "details": {"name": "absent", "kind": "configmaps"},
        "code": 404,
    }

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert caught.value.status == 404
    assert _status(caught.value)["message"] == 'namespaces "nowhere" not found'


def test_no_op_replace_keeps_resource_version(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "same"}, "data": {"k": "v"}}
    )
    again = core.replace_namespaced_config_map("same", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_secret_string_data_is_folded_into_data_and_never_served(
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_secret(
        "default",
        {
            "metadata": {"name": "creds"},
            "data": {"a": "b2xk", "kept": "eA=="},  # "old", "x"
            "stringData": {"a": "new", "pw": "s3cret"},
        },
    )
    assert created.data == {"a": "bmV3", "kept": "eA==", "pw": "czNjcmV0"}
    raw = json.loads(core.read_namespaced_secret("creds", "default", _preload_content=False).data)
    assert "stringData" not in raw
    assert raw["type"] == "Opaque"


def test_status_subresource_is_isolated(
    api_client: client.ApiClient, widget_crd: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(api_client)
    body = widget("w1", size=2)
    body["status"] = {"phase": "ignored-on-create"}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "status" not in created
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["color"] == "red"  # CRD default applied

    with_status = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w1",
        {"status": {"phase": "Ready"}, "spec": {"size": 99}},
    )
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["spec"]["size"] == 2, "a status write must not change spec"
    assert with_status["metadata"]["generation"] == 1

    with_spec = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w1",
        {"spec": {"size": 3}, "status": {"phase": "ignored"}},
    )
    assert with_spec["spec"]["size"] == 3
    assert with_spec["status"] == {"phase": "Ready"}, "the main endpoint must not change status"
    assert with_spec["metadata"]["generation"] == 2


def test_merge_patch_on_custom_resource(
    api_client: client.ApiClient, widget_crd: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("w2", size=1, tags=["a", "b"])
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "w2",
        {"metadata": {"labels": {"team": "x"}}, "spec": {"tags": ["c"], "color": None}},
    )
    assert patched["metadata"]["labels"] == {"team": "x"}
    assert patched["spec"]["tags"] == ["c"]
    assert patched["spec"]["color"] == "red", "a deleted defaulted field is defaulted again"


def test_schema_violation_is_422_with_field_path(
    api_client: client.ApiClient, widget_crd: dict[str, Any]
) -> None:
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, widget("bad", size=-1, color="pink")
        )
    status = _status(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    fields = sorted(cause["field"] for cause in status["details"]["causes"])
    assert fields == ["spec.color", "spec.size"]


def test_finalizer_delays_deletion(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    deleted = core.delete_namespaced_config_map("held", "default")
    assert deleted is not None
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    held.metadata.finalizers = []
    core.replace_namespaced_config_map("held", "default", held)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("held", "default")
    assert caught.value.status == 404
