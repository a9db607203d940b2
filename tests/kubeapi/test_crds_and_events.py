"""CustomResourceDefinitions (several versions included) and Events in both APIs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu
from tests.kubeapi.crds import GROUP, PLURAL, VERSION, WIDGET_CRD, widget
from tests.kubeapi.raw import call

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def test_crd_needs_exactly_one_storage_version(kubeemu: KubeEmu) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    second = copy.deepcopy(crd["spec"]["versions"][0])
    second["name"] = "v2"
    crd["spec"]["versions"].append(second)  # both say storage: true
    reply = call(kubeemu, "POST", CRDS, crd)
    assert reply.status == 422
    cause = reply.body["details"]["causes"][0]
    assert cause["field"] == "spec.versions"
    assert cause["message"].endswith("must have exactly one version marked as storage version")


def test_crd_status_after_create(kubeemu: KubeEmu) -> None:
    status = call(kubeemu, "POST", CRDS, WIDGET_CRD).body["status"]
    assert status["acceptedNames"] == {
        "plural": "widgets",
        "singular": "widget",
        "shortNames": ["wd"],
        "kind": "Widget",
        "listKind": "WidgetList",
    }
    assert status["storedVersions"] == ["v1"]
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert conditions == {
        "NamesAccepted": ("True", "NoConflicts", "no conflicts found"),
        "Established": ("True", "InitialNamesAccepted", "the initial names have been accepted"),
    }


def test_defaults_apply_on_read_after_a_schema_change(
    kubeemu: KubeEmu, api_client: client.ApiClient, widget_crd: JsonDict
) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/old"
    created = call(kubeemu, "POST", path.rsplit("/", 1)[0], widget("old")).body
    crd = call(kubeemu, "GET", f"{CRDS}/{PLURAL}.{GROUP}").body
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["mode"] = {"type": "string", "default": "auto"}
    assert call(kubeemu, "PUT", f"{CRDS}/{PLURAL}.{GROUP}", crd).status == 200
    read = call(kubeemu, "GET", path).body
    assert read["spec"]["mode"] == "auto", "stored objects are defaulted when read"
    assert read["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_versions_without_conversion_share_storage(kubeemu: KubeEmu) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    beta = copy.deepcopy(crd["spec"]["versions"][0])
    beta.update(name="v1beta1", storage=False)
    crd["spec"]["versions"].append(beta)
    call(kubeemu, "POST", CRDS, crd)
    groups = {g["name"]: g for g in call(kubeemu, "GET", "/apis").body["groups"]}
    assert groups[GROUP]["preferredVersion"] == {"groupVersion": f"{GROUP}/v1", "version": "v1"}
    call(
        kubeemu,
        "POST",
        f"/apis/{GROUP}/v1beta1/namespaces/default/{PLURAL}",
        {**widget("b"), "apiVersion": f"{GROUP}/v1beta1"},
    )
    as_v1 = call(kubeemu, "GET", f"/apis/{GROUP}/v1/namespaces/default/{PLURAL}/b").body
    assert as_v1["apiVersion"] == f"{GROUP}/v1"
    assert as_v1["spec"] == {"size": 1, "color": "red"}


# --- Events --------------------------------------------------------------------------------------
def _v1_event(name: str, **fields: Any) -> JsonDict:
    return {
        "metadata": {"name": name},
        "eventTime": "2026-11-28T00:00:00.000000Z",
        "reportingController": "tango-operator",
        "reportingInstance": "worker-1",
        "action": "Reconcile",
        "reason": "Applied",
        "type": "Normal",
        "regarding": {"kind": "StatefulSet", "name": "db", "namespace": "default"},
        **fields,
    }


def test_events_v1_validation(api_client: client.ApiClient) -> None:
    events = client.EventsV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        events.create_namespaced_event(
            "default",
            _v1_event(
                "bad",
                type="Info",
                note="n" * 1025,
                deprecatedCount=2,
                deprecatedSource={"component": "x"},
            ),
        )
    assert caught.value.status == 422
    causes = {c["field"]: c["message"] for c in json.loads(caught.value.body)["details"]["causes"]}
    # upstream validates the internal type: paths are its (core) field names
    assert causes == {
        "message": 'Invalid value: "": can have at most 1024 characters',
        "type": 'Invalid value: "": has invalid value: Info',
        "count": 'Invalid value: "": needs to be unset',
        "source": 'Invalid value: "": needs to be unset',
    }


def test_events_written_through_one_api_are_read_through_the_other(
    api_client: client.ApiClient,
) -> None:
    client.EventsV1Api(api_client).create_namespaced_event(
        "default", _v1_event("new-api", note="rolled out")
    )
    core = client.CoreV1Api(api_client)
    legacy = core.read_namespaced_event("new-api", "default")
    assert (legacy.message, legacy.involved_object.name, legacy.reporting_component) == (
        "rolled out",
        "db",
        "tango-operator",
    )
    selected = core.list_namespaced_event(
        "default", field_selector="involvedObject.kind=StatefulSet,involvedObject.name=db"
    )
    assert [e.metadata.name for e in selected.items] == ["new-api"]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "elsewhere"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "kube-system"},
                "reason": "R",
                "message": "m",
                "type": "Normal",
            },
        )
    assert caught.value.status == 422
    cause = json.loads(caught.value.body)["details"]["causes"][0]
    assert (cause["field"], cause["message"]) == (
        "involvedObject.namespace",
        'Invalid value: "kube-system": does not match event.namespace',
    )


def test_custom_resource_scale_subresource(kubeemu: KubeEmu) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    version = crd["spec"]["versions"][0]
    version["subresources"]["scale"] = {
        "specReplicasPath": ".spec.size",
        "statusReplicasPath": ".status.replicas",
    }
    version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["replicas"] = {
        "type": "integer"
    }
    call(kubeemu, "POST", CRDS, crd)
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    call(kubeemu, "POST", path, widget("sc", size=2))
    scale = call(kubeemu, "GET", f"{path}/sc/scale").body
    assert (scale["kind"], scale["apiVersion"], scale["spec"]) == (
        "Scale",
        "autoscaling/v1",
        {"replicas": 2},
    )
    merged = call(
        kubeemu,
        "PATCH",
        f"{path}/sc/scale",
        {"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert merged.body["spec"] == {"replicas": 3}
    assert call(kubeemu, "GET", f"{path}/sc").body["spec"]["size"] == 3
    strategic = call(
        kubeemu,
        "PATCH",
        f"{path}/sc/scale",
        {"spec": {"replicas": 4}},
        content_type="application/strategic-merge-patch+json",
    )
    assert strategic.status == 415, "a custom resource's /scale takes no strategic merge patch"
