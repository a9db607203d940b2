"""Cluster behaviour kubeemu fakes.

Garbage collection, namespaces, StatefulSet pods, leases, events, immutability and defaulting —
driven through the official Python client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu
from tests.support.kube_api import KEPT, KubeApi

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def _statefulset(name: str, replicas: int = 1, image: str = "app:1") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def _owned_config_map(name: str, owner: Any, block: bool = False) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner.metadata.name,
                    "uid": owner.metadata.uid,
                    "blockOwnerDeletion": block,
                }
            ],
        }
    }


def test_statefulset_instant_mode_makes_ready_pods(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("db", replicas=2))

    def ready() -> bool:
        status = apps.read_namespaced_stateful_set("db", "default").status
        return bool(status.ready_replicas == 2)

    eventually(ready, what="2 ready replicas")
    pod = core.read_namespaced_pod("db-1", "default")
    assert pod.status.phase == "Running"
    assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pod.metadata.labels["apps.kubernetes.io/pod-index"] == "1"
    assert pod.metadata.owner_references[0].controller is True
    status = apps.read_namespaced_stateful_set("db", "default").status
    assert status.observed_generation == 1
    assert (
        status.current_revision
        == status.update_revision
        == pod.metadata.labels["controller-revision-hash"]
    )

    apps.patch_namespaced_stateful_set("db", "default", {"spec": {"replicas": 0}})
    eventually(
        lambda: _gone(lambda: core.read_namespaced_pod("db-0", "default")),
        what="scale to zero removes pods",
    )


def test_statefulset_manual_mode_lets_the_test_decide(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    kubeemu.controllers(statefulset="manual")
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("srv"))
    eventually(
        lambda: _exists(lambda: core.read_namespaced_pod("srv-0", "default")), what="pod created"
    )
    assert core.read_namespaced_pod("srv-0", "default").status.phase == "Pending"
    assert not apps.read_namespaced_stateful_set("srv", "default").status.ready_replicas

    kubeemu.set_pod_state("default", "srv-0", "ready")
    eventually(
        lambda: apps.read_namespaced_stateful_set("srv", "default").status.ready_replicas == 1,
        what="ready replica",
    )
    kubeemu.set_pod_state("default", "srv-0", "failed", "exit 1")
    pod = core.read_namespaced_pod("srv-0", "default")
    assert pod.status.phase == "Failed"
    eventually(
        lambda: not apps.read_namespaced_stateful_set("srv", "default").status.ready_replicas,
        what="not ready after failure",
    )


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException:
        return False
    return True


def test_garbage_collection_background(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map("default", _owned_config_map("child", owner))
    core.delete_namespaced_config_map("owner", "default")
    eventually(
        lambda: _gone(lambda: core.read_namespaced_config_map("child", "default")),
        what="dependent collected",
    )


def test_garbage_collection_foreground_waits_for_blocking_dependents(
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "fg-owner"}})
    child = _owned_config_map("fg-child", owner, block=True)
    child["metadata"]["finalizers"] = ["example.com/slow"]
    core.create_namespaced_config_map("default", child)
    core.delete_namespaced_config_map(
        "fg-owner", "default", body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    held = core.read_namespaced_config_map("fg-owner", "default")
    assert "foregroundDeletion" in held.metadata.finalizers
    eventually(
        lambda: (
            core.read_namespaced_config_map("fg-child", "default").metadata.deletion_timestamp
            is not None
        ),
        what="child deleting",
    )
    time.sleep(0.3)
    assert _exists(lambda: core.read_namespaced_config_map("fg-owner", "default")), (
        "the owner waits for its blocking dependent"
    )
    core.patch_namespaced_config_map("fg-child", "default", {"metadata": {"finalizers": None}})
    eventually(
        lambda: _gone(lambda: core.read_namespaced_config_map("fg-owner", "default")),
        what="owner removed after dependents",
    )


def test_garbage_collection_orphan_strips_owner_references(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "or-owner"}})
    core.create_namespaced_config_map("default", _owned_config_map("or-child", owner))
    core.delete_namespaced_config_map(
        "or-owner", "default", body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    eventually(
        lambda: _gone(lambda: core.read_namespaced_config_map("or-owner", "default")),
        what="owner removed",
    )
    child = core.read_namespaced_config_map("or-child", "default")
    assert not child.metadata.owner_references


@pytest.mark.slow
def test_namespace_deletion_removes_content_and_refuses_creates(
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "team-a"}})
    ns = core.read_namespace("team-a")
    assert ns.status.phase == "Active"
    assert ns.spec.finalizers == ["kubernetes"]
    core.create_namespaced_config_map(
        "team-a", {"metadata": {"name": "slow", "finalizers": ["example.com/hold"]}}
    )
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "quick"}})
    core.delete_namespace("team-a")
    assert core.read_namespace("team-a").status.phase == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("team-a", {"metadata": {"name": "late"}})
    assert caught.value.status == 403
    assert "because it is being terminated" in json.loads(caught.value.body)["message"]
    eventually(
        lambda: _gone(lambda: core.read_namespaced_config_map("quick", "team-a")),
        what="content deleted",
    )
    assert _exists(lambda: core.read_namespace("team-a")), "waits for the finalizer"
    core.patch_namespaced_config_map("slow", "team-a", {"metadata": {"finalizers": None}})
    eventually(lambda: _gone(lambda: core.read_namespace("team-a")), what="namespace gone")


def test_statefulset_immutable_fields_are_422(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("imm", replicas=0))
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_stateful_set("imm", "default", {"spec": {"serviceName": "other"}})
    assert caught.value.status == 422
    assert (
        "updates to statefulset spec for fields other than"
        in json.loads(caught.value.body)["message"]
    )


def test_service_gets_cluster_ip_and_defaults(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    service = core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "x"}, "ports": [{"name": "a", "port": 45450}]},
        },
    )
    assert service.spec.cluster_ip.startswith("10.")
    assert service.spec.cluster_ips == [service.spec.cluster_ip]
    assert service.spec.type == "ClusterIP"
    assert service.spec.session_affinity == "None"
    assert service.spec.ports[0].protocol == "TCP"
    assert service.spec.ports[0].target_port == 45450
    headless = core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "headless"},
            "spec": {"clusterIP": "None", "ports": [{"port": 1}]},
        },
    )
    assert headless.spec.cluster_ip == "None"
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_service("svc", "default", {"spec": {"clusterIP": "10.96.9.9"}})
    assert caught.value.status == 422


def test_lease_read_modify_write(api_client: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(api_client)
    lease = coordination.create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    stale = lease.metadata.resource_version
    lease.spec.holder_identity = "b"
    coordination.replace_namespaced_lease("leader", "default", lease)
    lease.spec.holder_identity = "c"
    lease.metadata.resource_version = stale
    with pytest.raises(ApiException) as caught:
        coordination.replace_namespaced_lease("leader", "default", lease)
    assert caught.value.status == 409
    assert coordination.read_namespaced_lease("leader", "default").spec.holder_identity == "b"


def test_events_both_apis(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "ev1"},
            "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
            "reason": "Tested",
            "message": "hello",
            "type": "Normal",
            "count": 1,
        },
    )
    events_v1 = client.EventsV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        events_v1.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "ev2"},
                "reason": "Tested",
                "type": "Normal",
            },
        )
    assert caught.value.status == 422
    fields = {c["field"] for c in json.loads(caught.value.body)["details"]["causes"]}
    assert fields == {"eventTime"}
    # upstream checks the reporting fields only once eventTime is set
    with pytest.raises(ApiException) as caught:
        events_v1.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "ev2"},
                "reason": "Tested",
                "type": "Normal",
                "eventTime": "2026-11-28T00:00:00.000000Z",
            },
        )
    assert caught.value.status == 422
    fields = {c["field"] for c in json.loads(caught.value.body)["details"]["causes"]}
    assert {"reportingController", "reportingInstance", "action"} <= fields
    events_v1.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "ev3"},
            "eventTime": "2026-11-28T00:00:00.000000Z",
            "reportingController": "tango-operator",
            "reportingInstance": "w-1",
            "action": "Reconcile",
            "reason": "Tested",
            "type": "Normal",
            "note": "ok",
            "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
        },
    )
    names = {
        e.metadata.name
        for e in core.list_namespaced_event("default", field_selector="reason=Tested").items
    }
    assert names == {"ev1", "ev3"}


def test_limit_and_continue(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for index in range(7):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"page-{index}"}})
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map("default", limit=3, _continue=token)
        pages += 1
        names += [item.metadata.name for item in page.items]
        token = page.metadata._continue
        if not token:
            break
    # a real server's kube-root-ca.crt (kubeemu has none: kubeemu/README.md) sorts first
    assert pages == 3
    assert [name for name in names if name not in KEPT["configmaps"]] == [
        f"page-{i}" for i in range(7)
    ]


def test_label_and_field_selectors(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"sel-{name}", "labels": {"tier": tier}}}
        )
    web = core.list_namespaced_config_map("default", label_selector="tier in (web)")
    assert [i.metadata.name for i in web.items] == ["sel-a", "sel-c"]
    not_web = core.list_namespaced_config_map("default", label_selector="tier!=web,tier")
    assert [i.metadata.name for i in not_web.items] == ["sel-b"]
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=sel-c")
    assert [i.metadata.name for i in by_name.items] == ["sel-c"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", label_selector="tier in (web")
    assert caught.value.status == 400


def test_field_validation_strict_and_dry_run(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "strict"}, "bogus": 1}, field_validation="Strict"
        )
    assert caught.value.status == 400
    assert 'unknown field "bogus"' in json.loads(caught.value.body)["message"]
    dry = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.name == "dry"
    assert _gone(lambda: core.read_namespaced_config_map("dry", "default"))


def test_statefulset_replaces_pods_of_an_old_template(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("roll", replicas=2))
    eventually(
        lambda: apps.read_namespaced_stateful_set("roll", "default").status.ready_replicas == 2,
        what="ready",
    )
    old = core.read_namespaced_pod("roll-0", "default").metadata
    apps.patch_namespaced_stateful_set(
        "roll",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "app:2"}]}}}},
    )

    def rolled() -> bool:
        status = apps.read_namespaced_stateful_set("roll", "default").status
        return bool(
            status.update_revision != old.labels["controller-revision-hash"]
            and status.updated_replicas == 2
            and status.ready_replicas == 2
            and status.observed_generation == 2
        )

    eventually(rolled, what="pods on the new revision")
    pod = core.read_namespaced_pod("roll-0", "default")
    assert pod.metadata.uid != old.uid
    assert pod.spec.containers[0].image == "app:2"


def test_a_template_change_leaves_a_pod_that_is_not_ready_until_it_is_deleted(
    kube_api: KubeApi, api_client: client.ApiClient
) -> None:
    """OrderedReady stops at an unhealthy pod: a crash-looping pod is never rolled by itself.

    The real controller's rule (kubernetes/kubernetes#67250), which is why the operator deletes
    a failing pod of an old revision itself. The pod here is never ready: on the real server
    no node matches its nodeSelector, on kubeemu the kubelet is the test (manual mode).
    """
    if kube_api.emulator is not None:
        kube_api.emulator.controllers(statefulset="manual")
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    manifest = _statefulset("stuck")
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {"example.org/no-such-node": "x"}
    apps.create_namespaced_stateful_set("default", manifest)
    eventually(lambda: _exists(lambda: core.read_namespaced_pod("stuck-0", "default")), what="pod")
    old = core.read_namespaced_pod("stuck-0", "default").metadata
    apps.patch_namespaced_stateful_set(
        "stuck",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "app:2"}]}}}},
    )
    eventually(
        lambda: (
            apps.read_namespaced_stateful_set("stuck", "default").status.observed_generation == 2
        ),
        what="the new generation seen",
    )
    time.sleep(2)
    status = apps.read_namespaced_stateful_set("stuck", "default").status
    assert status.update_revision != old.labels["controller-revision-hash"]
    assert core.read_namespaced_pod("stuck-0", "default").metadata.uid == old.uid

    core.delete_namespaced_pod("stuck-0", "default", grace_period_seconds=0)

    def replaced() -> bool:
        try:
            pod = core.read_namespaced_pod("stuck-0", "default")
        except ApiException:
            return False
        return bool(
            pod.metadata.uid != old.uid
            and pod.metadata.labels["controller-revision-hash"] == status.update_revision
        )

    eventually(replaced, what="a new pod of the new revision")
