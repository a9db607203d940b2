"""Object metadata and admission.

resourceVersions, names, generation, no-op writes, managedFields, validation, built-in defaulting
and immutable fields.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu
from tests.kubeapi.raw import call, status_body

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

JsonDict = dict[str, Any]
RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _config_map(name: str, **fields: Any) -> JsonDict:
    return {"metadata": {"name": name}, **fields}


def test_one_global_resource_version_across_kinds(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    leases = client.CoordinationV1Api(api_client)
    written = [
        core.create_namespaced_config_map("default", _config_map("m1")),
        core.create_namespaced_secret("default", {"metadata": {"name": "m1"}}),
        leases.create_namespaced_lease("default", {"metadata": {"name": "m1"}, "spec": {}}),
        core.patch_namespaced_config_map("m1", "default", {"data": {"a": "1"}}),
    ]
    versions = [int(obj.metadata.resource_version) for obj in written]
    assert versions == sorted(set(versions)), "every write of any kind takes the next version"
    # any list reports the store's current version, even one whose kind saw no write since
    listed = core.list_namespaced_secret("default").metadata.resource_version
    assert int(listed) == versions[-1]


def test_create_sets_server_fields_and_generates_names(kubeemu: KubeEmu) -> None:
    reply = call(
        kubeemu,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"generateName": "gen-", "uid": "mine", "resourceVersion": "7"}},
    )
    assert reply.status == 201
    meta = reply.body["metadata"]
    assert re.fullmatch(r"gen-[bcdfghjklmnpqrstvwxz2456789]{5}", meta["name"])
    assert meta["uid"] != "mine", "uid is the server's"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", meta["uid"]
    )
    assert RFC3339_SECONDS.match(meta["creationTimestamp"])
    assert meta["resourceVersion"].isdigit()
    assert meta["resourceVersion"] != "7"
    assert meta["namespace"] == "default", "the namespace comes from the URL"

    nameless = call(kubeemu, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {}})
    assert nameless.body == status_body(
        422,
        "Invalid",
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
        {
            "kind": "ConfigMap",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: name or generateName is required",
                    "field": "metadata.name",
                }
            ],
        },
    )
    elsewhere = call(
        kubeemu,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "x", "namespace": "kube-system"}},
    )
    assert elsewhere.body == status_body(
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
    )


def test_generation_only_for_kinds_that_have_it(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    config = core.create_namespaced_config_map("default", _config_map("gen", data={"a": "1"}))
    assert config.metadata.generation is None
    assert (
        core.patch_namespaced_config_map("gen", "default", {"data": {"a": "2"}}).metadata.generation
        is None
    )
    assert core.create_namespace({"metadata": {"name": "gen"}}).metadata.generation is None

    statefulset = apps.create_namespaced_stateful_set("default", _statefulset("gen"))
    assert statefulset.metadata.generation == 1
    labelled = apps.patch_namespaced_stateful_set(
        "gen", "default", {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled.metadata.generation == 1, "metadata changes do not bump generation"
    scaled = apps.patch_namespaced_stateful_set("gen", "default", {"spec": {"replicas": 0}})
    assert scaled.metadata.generation == 2


def test_no_op_writes_keep_the_version_and_emit_no_event(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    created = core.create_namespaced_config_map(
        "default",
        {"metadata": {"name": "noop", "labels": {"l": "v"}}, "data": {"a": "1"}},
    )
    rv = created.metadata.resource_version
    mark = kubeemu.mark()
    # the same content by merge patch, strategic merge patch, JSON patch and replace
    call(
        kubeemu,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/noop",
        {"data": {"a": "1"}},
        content_type="application/merge-patch+json",
    )
    assert (
        core.patch_namespaced_config_map(
            "noop", "default", {"metadata": {"labels": {"l": "v"}}}
        ).metadata.resource_version
        == rv
    )
    assert (
        core.patch_namespaced_config_map(
            "noop", "default", [{"op": "replace", "path": "/data/a", "value": "1"}]
        ).metadata.resource_version
        == rv
    )
    assert (
        core.replace_namespaced_config_map(
            "noop", "default", core.read_namespaced_config_map("noop", "default")
        ).metadata.resource_version
        == rv
    )
    assert kubeemu.mutations(mark) == []

    core.patch_namespaced_config_map("noop", "default", {"data": {"a": "2"}})
    events = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=3
    ):
        events.append((event["type"], event["object"].data))
        stream.stop()
    assert events == [("MODIFIED", {"a": "2"})], "the no-op writes produced no watch event"


def test_update_records_managed_fields(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "mf", "labels": {"team": "a"}}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map(
        "mf", "default", {"data": {"b": "2"}}, field_manager="operator"
    )
    entries = call(kubeemu, "GET", "/api/v1/namespaces/default/configmaps/mf").body["metadata"][
        "managedFields"
    ]
    for entry in entries:
        assert RFC3339_SECONDS.match(entry.pop("time"))
    assert entries == [
        {
            # no fieldManager: the User-Agent up to its first "/" (OpenAPI-Generator/36.x/python)
            "manager": "OpenAPI-Generator",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:data": {".": {}, "f:a": {}},
                "f:metadata": {"f:labels": {".": {}, "f:team": {}}},
            },
        },
        {
            "manager": "operator",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:b": {}}},
        },
    ]


@pytest.mark.parametrize(
    ("path", "body", "field", "message_part"),
    [
        (
            "/api/v1/namespaces/default/services",
            {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}},
            "metadata.name",
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character",
        ),
        (
            "/api/v1/namespaces",
            {"metadata": {"name": "n" * 64}},
            "metadata.name",
            "must be no more than 63 characters",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "big", "annotations": {"a": "x" * (256 * 1024)}}},
            "metadata.annotations",
            "Too long: must have at most 262144 bytes",
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "lbl", "labels": {"k": "v" * 64}}},
            "metadata.labels",
            "must be no more than 63 characters",
        ),
    ],
)
def test_names_labels_and_annotations_are_validated(
    kubeemu: KubeEmu, path: str, body: JsonDict, field: str, message_part: str
) -> None:
    reply = call(kubeemu, "POST", path, body)
    assert reply.status == 422
    assert reply.body["reason"] == "Invalid"
    causes = reply.body["details"]["causes"]
    assert any(c["field"] == field and message_part in c["message"] for c in causes), causes


def _statefulset(name: str, image: str = "registry/app:1.0") -> JsonDict:
    return {
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": image, "ports": [{"containerPort": 10000}]},
                        {"name": "side", "image": "registry/side:latest"},
                    ]
                },
            },
        },
    }


def test_statefulset_and_pod_template_defaults(kubeemu: KubeEmu) -> None:
    reply = call(
        kubeemu, "POST", "/apis/apps/v1/namespaces/default/statefulsets", _statefulset("dflt")
    )
    assert reply.status == 201
    # the spec a 1.31 apiserver stores for this manifest
    assert reply.body["spec"] == {
        "replicas": 1,
        "serviceName": "dflt",
        "selector": {"matchLabels": {"app": "dflt"}},
        "template": {
            "metadata": {"labels": {"app": "dflt"}, "creationTimestamp": None},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "registry/app:1.0",
                        "ports": [{"containerPort": 10000, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    },
                    {
                        "name": "side",
                        "image": "registry/side:latest",
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "Always",
                    },
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler",
            },
        },
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
    }


def test_service_defaults_and_node_port_allocation(
    api_client: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api_client)
    first = core.create_namespaced_service(
        "default",
        {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
    )
    spec = api_client.sanitize_for_serialization(first.spec)
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": spec["ports"][0]["nodePort"]}
    ]
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    second = core.create_namespaced_service(
        "default",
        {"metadata": {"name": "np2"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
    )
    assert second.spec.cluster_ip != first.spec.cluster_ip
    assert second.spec.ports[0].node_port != first.spec.ports[0].node_port
    # an update keeps the allocated address and port
    kept = core.patch_namespaced_service("np", "default", {"metadata": {"labels": {"a": "b"}}})
    assert (kept.spec.cluster_ip, kept.spec.ports[0].node_port) == (
        first.spec.cluster_ip,
        first.spec.ports[0].node_port,
    )


@pytest.mark.parametrize("kind", ["configmaps", "secrets"])
def test_immutable_config_maps_and_secrets(kubeemu: KubeEmu, kind: str) -> None:
    base = f"/api/v1/namespaces/default/{kind}"
    created = call(
        kubeemu,
        "POST",
        base,
        {"metadata": {"name": "frozen"}, "immutable": True, "data": {"a": "MQ=="}},
    )
    assert created.status == 201
    changed = call(
        kubeemu,
        "PATCH",
        f"{base}/frozen",
        {"data": {"a": "Mg=="}},
        content_type="application/merge-patch+json",
    )
    label = "ConfigMap" if kind == "configmaps" else "Secret"
    assert changed.body == status_body(
        422,
        "Invalid",
        f'{label} "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set',
        {
            "name": "frozen",
            "kind": label,
            "causes": [
                {
                    "reason": "FieldValueForbidden",
                    "message": "Forbidden: field is immutable when `immutable` is set",
                    "field": "data",
                }
            ],
        },
    )
    thawed = call(
        kubeemu,
        "PATCH",
        f"{base}/frozen",
        {"immutable": False},
        content_type="application/merge-patch+json",
    )
    assert thawed.status == 422
    assert [c["field"] for c in thawed.body["details"]["causes"]] == ["immutable"]
    relabelled = call(
        kubeemu,
        "PATCH",
        f"{base}/frozen",
        {"metadata": {"labels": {"a": "b"}}},
        content_type="application/merge-patch+json",
    )
    assert relabelled.status == 200, "metadata stays mutable"


def test_statefulset_spec_is_immutable_except_the_allowed_fields(
    api_client: client.ApiClient,
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set("default", _statefulset("imm"))
    allowed = apps.patch_namespaced_stateful_set(
        "imm",
        "default",
        {
            "spec": {
                "replicas": 0,
                "minReadySeconds": 5,
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
                "template": {"metadata": {"labels": {"extra": "x"}}},
            }
        },
    )
    assert allowed.spec.update_strategy.type == "OnDelete"
    for change in (
        {"serviceName": "other"},
        {"selector": {"matchLabels": {"app": "other"}}},
        {"podManagementPolicy": "Parallel"},
    ):
        with pytest.raises(ApiException) as caught:
            apps.patch_namespaced_stateful_set("imm", "default", {"spec": change})
        body = json.loads(caught.value.body)
        assert caught.value.status == 422, change
        forbidden = (
            "spec: Forbidden: updates to statefulset spec for "
            "fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
            "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        )
        if "selector" in change:
            # the template's labels no longer match: checked first, as kube-apiserver does
            mismatch = (
                "spec.template.metadata.labels: Invalid value: "
                'map[string]string{"app":"imm", "extra":"x"}: '
                "`selector` does not match template `labels`"
            )
            fields = ["spec.template.metadata.labels", "spec"]
            message = f'StatefulSet.apps "imm" is invalid: [{mismatch}, {forbidden}]'
        else:
            fields, message = ["spec"], f'StatefulSet.apps "imm" is invalid: {forbidden}'
        assert [cause["field"] for cause in body["details"]["causes"]] == fields
        assert body["message"] == message
