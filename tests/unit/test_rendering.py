"""workers.rendering: the children of the SKA examples, and no user string ever escapes its field.

Every rendered object is checked against the Kubernetes 1.31 OpenAPI schemas (kubernetes-validate,
strict) and against the rules the schemas do not carry (names, labels, selectors, unique env and
volume names), which the API server enforces on create.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tango_operator import crd, names, tango_names
from workers import rendering

JsonDict = dict[str, Any]
K8S_VERSION = "1.31.0"
UID = "6f1c2b1e-8a44-4b8e-9d0c-1a2b3c4d5e6f"

# --- what the API server checks beyond the OpenAPI schema -----------------------------------------
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _check_labels(labels: JsonDict) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            assert len(prefix) <= 253, key
            assert _DNS_SUBDOMAIN.match(prefix), key
        assert len(name) <= 63, key
        assert _LABEL_NAME.match(name), key
        assert isinstance(value, str), (key, value)
        assert len(value) <= 63, (key, value)
        assert _LABEL_VALUE.match(value), (key, value)


def assert_valid_manifest(manifest: JsonDict) -> None:
    """Schema-valid for Kubernetes 1.31 (strict) and acceptable to its API server's validation."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    metadata = manifest["metadata"]
    name, kind = metadata["name"], manifest["kind"]
    if kind == "Service":
        assert len(name) <= 63, name
        assert _DNS_1035.match(name), name
    elif kind == "StatefulSet":
        assert len(name) <= names.STATEFULSET_NAME_MAX, name
        assert _DNS_LABEL.match(name), name
    else:
        assert len(name) <= 253, name
        assert _DNS_SUBDOMAIN.match(name), name
    assert _DNS_LABEL.match(metadata["namespace"])
    _check_labels(metadata["labels"])
    assert [ref["controller"] for ref in metadata["ownerReferences"]] == [True]
    if kind == "Service":
        spec = manifest["spec"]
        assert spec["type"] in ("ClusterIP", "LoadBalancer")
        _check_labels(spec["selector"])
    if kind == "StatefulSet":
        spec = manifest["spec"]
        template = spec["template"]
        _check_labels(spec["selector"]["matchLabels"])
        _check_labels(template["metadata"]["labels"])
        assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        pod = template["spec"]
        volumes = [volume["name"] for volume in pod.get("volumes", [])]
        assert len(volumes) == len(set(volumes)), volumes
        for container in pod["containers"]:
            env = [entry["name"] for entry in container.get("env", [])]
            assert len(env) == len(set(env)), env
            assert {m["name"] for m in container.get("volumeMounts", [])} <= set(volumes)
            assert container.get("imagePullPolicy", "Always") in ("Always", "IfNotPresent", "Never")
            for port in container.get("ports", []):
                assert len(port["name"]) <= 15
                assert port["protocol"] == "TCP"
            for probe in ("readinessProbe", "livenessProbe"):
                port_ref = container.get(probe, {}).get("tcpSocket", {}).get("port")
                if isinstance(port_ref, str):
                    assert port_ref in {p["name"] for p in container["ports"]}
    if kind == "NetworkPolicy":
        spec = manifest["spec"]
        _check_labels(spec["podSelector"]["matchLabels"])
        for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
            assert rule.get("ports"), f"a rule without ports allows every port: {rule}"


# --- the SKA examples -----------------------------------------------------------------------------
TANGOTEST_CONFIG = '{"servers": {"TangoTest": {"test": {"TangoTest": {"sys/tg_test/1": {}}}}}}'


def tangotest() -> JsonDict:
    """The DeviceServer ska-tango-util renders for the default TangoTest.

    The same as tests/data/crs/ska-tangotest.yaml.
    """
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {
            "name": "tangotest-test",
            "namespace": "ska-tango",
            "uid": UID,
            "labels": {
                "component": "tangotest-test",
                "function": "tango-test",
                "domain": "tango-base",
                "subsystem": "ska-tango-base",
            },
        },
        "spec": {
            "legacycompatibility": True,
            "clusterDomain": "cluster.local",
            "databaseds": "databaseds-tango-base",
            "image": "artefact.skao.int/ska-tango-images-tango-java:9.5.0",
            "imagePullPolicy": "IfNotPresent",
            "args": "test",
            "dsname": "TangoTest",
            "config": TANGOTEST_CONFIG,
            "command": "/usr/local/bin/TangoTest",
            "dependsOn": ["sys/database/2"],
            "resources": {
                "requests": {"cpu": "200m", "memory": "256Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
        },
    }


LAUNCHER = (
    "import tango.server\n"
    "from ska_tango_examples.powersupply import PowerSupply\n"
    "tango.server.run(classes=(PowerSupply,))\n"
)


def python_server() -> JsonDict:
    """A Python server as util renders it: a launcher script, env, volumes, hooks, placement."""
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {
            "name": "powersupply-test",
            "namespace": "ska-tango",
            "uid": UID,
            "labels": {"component": "powersupply-test", "app.kubernetes.io/name": "theirs"},
        },
        "spec": {
            "legacycompatibility": False,
            "databaseds": "tango-databaseds",
            "image": "artefact.skao.int/ska-tango-examples:0.4.25",
            "args": "test",
            "dsname": "PowerSupply",
            "script": LAUNCHER,
            "config": json.dumps(
                {
                    "servers": {
                        "PowerSupply": {
                            "test": {
                                "PowerSupply": {
                                    "test/power_supply/1": {
                                        "properties": {"Voltage": ["12"]},
                                        "attribute_properties": {"current": {"unit": ["A"]}},
                                    }
                                }
                            }
                        }
                    }
                }
            ),
            "env": [
                {"name": "PYTHONUNBUFFERED", "value": "1"},
                {"name": "TANGO_HOST", "value": "elsewhere:10000"},
                {
                    "name": "SECRET",
                    "valueFrom": {"secretKeyRef": {"name": "ps-vault", "key": "token"}},
                },
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            "postStart": "echo started > /tmp/started",
            "preStop": "sleep 2; kill -TERM 1",
            "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "tango"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                }
            },
            "resources": None,
            "enableLoadBalancer": True,
        },
    }


def database_ds(**spec: Any) -> JsonDict:
    """The DatabaseDS ska-tango-base renders (tests/data/crs/ska-databaseds.yaml)."""
    return {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DatabaseDS",
        "metadata": {
            "name": "databaseds-tango-base",
            "namespace": "ska-tango",
            "uid": UID,
            "labels": {"component": "databaseds", "function": "tangodb-interface"},
        },
        "spec": {
            "clusterDomain": "cluster.local",
            "usePV": False,
            "imagePullPolicy": "IfNotPresent",
            "tangoDBStorageClass": "nfss1",
            **spec,
        },
    }


