"""``kubernetes.dynamic.DynamicClient``: discovery, server-side apply semantics, SMP → 415."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from tests.kubeapi.crds import GROUP, KIND, VERSION, widget

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


@pytest.fixture
def dyn(api_client: client.ApiClient, tmp_path: Path) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))


def _config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_discovery_finds_builtins_and_crds(
    dyn: dynamic.DynamicClient, widget_crd: dict[str, Any]
) -> None:
    statefulsets = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    assert statefulsets.namespaced
    assert statefulsets.name == "statefulsets"
    widgets = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind=KIND)
    assert widgets.name == "widgets"
    assert widgets.short_names == ["wd"]
    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    assert leases.namespaced


def test_server_side_apply_create_reapply_conflict_force(dyn: dynamic.DynamicClient) -> None:
    config_maps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = _config_map("ssa", {"owner": "a", "shared": "1"})
    created = config_maps.server_side_apply(body=body, namespace="default", field_manager="mgr-a")
    rv = created.metadata.resourceVersion
    managers = {entry["manager"]: entry for entry in created.to_dict()["metadata"]["managedFields"]}
    assert managers["mgr-a"]["operation"] == "Apply"
    assert managers["mgr-a"]["fieldsV1"] == {"f:data": {"f:owner": {}, "f:shared": {}}}

    again = config_maps.server_side_apply(body=body, namespace="default", field_manager="mgr-a")
    assert again.metadata.resourceVersion == rv, "re-applying unchanged must not bump the RV"

    with pytest.raises(ApiException) as caught:
        config_maps.server_side_apply(
            body=_config_map("ssa", {"owner": "b"}), namespace="default", field_manager="mgr-b"
        )
    assert caught.value.status == 409
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "mgr-a": .data.owner',
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "mgr-a"',
                    "field": ".data.owner",
                }
            ]
        },
        "code": 409,
    }

    forced = config_maps.server_side_apply(
        body=_config_map("ssa", {"owner": "b"}),
        namespace="default",
        field_manager="mgr-b",
        force_conflicts=True,
    )
    assert forced.data["owner"] == "b"
    owners = {e["manager"]: e["fieldsV1"] for e in forced.to_dict()["metadata"]["managedFields"]}
    assert owners["mgr-b"] == {"f:data": {"f:owner": {}}}
    assert owners["mgr-a"] == {"f:data": {"f:shared": {}}}


def test_apply_without_field_manager_is_422(
    api_client: client.ApiClient,
) -> None:
    with pytest.raises(ApiException) as caught:
        api_client.call_api(
            "/api/v1/namespaces/default/configmaps/nomgr",
            "PATCH",
            header_params={
                "Content-Type": "application/apply-patch+yaml",
                "Accept": "application/json",
            },
            body=_config_map("nomgr", {}),
            _preload_content=False,
            auth_settings=[],
        )
    assert caught.value.status == 422
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch",
        "reason": "Invalid",
        "details": {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }
            ],
        },
        "code": 422,
    }


def test_update_manager_conflicts_with_apply(dyn: dynamic.DynamicClient) -> None:
    """A POST by the typed client records ownership; SSA by another manager then conflicts."""
    config_maps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    config_maps.create(body=_config_map("owned", {"k": "posted"}), namespace="default")
    with pytest.raises(ApiException) as caught:
        config_maps.server_side_apply(
            body=_config_map("owned", {"k": "applied"}),
            namespace="default",
            field_manager="operator",
        )
    assert caught.value.status == 409
    assert "OpenAPI-Generator" in json.loads(caught.value.body)["message"]


def test_strategic_merge_patch_on_custom_resource_is_415(
    dyn: dynamic.DynamicClient, widget_crd: dict[str, Any]
) -> None:
    widgets = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind=KIND)
    widgets.create(body=widget("w", size=1), namespace="default")
    with pytest.raises(ApiException) as caught:
        widgets.patch(name="w", namespace="default", body={"spec": {"size": 2}})
    assert caught.value.status == 415
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the body of the request was in an unknown format - accepted media types "
        "include: application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml",
        "reason": "UnsupportedMediaType",
        "code": 415,
    }
    merged = widgets.patch(
        name="w",
        namespace="default",
        body={"spec": {"size": 2}},
        content_type="application/merge-patch+json",
    )
    assert merged.spec.size == 2


def test_strategic_merge_patch_on_builtin_merges_by_key(dyn: dynamic.DynamicClient) -> None:
    statefulsets = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    statefulsets.create(
        namespace="default",
        body={
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 0,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "main:1"},
                            {"name": "side", "image": "side:1"},
                        ]
                    },
                },
            },
        },
    )
    patched = statefulsets.patch(
        name="db",
        namespace="default",
        body={
            "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "side:2"}]}}}
        },
    )
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"main": "main:1", "side": "side:2"}
    assert patched.metadata.generation == 2
    # built-in defaulting happened, as on a real cluster
    assert patched.spec.podManagementPolicy == "OrderedReady"
    assert patched.spec.template.spec.containers[0].terminationMessagePath == "/dev/termination-log"
