"""A pass renders a DeviceServer's children only when what the render reads has changed.

The reconciler records a ``RenderPlan`` in the child ledger (the digest of the render's inputs
and of each manifest); a later pass with the same inputs and every child still current applies
nothing and does not render (``workers.reconcile.children.apply_planned``). These tests count
the renders (a wrapper around ``workers.rendering.render_device_server``, which the reconciler
calls through its module) and read the children from the API server, on both servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tango_operator import crd
from tests.support.crs import create_device_server
from tests.support.kube_api import KubeApi
from tests.support.operator import Operator, ds_key
from workers import rendering

JsonDict = dict[str, Any]
NAME = "motor-plan"


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every DeviceServer rendered from now on."""
    rendered: list[str] = []
    real = rendering.render_device_server

    def counted(resource: JsonDict, *args: Any, **kwargs: Any) -> list[JsonDict]:
        rendered.append(resource["metadata"]["name"])
        return real(resource, *args, **kwargs)

    monkeypatch.setattr(rendering, "render_device_server", counted)
    return rendered


def _custom(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def running(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient, renders: list[str]
) -> list[str]:
    """The DeviceServer created and settled in Running; the renders counted from then on."""
    create_device_server(kube_client, NAME)
    operator.settle(ds_key(NAME))
    assert renders, "the first pass renders"
    renders.clear()
    return renders


def _children_versions(kube_client: client.ApiClient) -> dict[str, str]:
    core, apps = client.CoreV1Api(kube_client), client.AppsV1Api(kube_client)
    reads: dict[str, Callable[[], Any]] = {
        "ConfigMap": lambda: core.read_namespaced_config_map(f"{NAME}-config", "default"),
        "Service": lambda: core.read_namespaced_service(NAME, "default"),
        "StatefulSet": lambda: apps.read_namespaced_stateful_set(NAME, "default"),
    }
    return {kind: read().metadata.resource_version for kind, read in reads.items()}


def test_a_pass_with_unchanged_inputs_neither_renders_nor_writes(
    operator: Operator, kube_client: client.ApiClient, running: list[str]
) -> None:
    before = _children_versions(kube_client)
    for _ in range(3):  # a resync, a relist, a failover: the same pass each time
        assert operator.reconcile(ds_key(NAME)).state == "Running"
    assert running == []
    assert _children_versions(kube_client) == before


def test_a_label_on_the_cr_is_rendered_into_the_pods(
    operator: Operator, kube_client: client.ApiClient, running: list[str]
) -> None:
    _custom(kube_client).patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        "deviceservers",
        NAME,
        {"metadata": {"labels": {"team.example/shift": "night"}}},
    )
    operator.reconcile(ds_key(NAME))
    assert running == [NAME]
    template = client.AppsV1Api(kube_client).read_namespaced_stateful_set(NAME, "default")
    assert template.spec.template.metadata.labels["team.example/shift"] == "night"

    running.clear()
    operator.reconcile(ds_key(NAME))
    assert running == [], "the new plan holds"


def test_a_deleted_child_is_rendered_and_created_again_with_the_same_inputs(
    operator: Operator, kube_client: client.ApiClient, running: list[str]
) -> None:
    core = client.CoreV1Api(kube_client)
    core.delete_namespaced_config_map(f"{NAME}-config", "default")

    operator.reconcile(ds_key(NAME))
    assert running == [NAME]
    assert core.read_namespaced_config_map(f"{NAME}-config", "default").data


def test_a_new_renderer_renders_again_and_writes_only_what_it_changes(
    operator: Operator,
    kube_client: client.ApiClient,
    running: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upgrade (new templates or code) renders every owner once; equal output writes nothing."""
    before = _children_versions(kube_client)
    monkeypatch.setattr(rendering, "renderer_digest", lambda _directory=None: "another-version")

    operator.reconcile(ds_key(NAME))
    assert running == [NAME]
    assert _children_versions(kube_client) == before, "the same manifests: nothing applied"
    running.clear()
    operator.reconcile(ds_key(NAME))
    assert running == [], "the plan of the new renderer was recorded"