def render_ds(
    resource: JsonDict, replicas: int = 1, *, network_policy: bool = False
) -> list[JsonDict]:
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(
        spec.databaseds,
        namespace=resource["metadata"]["namespace"],
        cluster_domain=spec.cluster_domain,
    )
    children = rendering.render_device_server(
        resource, spec, tango_host=tango_host, replicas=replicas, network_policy=network_policy
    )
    for child in children:
        assert_valid_manifest(child)
    return children


def render_dbds(
    resource: JsonDict, replicas: int = 1, *, network_policy: bool = False
) -> list[JsonDict]:
    spec = crd.parse_database_ds(resource)
    children = rendering.render_database_ds(
        resource,
        spec,
        credentials_secret="tangodb-credentials",
        databaseds_replicas=replicas,
        network_policy=network_policy,
    )
    for child in children:
        assert_valid_manifest(child)
    return children


def _container(statefulset: JsonDict) -> JsonDict:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert "initContainers" not in statefulset["spec"]["template"]["spec"]
    container: JsonDict = containers[0]
    return container


def _env(container: JsonDict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


OWNER = {
    "apiVersion": "tango.tango-controls.org/v1",
    "kind": "DeviceServer",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def test_tangotest_children_names_order_and_metadata() -> None:
    children = render_ds(tangotest())
    assert [(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in children] == [
        ("v1", "ConfigMap", "tangotest-test-config"),
        ("v1", "Service", "tangotest-test"),
        ("apps/v1", "StatefulSet", "tangotest-test"),
    ]
    for child in children:
        assert child["metadata"]["namespace"] == "ska-tango"
        assert child["metadata"]["ownerReferences"] == [{**OWNER, "name": "tangotest-test"}]
        assert child["metadata"]["labels"] == {
            "app.kubernetes.io/name": "tango-device-server",
            "app.kubernetes.io/instance": "tangotest-test",
            "app.kubernetes.io/component": "device-server",
            "app.kubernetes.io/part-of": "tango",
            "app.kubernetes.io/managed-by": "tango-operator",
        }


def test_tangotest_configmap_holds_the_instance_config_only() -> None:
    configmap = render_ds(tangotest())[0]
    assert configmap["data"] == {
        "config.json": json.dumps(json.loads(TANGOTEST_CONFIG), sort_keys=True, indent=2)
    }


def test_tangotest_service() -> None:
    service = render_ds(tangotest())[1]
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {
            "app.kubernetes.io/name": "tango-device-server",
            "app.kubernetes.io/instance": "tangotest-test",
            "app.kubernetes.io/component": "device-server",
        },
        "ports": [
            {
                "name": "tango-server",
                "port": 45450,
                "targetPort": "tango-server",
                "protocol": "TCP",
            },
            {
                "name": "tango-heartbeat",
                "port": 45460,
                "targetPort": "tango-heartbeat",
                "protocol": "TCP",
            },
            {"name": "tango-event", "port": 45470, "targetPort": "tango-event", "protocol": "TCP"},
        ],
    }


def test_tangotest_statefulset() -> None:
    statefulset = render_ds(tangotest(), replicas=0)[2]
    spec = statefulset["spec"]
    assert spec["replicas"] == 0
    assert spec["serviceName"] == "tangotest-test"
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tango-device-server",
        "app.kubernetes.io/instance": "tangotest-test",
        "app.kubernetes.io/component": "device-server",
    }
    template = spec["template"]
    # SKA's component/function/domain/subsystem labels reach the pod (dashboards select on them)
    assert template["metadata"]["labels"]["function"] == "tango-test"
    assert template["metadata"]["labels"]["subsystem"] == "ska-tango-base"
    # the TangoTest example has a config: its hash is on the pod, so a change rolls it
    assert template["metadata"]["annotations"] == {
        rendering.CONFIG_HASH_ANNOTATION: crd.parse_device_server(tangotest()).config.digest  # type: ignore[union-attr]
    }
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert "securityContext" not in pod
    container = _container(statefulset)
    assert container["name"] == "device-server"
    assert container["image"] == "artefact.skao.int/ska-tango-images-tango-java:9.5.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["/usr/local/bin/TangoTest"]
    assert container["args"] == [
        "test",
        "-ORBendPoint",
        "giop:tcp::$(TANGO_SERVER_PORT)",
        "-ORBendPointPublish",
        "giop:tcp:$(TANGO_SERVER_PUBLISH_HOSTNAME):$(TANGO_SERVER_PORT)",
    ]
    assert container["env"] == [
        {"name": "TANGO_HOST", "value": "databaseds-tango-base.ska-tango.svc.cluster.local:10000"},
        {"name": "TANGO_SERVER_PORT", "value": "45450"},
        {"name": "TANGO_ZMQ_HEARTBEAT_PORT", "value": "45460"},
        {"name": "TANGO_ZMQ_EVENT_PORT", "value": "45470"},
        {
            "name": "TANGO_SERVER_PUBLISH_HOSTNAME",
            "value": "tangotest-test.ska-tango.svc.cluster.local",
        },
    ]
    assert container["ports"] == [
        {"name": "tango-server", "containerPort": 45450, "protocol": "TCP"},
        {"name": "tango-heartbeat", "containerPort": 45460, "protocol": "TCP"},
        {"name": "tango-event", "containerPort": 45470, "protocol": "TCP"},
    ]
    probe = {
        "tcpSocket": {"port": "tango-server"},
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    assert container["readinessProbe"] == probe
    assert container["livenessProbe"] == {**probe, "initialDelaySeconds": 10}
    assert container["resources"] == tangotest()["spec"]["resources"]
    for absent in ("volumeMounts", "lifecycle", "securityContext"):
        assert absent not in container
    assert pod["volumes"] == [
        {"name": rendering.CONFIG_VOLUME, "configMap": {"name": "tangotest-test-config"}}
    ]
    for absent in ("nodeSelector", "affinity", "tolerations"):
        assert absent not in pod


def test_python_server_configmap_and_script_mount() -> None:
    configmap, service, statefulset = render_ds(python_server())
    assert configmap["data"]["server.py"] == LAUNCHER
    assert json.loads(configmap["data"]["config.json"])["servers"]["PowerSupply"]["test"]
    assert service["spec"]["type"] == "LoadBalancer"
    container = _container(statefulset)
    # PyTango names a server after its script file: the launcher is mounted as <dsname>.py
    assert container["command"] == ["python3", "/tango-operator/PowerSupply.py"]
    assert container["args"][:3] == [
        "test",
        "-ORBendPoint",
        "giop:tcp:0.0.0.0:$(TANGO_SERVER_PORT)",
    ]
    assert container["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": rendering.CONFIG_VOLUME, "mountPath": "/tango-operator", "readOnly": True},
    ]
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}},
        {
            "name": rendering.CONFIG_VOLUME,
            "configMap": {
                "name": "powersupply-test-config",
                "items": [
                    {"key": "config.json", "path": "config.json"},
                    {"key": "server.py", "path": "PowerSupply.py"},
                ],
            },
        },
    ]
    spec = python_server()["spec"]
    assert pod["nodeSelector"] == spec["nodeSelector"]
    assert pod["affinity"] == spec["affinity"]
    assert pod["tolerations"] == spec["tolerations"]
    assert container["securityContext"] == spec["securityContext"]
    assert container["lifecycle"] == {
        "postStart": {"exec": {"command": ["/bin/sh", "-c", "echo started > /tmp/started"]}},
        "preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 2; kill -TERM 1"]}},
    }
    assert "resources" not in container  # `resources: null`, as the SKA chart emits it


