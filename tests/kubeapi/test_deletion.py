"""Deletion.

Finalizers, DeleteOptions from the body or the query, boot namespaces, pod termination with and
without a kubelet stand-in, and CRD deletion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from kubeemu.testing import KubeEmu
from tests.conftest import Cli
from tests.kubeapi.crds import GROUP, PLURAL, VERSION, WIDGET_CRD, widget
from tests.kubeapi.raw import call, status_body
from tests.support.kube_api import KEPT

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}"
WIDGETS = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_finalizer_flow_details(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", CM, {"metadata": {"name": "fin", "finalizers": ["example.com/a"]}})
    first = call(kubeemu, "DELETE", CM + "/fin")
    assert first.status == 200
    meta = first.body["metadata"]
    assert meta["deletionTimestamp"]
    assert meta["deletionGracePeriodSeconds"] == 0
    again = call(kubeemu, "DELETE", CM + "/fin")
    assert again.body["metadata"]["resourceVersion"] == meta["resourceVersion"], "idempotent"
    added = call(
        kubeemu,
        "PATCH",
        CM + "/fin",
        {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}},
        content_type="application/merge-patch+json",
    )
    message = (
        "Forbidden: no new finalizers can be added if the object is being deleted, found new "
        'finalizers []string{"example.com/b"}'
    )
    assert added.body == status_body(
        422,
        "Invalid",
        f'ConfigMap "fin" is invalid: metadata.finalizers: {message}',
        {
            "name": "fin",
            "kind": "ConfigMap",
            "causes": [
                {
                    "reason": "FieldValueForbidden",
                    "message": message,
                    "field": "metadata.finalizers",
                }
            ],
        },
    )


def test_delete_options_from_the_query_and_preconditions(kubeemu: KubeEmu) -> None:
    created = call(kubeemu, "POST", CM, {"metadata": {"name": "opts"}}).body
    uid, rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    dry = call(kubeemu, "DELETE", CM + "/opts?dryRun=All&propagationPolicy=Orphan")
    assert dry.body["metadata"]["finalizers"] == ["orphan"]
    assert call(kubeemu, "GET", CM + "/opts").body["metadata"].get("finalizers") is None
    wrong_uid = call(kubeemu, "DELETE", CM + "/opts", {"preconditions": {"uid": "not-it"}})
    assert wrong_uid.body == status_body(
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "opts": Precondition failed: UID in '
        f"precondition: not-it, UID in object meta: {uid}",
        {"name": "opts", "kind": "configmaps"},
    )
    wrong_rv = call(kubeemu, "DELETE", CM + "/opts", {"preconditions": {"resourceVersion": "1"}})
    assert wrong_rv.body["message"] == (
        'Operation cannot be fulfilled on configmaps "opts": Precondition failed: '
        f"ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}"
    )
    held = call(kubeemu, "DELETE", CM + "/opts?propagationPolicy=Foreground")
    assert held.body["metadata"]["finalizers"] == ["foregroundDeletion"]
    eventually(lambda: call(kubeemu, "GET", CM + "/opts").status == 404, "owner without dependents")


def test_boot_namespaces(api_client: client.ApiClient) -> None:
    names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def _pod(name: str, grace: int | None = None) -> JsonDict:
    spec: JsonDict = {"containers": [{"name": "c", "image": "i"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"name": name}, "spec": spec}


def test_pods_are_deleted_at_once_without_a_kubelet(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", PODS, _pod("quick"))
    deleted = call(kubeemu, "DELETE", PODS + "/quick")
    assert deleted.body["kind"] == "Pod", "pods answer a DELETE with the object"
    assert call(kubeemu, "GET", PODS + "/quick").status == 404


def test_held_pods_stay_terminating_for_their_grace_period(kubeemu: KubeEmu) -> None:
    kubeemu.controllers(pod_deletion="hold")
    call(kubeemu, "POST", PODS, _pod("slow", grace=45))
    call(kubeemu, "POST", PODS, _pod("stuck"))
    terminating = call(kubeemu, "DELETE", PODS + "/slow").body["metadata"]
    assert terminating["deletionGracePeriodSeconds"] == 45
    assert terminating["deletionTimestamp"] > terminating["creationTimestamp"]
    kubeemu.set_pod_state("default", "slow", "ready")  # the kubelet still reports status
    live = call(kubeemu, "GET", PODS + "/slow").body
    assert live["metadata"]["deletionTimestamp"] == terminating["deletionTimestamp"]
    assert live["status"]["phase"] == "Running"
    # kubectl delete --force --grace-period=0
    forced = call(kubeemu, "DELETE", PODS + "/slow", {"gracePeriodSeconds": 0})
    assert forced.status == 200
    assert call(kubeemu, "GET", PODS + "/slow").status == 404
    # the default grace period is 30 s; switching the hold off lets held pods go
    assert (
        call(kubeemu, "DELETE", PODS + "/stuck").body["metadata"]["deletionGracePeriodSeconds"]
        == 30
    )
    kubeemu.controllers(pod_deletion="immediate")
    eventually(lambda: call(kubeemu, "GET", PODS + "/stuck").status == 404, "held pod released")


def test_crd_deletion_removes_instances_first(kubeemu: KubeEmu, kubectl: Cli) -> None:
    assert (
        call(
            kubeemu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD
        ).status
        == 201
    )
    held = widget("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    call(kubeemu, "POST", WIDGETS, held)
    call(kubeemu, "POST", WIDGETS, widget("plain"))
    deleting = call(kubeemu, "DELETE", CRD_PATH).body
    assert deleting["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    terminating = [c for c in deleting["status"]["conditions"] if c["type"] == "Terminating"]
    assert terminating[0]["status"] == "True"
    eventually(lambda: call(kubeemu, "GET", WIDGETS + "/plain").status == 404, "instances deleted")
    assert call(kubeemu, "GET", WIDGETS + "/held").body["metadata"]["deletionTimestamp"]
    assert call(kubeemu, "GET", CRD_PATH).status == 200, "the CRD waits for its last instance"
    refused = call(kubeemu, "POST", WIDGETS, widget("late"))
    assert refused.body == status_body(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating",
        {"group": GROUP, "kind": PLURAL},
    )
    call(
        kubeemu,
        "PATCH",
        WIDGETS + "/held",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    eventually(lambda: call(kubeemu, "GET", CRD_PATH).status == 404, "CRD gone")
    assert call(kubeemu, "GET", f"/apis/{GROUP}/{VERSION}").status == 404
    groups = [g["name"] for g in call(kubeemu, "GET", "/apis").body["groups"]]
    assert GROUP not in groups
    # a re-created CRD starts empty: nothing comes back from the old one
    call(kubeemu, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert call(kubeemu, "GET", WIDGETS).body["items"] == []
    # kubectl waits for the whole cascade
    call(kubeemu, "POST", WIDGETS, widget("again"))
    kubectl.run("delete", "crd", f"{PLURAL}.{GROUP}", "--timeout=20s")
    assert call(kubeemu, "GET", CRD_PATH).status == 404


def test_delete_answers_per_kind(kubeemu: KubeEmu, widget_crd: JsonDict) -> None:
    call(kubeemu, "POST", WIDGETS, widget("gone"))
    uid = call(kubeemu, "GET", WIDGETS + "/gone").body["metadata"]["uid"]
    # custom resources answer a Status (their storage does not return the deleted object)
    assert call(kubeemu, "DELETE", WIDGETS + "/gone").body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "gone", "group": GROUP, "kind": PLURAL, "uid": uid},
    }
    services = "/api/v1/namespaces/default/services"
    call(kubeemu, "POST", services, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 1}]}})
    returned = call(kubeemu, "DELETE", services + "/svc").body
    assert (returned["kind"], returned["metadata"]["name"]) == ("Service", "svc")


def test_delete_collection_by_label_selector(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for name, labels in (("a", {"tier": "web"}), ("b", {"tier": "db"}), ("c", {})):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    core.delete_collection_namespaced_config_map("default", label_selector="tier notin (db),tier")
    left = core.list_namespaced_config_map("default", label_selector="!tier")
    # a real server's kube-root-ca.crt (kubeemu has none: kubeemu/README.md) carries no tier
    assert [c.metadata.name for c in left.items if c.metadata.name not in KEPT["configmaps"]] == [
        "c"
    ]
    every = core.list_namespaced_config_map("default").items
    assert [c.metadata.name for c in every if c.metadata.name not in KEPT["configmaps"]] == [
        "b",
        "c",
    ]


def test_dependents_of_a_missing_owner_are_collected(kubeemu: KubeEmu) -> None:
    orphan = {
        "metadata": {
            "name": "dangling",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "never", "uid": "no-such-uid"}
            ],
        }
    }
    assert call(kubeemu, "POST", CM, orphan).status == 201
    eventually(lambda: call(kubeemu, "GET", CM + "/dangling").status == 404, "collected")


def test_create_in_a_terminating_namespace_is_forbidden(kubeemu: KubeEmu) -> None:
    call(kubeemu, "POST", "/api/v1/namespaces", {"metadata": {"name": "ending"}})
    held = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    call(kubeemu, "POST", "/api/v1/namespaces/ending/configmaps", held)
    namespace = call(kubeemu, "DELETE", "/api/v1/namespaces/ending").body
    assert namespace["status"]["phase"] == "Terminating"
    assert namespace["spec"]["finalizers"] == ["kubernetes"]
    refused = call(
        kubeemu, "POST", "/api/v1/namespaces/ending/configmaps", {"metadata": {"name": "late"}}
    )
    assert refused.body == status_body(
        403,
        "Forbidden",
        'configmaps "late" is forbidden: unable to create new content in namespace ending '
        "because it is being terminated",
        {
            "name": "late",
            "kind": "configmaps",
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": "namespace ending is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
    )
