"""tango.tango-controls.org at v1 and at v2, on kubeemu and on the real kube-apiserver.

v2 is v1 under another name (the same schema, conversion None; v1 is stored and is what the
operator talks). What SKA's 2025 deployment tests do (list the DeviceServers at v2, assert
state Running), kubectl at either version and by default (the preferred version: v2, by
kube-apiserver's version priority), kubectl wait at both, the status subresource at both, and
a DeviceServer created at v2 reconciled by the operator's reconcilers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tango_operator import crd
from tests.conftest import ROOT, Cli
from tests.support.crs import device_server
from tests.support.operator import Operator, ds_key
from workers.reconcile.status import Condition, now_rfc3339

pytestmark = pytest.mark.usefixtures("kube_api")
JsonDict = dict[str, Any]
SAMPLES = ROOT / "tests" / "data" / "crs"
TANGOTEST = "tangotest-test"  # tests/data/crs/ska-tangotest.yaml, as ska-tango-util renders it


def _custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _running(api_client: client.ApiClient, name: str, version: str) -> JsonDict:
    """The status the operator writes for a running server, patched at ``version``."""
    status = {
        "state": "Running",
        "conditions": [Condition("Ready", True, "Running", "").as_dict(1, now_rfc3339())],
    }
    patched: JsonDict = _custom(api_client).patch_namespaced_custom_object_status(
        crd.GROUP, version, "default", "deviceservers", name, {"status": status}
    )
    return patched


def _get(kubectl: Cli, resource: str, name: str) -> JsonDict:
    found: JsonDict = json.loads(kubectl.run("get", resource, name, "-o", "json").stdout)
    return found


def test_the_group_prefers_v2_and_kubectl_reads_either(
    kube_client: client.ApiClient, kubectl: Cli
) -> None:
    group = json.loads(kubectl.run("get", "--raw", f"/apis/{crd.GROUP}").stdout)
    assert [entry["version"] for entry in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    resources = kubectl.run("api-resources", f"--api-group={crd.GROUP}", "--no-headers").stdout
    assert {line.split()[-3] for line in resources.splitlines()} == {f"{crd.GROUP}/v2"}

    kubectl.run("apply", "-f", str(SAMPLES / "ska-tangotest.yaml"))  # v1, as the charts write
    by_default = _get(kubectl, "deviceservers", TANGOTEST)
    assert by_default["apiVersion"] == f"{crd.GROUP}/v2", "kubectl asks the preferred version"
    for version in ("v1", "v2"):
        read = _get(kubectl, f"deviceservers.{version}.{crd.GROUP}", TANGOTEST)
        assert read["apiVersion"] == f"{crd.GROUP}/{version}"
        assert read["spec"] == by_default["spec"]
        assert read["metadata"]["uid"] == by_default["metadata"]["uid"]

    _running(kube_client, TANGOTEST, crd.VERSION)
    tables = {
        version: kubectl.run("get", f"deviceservers.{version}.{crd.GROUP}", "-o", "wide").stdout
        for version in ("v1", "v2")
    }
    header, row = tables["v2"].splitlines()
    assert header.split()[:4] == ["NAME", "STATE", "READY", "REASON"]
    assert row.split()[:3] == [TANGOTEST, "Running", "True"]
    assert [line.split()[:3] for line in tables["v1"].splitlines()] == [
        line.split()[:3] for line in tables["v2"].splitlines()
    ], "the same columns at both versions"


def test_ska_deployment_tests_list_device_servers_at_v2_and_kubectl_waits_at_both(
    kube_client: client.ApiClient, kubectl: Cli
) -> None:
    kubectl.run("apply", "-f", str(SAMPLES / "ska-tangotest.yaml"))
    _running(kube_client, TANGOTEST, crd.VERSION)  # the operator writes at v1

    # SKA's smoke test: CustomObjectsApi at v2, every DeviceServer Running
    listed = _custom(kube_client).list_namespaced_custom_object(
        "tango.tango-controls.org", "v2", "default", "deviceservers"
    )
    assert listed["apiVersion"] == f"{crd.GROUP}/v2"
    assert [
        (item["apiVersion"], item["metadata"]["name"], item["status"]["state"])
        for item in listed["items"]
    ] == [(f"{crd.GROUP}/v2", TANGOTEST, "Running")]

    for resource in (
        f"deviceservers.v2.{crd.GROUP}/{TANGOTEST}",
        f"deviceservers.v1.{crd.GROUP}/{TANGOTEST}",
        f"deviceserver/{TANGOTEST}",
    ):
        kubectl.run("wait", "--for=condition=Ready", resource, "--timeout=10s")
        kubectl.run("wait", "--for=jsonpath={.status.state}=Running", resource, "--timeout=10s")
    # ska-tango-examples' k8s-wait, word for word but the namespace
    kubectl.run(
        "wait", "--for=jsonpath={.status.state}=Running", "--timeout=10s",
        f"deviceservers.{crd.GROUP}", TANGOTEST,
    )  # fmt: skip


def test_status_is_a_subresource_at_both_versions(kube_client: client.ApiClient) -> None:
    custom = _custom(kube_client)
    body = {**device_server("motor"), "apiVersion": f"{crd.GROUP}/v2"}
    created = custom.create_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", body
    )
    assert created["apiVersion"] == f"{crd.GROUP}/v2"
    main = custom.patch_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", "motor", {"status": {"state": "Running"}}
    )
    assert "status" not in main, "the main resource ignores status at v2 as at v1"
    for written, read in (("v2", "v1"), ("v1", "v2")):
        patched = custom.patch_namespaced_custom_object_status(
            crd.GROUP, written, "default", "deviceservers", "motor",
            {"status": {"state": "Waiting", "message": f"written at {written}"}},
        )  # fmt: skip
        assert patched["apiVersion"] == f"{crd.GROUP}/{written}"
        seen = custom.get_namespaced_custom_object(
            crd.GROUP, read, "default", "deviceservers", "motor"
        )
        assert seen["status"]["message"] == f"written at {written}"
        assert seen["metadata"]["generation"] == 1
    with pytest.raises(client.ApiException) as mismatch:
        custom.create_namespaced_custom_object(
            crd.GROUP, "v2", "default", "deviceservers", device_server("v1-body")
        )
    assert mismatch.value.status == 400, "a v1 body is not accepted at v2 (nor the reverse)"


def test_a_device_server_created_at_v2_is_reconciled(kube_client: client.ApiClient) -> None:
    custom = _custom(kube_client)
    body = device_server("motor-v2", databaseds="tango-databaseds", dependsOn=["db-host:3306"])
    body["apiVersion"] = f"{crd.GROUP}/v2"
    created = custom.create_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", body
    )

    Operator(kube_client).settle(ds_key("motor-v2"))  # the reconcilers read and write at v1

    at_v2 = custom.get_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", "motor-v2"
    )
    assert (at_v2["apiVersion"], at_v2["status"]["state"]) == (f"{crd.GROUP}/v2", "Running")
    owner = (
        client.AppsV1Api(kube_client)
        .read_namespaced_stateful_set("motor-v2", "default")
        .metadata.owner_references[0]
    )
    assert (owner.api_version, owner.uid) == (crd.API_VERSION, created["metadata"]["uid"])