def test_script_hash_rolls_the_pod_when_the_script_changes() -> None:
    first = render_ds(python_server())[2]
    changed = python_server()
    changed["spec"]["script"] = LAUNCHER + "# changed\n"
    second = render_ds(changed)[2]
    annotation = rendering.SCRIPT_HASH_ANNOTATION
    annotations = first["spec"]["template"]["metadata"]["annotations"]
    assert annotations[annotation] == hashlib.sha256(LAUNCHER.encode()).hexdigest()
    assert (
        annotations[annotation]
        != (second["spec"]["template"]["metadata"]["annotations"][annotation])
    )


def test_config_hash_rolls_the_pod_when_the_config_changes() -> None:
    first = render_ds(python_server())[2]
    changed = python_server()
    reordered = json.loads(changed["spec"]["config"])
    changed["spec"]["config"] = json.dumps(reordered, indent=4, sort_keys=True)
    same = render_ds(changed)[2]
    document = reordered
    device = document["servers"]["PowerSupply"]["test"]["PowerSupply"]["test/power_supply/1"]
    device["properties"]["Voltage"] = ["24"]
    changed["spec"]["config"] = json.dumps(document)
    different = render_ds(changed)[2]

    def digest(statefulset: JsonDict) -> str:
        value: str = statefulset["spec"]["template"]["metadata"]["annotations"][
            rendering.CONFIG_HASH_ANNOTATION
        ]
        return value

    assert digest(first) == digest(same), "layout and key order do not roll the pod"
    assert digest(first) != digest(different)


def test_user_env_replaces_ours_in_place_without_duplicates() -> None:
    container = _container(render_ds(python_server())[2])
    assert [e["name"] for e in container["env"]] == [
        "TANGO_HOST",
        "TANGO_SERVER_PORT",
        "TANGO_ZMQ_HEARTBEAT_PORT",
        "TANGO_ZMQ_EVENT_PORT",
        "TANGO_SERVER_PUBLISH_HOSTNAME",
        "PYTHONUNBUFFERED",
        "SECRET",
    ]
    env = _env(container)
    assert env["TANGO_HOST"] == "elsewhere:10000"
    assert env["SECRET"] == {"secretKeyRef": {"name": "ps-vault", "key": "token"}}
    assert env["TANGO_SERVER_PUBLISH_HOSTNAME"] == "powersupply-test.ska-tango.svc.cluster.local"


def test_a_repeated_user_env_name_keeps_the_last() -> None:
    resource = tangotest()
    resource["spec"]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "TANGO_SERVER_PORT", "value": "1"},
        {"name": "A", "value": "2"},
        {"name": "TANGO_SERVER_PORT", "value": "2"},
    ]
    container = _container(render_ds(resource)[2])
    assert [e["name"] for e in container["env"]].count("A") == 1
    env = _env(container)
    assert (env["A"], env["TANGO_SERVER_PORT"]) == ("2", "2")


def test_our_labels_win_on_the_pod_and_theirs_stay_off_the_children() -> None:
    children = render_ds(python_server())
    pod_labels = children[2]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "tango-device-server"
    assert pod_labels["component"] == "powersupply-test"
    for child in children:
        assert "component" not in child["metadata"]["labels"]


VAULT = {
    "vault.hashicorp.com/agent-inject": "true",
    "vault.hashicorp.com/role": "tango",
    "vault.hashicorp.com/agent-inject-secret-db": "secret/data/tango/db",
    "vault.hashicorp.com/agent-inject-template-db": '{{- with secret "secret/data/tango/db" -}}'
    "\nexport MYSQL_PASSWORD={{ .Data.data.password }}\n{{- end }}",
}
NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion": "..."}',
    "meta.helm.sh/release-name": "tango-base",
    "tango.tango-controls.org/config-hash": "forged",
}


def test_cr_annotations_reach_every_pod_and_ours_win() -> None:
    server = python_server()
    server["metadata"]["annotations"] = {**VAULT, **NOT_COPIED}
    statefulset = render_ds(server)[2]
    pod = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert {k: pod[k] for k in VAULT} == VAULT, "copied as they are, templates and all"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in pod
    assert "meta.helm.sh/release-name" not in pod
    digest = crd.parse_device_server(server).config
    assert digest is not None
    assert pod["tango.tango-controls.org/config-hash"] == digest.digest, "ours win"
    assert "annotations" not in statefulset["metadata"], "on the pods only"

    database = database_ds()
    database["metadata"]["annotations"] = {**VAULT, **NOT_COPIED}
    pods = [
        child["spec"]["template"]["metadata"]
        for child in render_dbds(database)
        if child["kind"] == "StatefulSet"
    ]
    assert len(pods) == 2
    for metadata in pods:
        assert metadata["annotations"] == VAULT


def test_without_cr_annotations_a_pod_has_only_the_operators() -> None:
    for child in render_dbds(database_ds()):
        if child["kind"] == "StatefulSet":
            assert "annotations" not in child["spec"]["template"]["metadata"]
    pod = render_ds(python_server())[2]["spec"]["template"]["metadata"]["annotations"]
    assert set(pod) == {f"{crd.GROUP}/script-hash", f"{crd.GROUP}/config-hash"}


def test_long_cr_names_are_shortened_consistently() -> None:
    resource = tangotest()
    resource["metadata"]["name"] = "a" * 60 + "-tangotest-" + "b" * 120
    configmap, service, statefulset = render_ds(resource)
    name = resource["metadata"]["name"]
    assert service["metadata"]["name"] == names.service(name)
    assert statefulset["metadata"]["name"] == names.statefulset(name)
    assert configmap["metadata"]["name"] == names.config_map(name, "-config")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert statefulset["metadata"]["ownerReferences"][0]["name"] == name
    instance = statefulset["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
    assert instance == names.label_value(name)
    env = _env(_container(statefulset))
    assert env["TANGO_SERVER_PUBLISH_HOSTNAME"] == (
        f"{service['metadata']['name']}.ska-tango.svc.cluster.local"
    )


def test_owner_reference_needs_the_uid() -> None:
    resource = tangotest()
    del resource["metadata"]["uid"]
    with pytest.raises(ValueError, match=r"no metadata\.uid"):
        rendering.owner_reference(resource)


# --- DatabaseDS -----------------------------------------------------------------------------------
def test_database_ds_without_pv() -> None:
    children = render_dbds(database_ds(), replicas=0)
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("Service", "databaseds-tango-base-tangodb"),
        ("Service", "databaseds-tango-base"),
        ("StatefulSet", "databaseds-tango-base-tangodb"),
        ("StatefulSet", "databaseds-tango-base"),
    ]
    for child in children:
        assert child["metadata"]["ownerReferences"] == [
            {**OWNER, "kind": "DatabaseDS", "name": "databaseds-tango-base"}
        ]
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tango-operator"
    tangodb_service, service, tangodb, databaseds = children
    assert tangodb_service["metadata"]["labels"]["app.kubernetes.io/name"] == "tango-db"
    assert tangodb_service["spec"]["ports"] == [
        {"name": "mysql", "port": 3306, "targetPort": "mysql", "protocol": "TCP"}
    ]
    assert tangodb_service["spec"]["selector"] == tangodb["spec"]["selector"]["matchLabels"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "tango", "port": 10000, "targetPort": "tango", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == databaseds["spec"]["selector"]["matchLabels"]
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "tango-databaseds"

    assert tangodb["spec"]["replicas"] == 1
    db = _container(tangodb)
    assert db["image"] == crd.DEFAULT_TANGODB_IMAGE
    assert db["imagePullPolicy"] == "IfNotPresent"
    secret = {"name": "tangodb-credentials"}
    assert _env(db) == {
        "MYSQL_DATABASE": "tango",
        "MYSQL_USER": "tango",
        "MYSQL_PASSWORD": {"secretKeyRef": {**secret, "key": "MYSQL_PASSWORD"}},
        "MYSQL_ROOT_PASSWORD": {"secretKeyRef": {**secret, "key": "MYSQL_ROOT_PASSWORD"}},
    }
    assert db["readinessProbe"]["tcpSocket"] == {"port": "mysql"}
    assert db["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/mysql"}]
    assert tangodb["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert "resources" not in db

    assert databaseds["spec"]["replicas"] == 0
    assert databaseds["spec"]["serviceName"] == "databaseds-tango-base"
    dbds = _container(databaseds)
    assert dbds["name"] == "databaseds"
    assert dbds["image"] == crd.DEFAULT_DATABASEDS_IMAGE
    assert dbds["command"] == [
        "/usr/local/bin/DataBaseds",
        "2",
        "-ORBendPoint",
        "giop:tcp::10000",
        "-ORBendPointPublish",
        "giop:tcp:$(TANGO_SERVER_PUBLISH_HOSTNAME):10000",
    ]
    assert _env(dbds) == {
        "MYSQL_HOST": "databaseds-tango-base-tangodb:3306",
        "MYSQL_DATABASE": "tango",
        "MYSQL_USER": "tango",
        "MYSQL_PASSWORD": {"secretKeyRef": {**secret, "key": "MYSQL_PASSWORD"}},
        "TANGO_SERVER_PUBLISH_HOSTNAME": "databaseds-tango-base.ska-tango.svc.cluster.local",
    }
    assert dbds["readinessProbe"]["tcpSocket"] == {"port": "tango"}
    assert dbds["livenessProbe"]["tcpSocket"] == {"port": "tango"}
    for container in (db, dbds):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    assert "securityContext" not in databaseds["spec"]["template"]["spec"]
    assert databaseds["spec"]["template"]["metadata"]["labels"]["function"] == "tangodb-interface"


def test_database_ds_with_pv_load_balancer_and_resources() -> None:
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    children = render_dbds(
        database_ds(
            usePV=True,
            enableLoadBalancer=True,
            storageSize="5Gi",
            tangoDBResources=resources,
            databasedsResources={"limits": {"cpu": "1"}},
            credentialsSecret="ignored-here",  # the reconciler passes the Secret it resolved
        )
    )
    assert [(c["kind"], c["metadata"]["name"]) for c in children][:2] == [
        ("PersistentVolumeClaim", "databaseds-tango-base-tangodb-storage"),
        ("Service", "databaseds-tango-base-tangodb"),
    ]
    pvc, _, service, tangodb, databaseds = children
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "nfss1",
        "resources": {"requests": {"storage": "5Gi"}},
    }
    assert service["spec"]["type"] == "LoadBalancer"
    assert tangodb["spec"]["template"]["spec"]["volumes"] == [
        {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "databaseds-tango-base-tangodb-storage"},
        }
    ]
    assert _container(tangodb)["resources"] == resources
    assert _container(databaseds)["resources"] == {"limits": {"cpu": "1"}}
    assert _container(databaseds)["env"][3]["valueFrom"]["secretKeyRef"]["name"] == (
        "tangodb-credentials"
    )


def test_pvc_without_storage_class_leaves_it_to_the_cluster_default() -> None:
    resource = database_ds(usePV=True)
    del resource["spec"]["tangoDBStorageClass"]
    pvc = render_dbds(resource)[0]
    assert "storageClassName" not in pvc["spec"]
    assert pvc["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


# --- NetworkPolicies (TANGO_OPERATOR_NETWORK_POLICY) ---------------------------------------------
def _ports(*numbers: int, protocol: str = "TCP") -> list[JsonDict]:
    return [{"port": number, "protocol": protocol} for number in numbers]


DNS = {"ports": _ports(53, protocol="UDP") + _ports(53)}
TANGO_EGRESS = {"ports": _ports(10000, 45450, 45460, 45470)}


def test_no_network_policy_unless_asked() -> None:
    kinds = [c["kind"] for c in render_ds(tangotest()) + render_dbds(database_ds(usePV=True))]
    assert "NetworkPolicy" not in kinds


def test_a_device_servers_network_policy_selects_its_pod() -> None:
    children = render_ds(tangotest(), network_policy=True)
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("ConfigMap", "tangotest-test-config"),
        ("Service", "tangotest-test"),
        ("NetworkPolicy", "tangotest-test-network-policy"),
        ("StatefulSet", "tangotest-test"),
    ]
    _, service, policy, statefulset = children
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["namespace"] == "ska-tango"
    assert policy["metadata"]["ownerReferences"] == [{**OWNER, "name": "tangotest-test"}]
    assert policy["metadata"]["labels"] == statefulset["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == statefulset["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert selector.items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"] == {
        "podSelector": {"matchLabels": selector},
        "policyTypes": ["Ingress", "Egress"],
        # its own ports, from anywhere (no "from": other namespaces and a LoadBalancer's clients)
        "ingress": [{"ports": _ports(45450, 45460, 45470)}],
        "egress": [DNS, TANGO_EGRESS],
    }


def test_a_device_server_on_another_tango_port_may_reach_it() -> None:
    resource = tangotest()
    resource["spec"]["databaseds"] = "tango-db.facility.org:20000"
    policy = render_ds(resource, network_policy=True)[2]
    assert policy["spec"]["egress"] == [DNS, {"ports": _ports(10000, 20000, 45450, 45460, 45470)}]


def test_a_database_ds_gets_a_network_policy_per_pod() -> None:
    children = render_dbds(database_ds(usePV=True), network_policy=True)
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == [
        ("PersistentVolumeClaim", "databaseds-tango-base-tangodb-storage"),
        ("Service", "databaseds-tango-base-tangodb"),
        ("Service", "databaseds-tango-base"),
        ("NetworkPolicy", "databaseds-tango-base-tangodb-network-policy"),
        ("NetworkPolicy", "databaseds-tango-base-network-policy"),
        ("StatefulSet", "databaseds-tango-base-tangodb"),
        ("StatefulSet", "databaseds-tango-base"),
    ]
    _, _, _, mariadb_policy, policy, tangodb, databaseds = children
    for each in (mariadb_policy, policy):
        assert each["metadata"]["ownerReferences"] == [
            {**OWNER, "kind": "DatabaseDS", "name": "databaseds-tango-base"}
        ]
    tangodb_pods = tangodb["spec"]["selector"]["matchLabels"]
    assert mariadb_policy["spec"] == {
        "podSelector": {"matchLabels": tangodb_pods},
        "policyTypes": ["Ingress", "Egress"],
        # from anywhere: its DataBaseds, and the workers probing dependsOn "<name>-tangodb:3306"
        "ingress": [{"ports": _ports(3306)}],
        "egress": [DNS],
    }
    assert policy["spec"] == {
        "podSelector": {"matchLabels": databaseds["spec"]["selector"]["matchLabels"]},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": _ports(10000)}],
        "egress": [
            DNS,
            TANGO_EGRESS,
            {"to": [{"podSelector": {"matchLabels": tangodb_pods}}], "ports": _ports(3306)},
        ],
    }


def test_a_long_cr_name_gives_a_valid_network_policy_name() -> None:
    resource = tangotest()
    resource["metadata"]["name"] = "d" * 250
    policy = render_ds(resource, network_policy=True)[2]  # validated: at most 253 characters
    assert policy["metadata"]["name"] == names.network_policy("d" * 250, "-network-policy")
    assert policy["metadata"]["name"].startswith("d" * 200)


# --- the template machinery -----------------------------------------------------------------------
def test_templates_directory_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe.yaml.j2").write_text("kind: Probe\nvalue: {{ value }}\n")
    monkeypatch.setenv("TANGO_OPERATOR_TEMPLATES", str(tmp_path))
    assert rendering.templates_dir() == tmp_path
    hostile = "x\nkind: Injected\n---\nother: {{ value }}"
    assert rendering.render_template("probe.yaml.j2", {"value": hostile}) == {
        "kind": "Probe",
        "value": hostile,
    }


def test_an_undefined_template_variable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe.yaml.j2").write_text("value: {{ missing }}\n")
    monkeypatch.setenv("TANGO_OPERATOR_TEMPLATES", str(tmp_path))
    with pytest.raises(Exception, match="missing"):
        rendering.render_template("probe.yaml.j2", {})


def test_the_shipped_templates_exist() -> None:
    found = sorted(
        str(p.relative_to(rendering.DEFAULT_TEMPLATES))
        for p in rendering.DEFAULT_TEMPLATES.rglob("*.j2")
    )
    assert found == [
        "databaseds/service.yaml.j2",
        "databaseds/statefulset.yaml.j2",
        "databaseds/tangodb-pvc.yaml.j2",
        "databaseds/tangodb-service.yaml.j2",
        "databaseds/tangodb-statefulset.yaml.j2",
        "deviceserver/configmap.yaml.j2",
        "deviceserver/service.yaml.j2",
        "deviceserver/statefulset.yaml.j2",
        "networkpolicy.yaml.j2",
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values, st.text(min_size=1000, max_size=1500))
def test_to_yaml_json_reads_back_exactly(value: Any, long_key: str) -> None:
    assert yaml.safe_load(rendering.to_yaml_json(value)) == value
    document = {"a": value, long_key: [value]}
    assert yaml.safe_load(rendering.to_yaml_json(document)) == document
    assert yaml.safe_load(f"key: {rendering.to_yaml_json(value)}\n") == {"key": value}


# --- adversarial strings --------------------------------------------------------------------------
NASTY = [
    "\n",
    "\r\n",
    "\t",
    " ",
    '"',
    "'",
    "\\",
    ": ",
    "- ",
    "? ",
    "#",
    "---",
    "...",
    "{{ x }}",
    "{% if x %}",
    "{#",
    "$(TANGO_HOST)",
    "$$",
    "$",
    "yes",
    "on",
    "null",
    "~",
    "&a",
    "*a",
    "!!python/object:os.system",
    "|",
    ">",
    "%",
    "@",
    "`",
    "[",
    "]",
    "{",
    "}",
    ",",
    "é",
    "😀",
    "\u2028",
    "\x85",
    "\ufeff",
    "\x7f",
    "\x00",
    "0x1F",
    "1e3",
    # shell and template injection (docs/security.md, point 7)
    "'; rm -rf / #",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "{{ 7*7 }}",
    "{% raw %}",
    "{% endraw %}",
    "&& id",
    "|| true",
]
nasty = st.lists(st.sampled_from(NASTY) | st.text(max_size=4), max_size=6).map("".join)


def _tango_word(text: str, limit: int) -> str:
    """What a TANGO instance name may hold of ``text`` (``tango_operator.tango_names``)."""
    return re.sub(rf"[^{tango_names.WORD_CHARACTERS}]", "", text)[:limit]


def _marked(token: str, *, tango_word: bool = False) -> st.SearchStrategy[str]:
    """``<nasty>TOKEN<nasty>``: adversarial all around, with a token to find it by.

    ``tango_word``: only what a TANGO name admits of it (the CRD refuses the rest).
    """

    def clean(text: str) -> str:
        return _tango_word(text, 35) if tango_word else text

    return st.builds(lambda a, b: clean(a) + token + clean(b), nasty, nasty)


_dns_tail = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=250)
dns_1035_names = st.builds(
    lambda head, tail, end: head + tail + end,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    _dns_tail,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"),
)
label_values = st.from_regex(r"\A([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")
# clusterDomain and dsname are checked by tango_operator.crd: DNS names, TANGO server names
cluster_domains = st.builds(
    lambda head, tail: f"x{head}qdomainq{tail}.local",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=20),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=20),
)
server_names = st.builds(
    lambda head, tail: f"{head}QdsnameQ{tail}",
    st.text(alphabet="ABCxyz0123456789_", min_size=1, max_size=10),
    st.text(alphabet="ABCxyz0123456789_.+-", max_size=20),
)
label_keys = st.sampled_from(
    ["component", "function", "domain", "subsystem", "app.kubernetes.io/name", "intent"]
)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in a manifest (dict keys included, marked with '<key>') with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, "<key>"), key
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def paths_containing(manifests: list[JsonDict], token: str) -> set[tuple[Any, ...]]:
    return {(m["kind"], *path) for m in manifests for path, text in leaves(m) if token in text}


CONTAINER: tuple[Any, ...] = ("StatefulSet", "spec", "template", "spec", "containers", 0)
CONFIG_JSON: tuple[Any, ...] = ("ConfigMap", "data", "config.json")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=dns_1035_names,
    cr_labels=st.dictionaries(label_keys, label_values, max_size=4),
    dsname=server_names,
    instance=_marked("QargsQ", tango_word=True),
    entry=_marked("QentryQ"),
    use_script=st.booleans(),
    image=_marked("QimageQ"),
    post_start=_marked("QpostQ"),
    pre_stop=_marked("QpreQ"),
    env_name=_marked("QenvnameQ"),
    env_value=_marked("QenvvalueQ"),
    # a NUL cannot be stored in the TANGO DB: the spec check refuses it (tests/unit/test_api.py)
    property_value=_marked("QpropQ").map(lambda text: text.replace("\x00", "")),
    cluster_domain=cluster_domains,
    legacy=st.booleans(),
)
def test_device_server_user_strings_land_exactly_in_their_field(
    name: str,
    cr_labels: dict[str, str],
    dsname: str,
    instance: str,
    entry: str,
    use_script: bool,
    image: str,
    post_start: str,
    pre_stop: str,
    env_name: str,
    env_value: str,
    property_value: str,
    cluster_domain: str,
    legacy: bool,
) -> None:
    config = {
        "servers": {
            dsname: {
                instance: {
                    "Cls": {
                        "a/b/c": {
                            "properties": {"p": [property_value]},
                            "attribute_properties": {"attr": {"unit": [property_value]}},
                        }
                    }
                }
            }
        }
    }
    resource = {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": "ns", "uid": UID, "labels": cr_labels},
        "spec": {
            "dsname": dsname,
            "args": instance,
            ("script" if use_script else "command"): entry,
            "config": json.dumps(config),
            "databaseds": "databaseds-tango-base",
            "clusterDomain": cluster_domain,
            "legacycompatibility": legacy,
            "image": image,
            "postStart": post_start,
            "preStop": pre_stop,
            "env": [{"name": env_name, "value": env_value}],
        },
    }
    children = render_ds(resource)  # validates every object
    configmap, _, statefulset = children
    container = _container(statefulset)
    literal = rendering.kubelet_literal

    assert json.loads(configmap["data"]["config.json"]) == config
    assert container["image"] == image
    assert container["args"][0] == literal(instance)
    assert container["lifecycle"]["postStart"]["exec"]["command"] == ["/bin/sh", "-c", post_start]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "-c", pre_stop]
    assert container["env"][-1] == {"name": env_name, "value": env_value}
    assert _env(container)["TANGO_SERVER_PUBLISH_HOSTNAME"] == literal(
        f"{names.service(name)}.ns.svc.{cluster_domain}"
    )
    items = statefulset["spec"]["template"]["spec"]["volumes"][-1]["configMap"].get("items")
    volume_items = ("StatefulSet", "spec", "template", "spec", "volumes", 0, "configMap", "items")
    if use_script:
        assert configmap["data"]["server.py"] == entry
        assert container["command"] == ["python3", literal(f"/tango-operator/{dsname}.py")]
        assert items[-1] == {"key": "server.py", "path": f"{dsname}.py"}
        entry_paths = {("ConfigMap", "data", "server.py")}
        dsname_paths = {CONFIG_JSON, (*CONTAINER, "command", 1), (*volume_items, 1, "path")}
    else:
        assert "server.py" not in configmap["data"]
        assert container["command"] == [literal(entry)]
        assert items is None
        entry_paths = {(*CONTAINER, "command", 0)}
        dsname_paths = {CONFIG_JSON}

    expected = {
        "QdsnameQ": dsname_paths,
        "QargsQ": {CONFIG_JSON, (*CONTAINER, "args", 0)},
        "QentryQ": entry_paths,
        "QimageQ": {(*CONTAINER, "image")},
        "QpostQ": {(*CONTAINER, "lifecycle", "postStart", "exec", "command", 2)},
        "QpreQ": {(*CONTAINER, "lifecycle", "preStop", "exec", "command", 2)},
        "QenvnameQ": {(*CONTAINER, "env", 5, "name")},
        "QenvvalueQ": {(*CONTAINER, "env", 5, "value")},
        "QpropQ": {CONFIG_JSON},
        # the TANGO host the reconciler passes is in the same cluster domain
        "qdomainq": {(*CONTAINER, "env", 0, "value"), (*CONTAINER, "env", 4, "value")},
    }
    for token, paths in expected.items():
        assert paths_containing(children, token) == paths, token
    # the CR's labels reach the pod template only, each exactly
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for key, value in cr_labels.items():
        if not key.startswith("app.kubernetes.io/"):
            assert pod_labels[key] == value
    for child in children:
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == names.label_value(name)
        assert child["metadata"]["ownerReferences"][0]["name"] == name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=dns_1035_names.map(lambda n: n[:63].rstrip("-") or "a"),
    cr_labels=st.dictionaries(label_keys, label_values, max_size=4),
    use_pv=st.booleans(),
    databaseds_image=_marked("QdbdsimageQ"),
    tangodb_image=_marked("QtangodbimageQ"),
    storage_class=_marked("QclassQ"),
    secret=_marked("QsecretQ"),
    cluster_domain=cluster_domains,
)
def test_database_ds_user_strings_land_exactly_in_their_field(
    name: str,
    cr_labels: dict[str, str],
    use_pv: bool,
    databaseds_image: str,
    tangodb_image: str,
    storage_class: str,
    secret: str,
    cluster_domain: str,
) -> None:
    resource = {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DatabaseDS",
        "metadata": {"name": name, "namespace": "ns", "uid": UID, "labels": cr_labels},
        "spec": {
            "usePV": use_pv,
            "databasedsImage": databaseds_image,
            "tangoDBImage": tangodb_image,
            "tangoDBStorageClass": storage_class,
            "clusterDomain": cluster_domain,
        },
    }
    spec = crd.parse_database_ds(resource)
    children = rendering.render_database_ds(
        resource, spec, credentials_secret=secret, databaseds_replicas=1
    )
    for child in children:
        assert_valid_manifest(child)
    by_name = {(c["kind"], c["metadata"]["name"]): c for c in children}
    service = by_name[("Service", name)]
    databaseds = by_name[("StatefulSet", names.statefulset(name))]
    tangodb = by_name[("StatefulSet", names.statefulset(name, "-tangodb"))]
    assert service["spec"]["selector"] == databaseds["spec"]["selector"]["matchLabels"]
    assert _container(databaseds)["image"] == databaseds_image
    assert _container(tangodb)["image"] == tangodb_image
    assert _env(_container(databaseds))["TANGO_SERVER_PUBLISH_HOSTNAME"] == (
        rendering.kubelet_literal(f"{name}.ns.svc.{cluster_domain}")
    )
    secret_refs = [
        e["valueFrom"]["secretKeyRef"]["name"]
        for c in (databaseds, tangodb)
        for e in _container(c)["env"]
        if "valueFrom" in e
    ]
    assert secret_refs == [secret, secret, secret]
    if use_pv:
        pvc = children[0]
        assert pvc["kind"] == "PersistentVolumeClaim"
        assert pvc["spec"]["storageClassName"] == storage_class
    else:
        assert all(c["kind"] != "PersistentVolumeClaim" for c in children)

    expected = {
        "QdbdsimageQ": {(*CONTAINER, "image")},
        "QtangodbimageQ": {(*CONTAINER, "image")},
        "QclassQ": {("PersistentVolumeClaim", "spec", "storageClassName")} if use_pv else set(),
        "qdomainq": {(*CONTAINER, "env", 4, "value")},
    }
    for token, paths in expected.items():
        found = paths_containing(children, token)
        assert found == paths, (token, found)
    assert len(paths_containing([databaseds], "QdbdsimageQ")) == 1
    assert len(paths_containing([tangodb], "QtangodbimageQ")) == 1
    assert paths_containing([tangodb], "qdomainq") == set()
    secret_paths = {(*CONTAINER, "env", i, "valueFrom", "secretKeyRef", "name") for i in (2, 3)}
    assert paths_containing(children, "QsecretQ") == secret_paths


# --- hostile strings in every user field (docs/security.md, point 7) -----------------------------
HOSTILE = [
    "'; rm -rf / #",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    '"; touch /tmp/pwned; echo "',
    "a\nb: c\n- d\n---\nkind: Secret",
    "{{ 7*7 }}",
    "{% raw %}{{ 7*7 }}{% endraw %}",
    "{% raw %}",
    "{# comment",
    "key: value",
    "- item",
    "$$(TANGO_HOST) $(TANGO_HOST)",
    "\\'\"\\n",
]
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})


def _device_server_with(hostile: str, *, use_script: bool) -> tuple[JsonDict, dict[str, str]]:
    """A DeviceServer with ``hostile`` in every field a user may fill with free text.

    Each such field also gets a marker naming it; the fields the API validates (names, DNS names)
    get what they allow of it. Returns the resource and marker → the value given.
    """
    values: dict[str, str] = {}

    def field(marker: str) -> str:
        values[marker] = f"{hostile}<{marker}>"
        return values[marker]

    instance = _tango_word(hostile, 70) + "<args>"
    values["args"] = instance
    spec: JsonDict = {
        "dsname": "Hostile",
        "args": instance,
        ("script" if use_script else "command"): field("entry"),
        "config": json.dumps(
            {
                "servers": {
                    "Hostile": {
                        instance: {"Cls": {"a/b/c": {"properties": {"p": [field("property")]}}}}
                    }
                }
            }
        ),
        "databaseds": "databaseds-tango-base",
        "image": field("image"),
        "postStart": field("postStart"),
        "preStop": field("preStop"),
        "env": [
            {"name": field("envName"), "value": field("envValue")},
            {
                "name": "FROM_SECRET",
                "valueFrom": {
                    "secretKeyRef": {"name": field("secretName"), "key": field("secretKey")}
                },
            },
            {
                "name": "FROM_CONFIGMAP",
                "valueFrom": {"configMapKeyRef": {"name": field("cmName"), "key": field("cmKey")}},
            },
        ],
        "volumes": [{"name": "data", "configMap": {"name": field("volumeSource")}}],
        "volumeMounts": [
            {
                "name": "data",
                "mountPath": "/data/" + field("mountPath"),
                "subPath": field("subPath"),
            }
        ],
        "resources": {"limits": {"memory": field("memory")}},
        "securityContext": {
            "seLinuxOptions": {"user": field("seLinuxUser")},
            "seccompProfile": {"type": "Localhost", "localhostProfile": field("seccomp")},
        },
        "nodeSelector": {"zone": field("nodeSelector")},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": field("toleration")}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In", "values": [field("affinity")]}
                            ]
                        }
                    ]
                }
            }
        },
    }
    resource = {
        "apiVersion": "tango.tango-controls.org/v1",
        "kind": "DeviceServer",
        "metadata": {"name": "hostile", "namespace": "ns", "uid": UID},
        "spec": spec,
    }
    return resource, values


def _lists(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _lists(item, (*path, key))
    elif isinstance(value, list):
        yield path, value
        for index, item in enumerate(value):
            yield from _lists(item, (*path, index))


def _shell_commands(manifests: list[JsonDict]) -> dict[tuple[Any, ...], list[Any]]:
    """Every argv in the manifests that starts a shell, by path."""
    found = {}
    for manifest in manifests:
        for path, items in _lists(manifest):
            if items and isinstance(items[0], str) and items[0].rsplit("/", 1)[-1] in SHELLS:
                found[(manifest["kind"], *path)] = items
    return found


@pytest.mark.parametrize("use_script", [True, False], ids=["script", "command"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_land_verbatim_in_their_own_field(hostile: str, use_script: bool) -> None:
    resource, values = _device_server_with(hostile, use_script=use_script)
    children = render_ds(resource)  # schema-valid, one mapping per template
    configmap, _, statefulset = children
    container = _container(statefulset)
    pod = statefulset["spec"]["template"]["spec"]
    literal = rendering.kubelet_literal
    hooks = container["lifecycle"]
    entry_path = ("ConfigMap", "data", "server.py") if use_script else (*CONTAINER, "command", 0)
    expected: dict[str, tuple[tuple[Any, ...], Any]] = {
        "entry": (entry_path, values["entry"] if use_script else literal(values["entry"])),
        "args": ((*CONTAINER, "args", 0), literal(values["args"])),
        "image": ((*CONTAINER, "image"), values["image"]),
        "postStart": ((*CONTAINER, "lifecycle", "postStart", "exec", "command", 2), None),
        "preStop": ((*CONTAINER, "lifecycle", "preStop", "exec", "command", 2), None),
        "envName": ((*CONTAINER, "env", 5, "name"), values["envName"]),
        "envValue": ((*CONTAINER, "env", 5, "value"), values["envValue"]),
        "secretName": ((*CONTAINER, "env", 6, "valueFrom", "secretKeyRef", "name"), None),
        "secretKey": ((*CONTAINER, "env", 6, "valueFrom", "secretKeyRef", "key"), None),
        "cmName": ((*CONTAINER, "env", 7, "valueFrom", "configMapKeyRef", "name"), None),
        "cmKey": ((*CONTAINER, "env", 7, "valueFrom", "configMapKeyRef", "key"), None),
        "volumeSource": (
            ("StatefulSet", "spec", "template", "spec", "volumes", 0, "configMap", "name"),
            None,
        ),
        "mountPath": ((*CONTAINER, "volumeMounts", 0, "mountPath"), "/data/" + values["mountPath"]),
        "subPath": ((*CONTAINER, "volumeMounts", 0, "subPath"), None),
        "memory": ((*CONTAINER, "resources", "limits", "memory"), None),
        "seLinuxUser": ((*CONTAINER, "securityContext", "seLinuxOptions", "user"), None),
        "seccomp": ((*CONTAINER, "securityContext", "seccompProfile", "localhostProfile"), None),
        "nodeSelector": (("StatefulSet", "spec", "template", "spec", "nodeSelector", "zone"), None),
        "toleration": (
            ("StatefulSet", "spec", "template", "spec", "tolerations", 0, "value"),
            None,
        ),
        "affinity": (
            (
                "StatefulSet",
                "spec",
                "template",
                "spec",
                "affinity",
                "nodeAffinity",
                "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms",
                0,
                "matchExpressions",
                0,
                "values",
                0,
            ),
            None,
        ),
    }

    def leaf(path: tuple[Any, ...]) -> Any:
        node: Any = next(c for c in children if c["kind"] == path[0])
        for step in path[1:]:
            node = node[step]
        return node

    for marker, (path, wanted) in expected.items():
        token = f"<{marker}>"
        # exactly one place holds it (the instance name is also a key of config.json) …
        where = paths_containing(children, token) - {CONFIG_JSON}
        assert where == {path}, (marker, where)
        # … as the whole value, unchanged (the kubelet's $$ → $ for command and args)
        assert leaf(path) == (values[marker] if wanted is None else wanted), marker
    # config.json is data for dsconfig: the property value comes back exactly
    config = json.loads(configmap["data"]["config.json"])
    assert config["servers"]["Hostile"][values["args"]]["Cls"]["a/b/c"]["properties"] == {
        "p": [values["property"]]
    }
    assert paths_containing(children, "<property>") == {CONFIG_JSON}
    # no template evaluation anywhere: nothing became 49 or lost its braces
    for manifest in children:
        for _, text in leaves(manifest):
            if "<" in text and ">" in text:
                assert "49<" not in text, text
    if "7*7" in hostile:
        marked = [t for m in children for _, t in leaves(m) if re.search(r"<\w+>", t)]
        assert len(marked) > len(expected)
        # (the instance name holds only what a TANGO name may: no '*', no spaces)
        assert all("7*7" in text for text in marked if "<args>" not in text)
    # the only shells: the two hooks, each running its own user string and nothing else
    assert _shell_commands(children) == {
        (*CONTAINER, "lifecycle", "postStart", "exec", "command"): [
            "/bin/sh", "-c", values["postStart"],
        ],
        (*CONTAINER, "lifecycle", "preStop", "exec", "command"): [
            "/bin/sh", "-c", values["preStop"],
        ],
    }  # fmt: skip
    assert hooks["postStart"]["exec"]["command"][2] == values["postStart"]
    assert pod["volumes"][-1]["name"] == rendering.CONFIG_VOLUME


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_in_a_database_ds_land_verbatim(hostile: str) -> None:
    fields = ("databasedsImage", "tangoDBImage", "tangoDBStorageClass", "storageSize", "secret")
    values = {name: f"{hostile}<{name}>" for name in fields}
    resource = database_ds(usePV=True, **{k: v for k, v in values.items() if k != "secret"})
    spec = crd.parse_database_ds(resource)
    children = rendering.render_database_ds(
        resource, spec, credentials_secret=values["secret"], databaseds_replicas=1
    )
    for child in children:
        assert_valid_manifest(child)
    places = {
        "databasedsImage": 1,
        "tangoDBImage": 1,
        "tangoDBStorageClass": 1,
        "storageSize": 1,
        "secret": 3,  # MYSQL_PASSWORD twice, MYSQL_ROOT_PASSWORD once: secretKeyRef names
    }
    for name, count in places.items():
        where = [text for child in children for _, text in leaves(child) if f"<{name}>" in text]
        assert where == [values[name]] * count, name
    assert _shell_commands(children) == {}  # the DatabaseDS pods start no shell at all


# --- the fast path equals the YAML text -----------------------------------------------------------
PROBE_TEMPLATE = """\
kind: Probe
scalar: {{ value }}
nested:
  inner: {{ value }}
  list: [{{ value }}, "fixed", {{ other }}]
{% if flag %}
  when: {{ other }}
{% endif %}
items:
{% for item in items %}
  - {{ item }}
{% endfor %}
"""


@settings(max_examples=200, deadline=None)
@given(value=json_values, other=json_values, flag=st.booleans(), items=st.lists(json_values))
def test_render_template_equals_the_yaml_reading_of_its_text(
    value: Any, other: Any, flag: bool, items: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("templates")
    (directory / "probe.yaml.j2").write_text(PROBE_TEMPLATE)
    context = {"value": value, "other": other, "flag": flag, "items": items}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TANGO_OPERATOR_TEMPLATES", str(directory))
        expected = yaml.safe_load(rendering.render_text("probe.yaml.j2", context))
        first = rendering.render_template("probe.yaml.j2", context)
        second = rendering.render_template("probe.yaml.j2", context)  # from the kept skeleton
    assert first == expected
    assert second == expected
    assert first is not second


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_shipped_templates_read_the_same_by_either_path(
    hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[tuple[str, JsonDict, JsonDict]] = []
    original = rendering.render_template

    def recording(name: str, context: JsonDict) -> JsonDict:
        manifest = original(name, context)
        rendered.append((name, context, manifest))
        return manifest

    monkeypatch.setattr(rendering, "render_template", recording)
    for use_script in (True, False):
        resource, _ = _device_server_with(hostile, use_script=use_script)
        render_ds(resource, network_policy=use_script)
    assert {name for name, _, _ in rendered} >= {
        "deviceserver/configmap.yaml.j2",
        "deviceserver/service.yaml.j2",
        "deviceserver/statefulset.yaml.j2",
        "networkpolicy.yaml.j2",
    }
    for name, context, manifest in rendered:
        assert manifest == yaml.load(rendering.render_text(name, context), Loader=yaml.SafeLoader)


def test_a_value_inside_a_larger_scalar_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a value is a whole YAML node; in a larger scalar it would arrive with its JSON quotes
    (tmp_path / "bad.yaml.j2").write_text("kind: Bad\nname: 'prefix-{{ value }}'\n")
    monkeypatch.setenv("TANGO_OPERATOR_TEMPLATES", str(tmp_path))
    with pytest.raises(ValueError, match="inside a larger scalar"):
        rendering.render_template("bad.yaml.j2", {"value": "x"})
