"""docs/migrating.md, from the SKA Go operator, step by step with the real kubectl and helm.

The old operator is a stand-in Helm release (``tests/data/ska-operator``: its CRDs in
templates/, v1 only, its status and printer columns); its custom resources are the SKA charts'
samples, with the old operator's status, a finalizer and children of its own. Each step is the
document's command; then the operator's reconcilers take the custom resources over as they are.
On kubeemu and on the real control plane (``kube_api``): there the test first takes the
session's CRDs away and leaves the operator's own in place at the end, as a migration does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from devstack.stack import CRD_DIR
from tango_operator import crd
from tests.conftest import ROOT, Cli
from tests.support.crs import device_server
from tests.support.operator import Operator, db_key, ds_key

pytestmark = [pytest.mark.helm, pytest.mark.kubectl, pytest.mark.usefixtures("kube_api")]
JsonDict = dict[str, Any]
OLD_CHART = ROOT / "tests" / "data" / "ska-operator"
APP_CHART = ROOT / "tests" / "data" / "ska-app"
CHART = ROOT / "helm" / "tango-operator"
SAMPLES = ROOT / "tests" / "data" / "crs"
CRDS = [f"{kind.plural}.{crd.GROUP}" for kind in crd.Kind]
TANGOTEST, DATABASEDS = "tangotest-test", "databaseds-tango-base"
OLD_FINALIZER = "example.com/old-operator"
"""Stands for the SKA operator's finalizer, whose name no public source gives."""
OLD_MANAGERS = "app.kubernetes.io/managed-by in (DeviceServerController,DatabaseDSController)"


def _custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _served(api_client: client.ApiClient, version: str, timeout: float = 30) -> None:
    """Wait until both kinds are served at ``version`` (a replaced CRD takes a moment)."""
    deadline = time.monotonic() + timeout
    for kind in crd.Kind:
        while True:
            try:
                _custom(api_client).list_namespaced_custom_object(
                    crd.GROUP, version, "default", kind.plural
                )
                break
            except client.ApiException as exc:
                if exc.status not in (404, 429, 503) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _crd(kubectl: Cli, name: str) -> JsonDict:
    found: JsonDict = json.loads(kubectl.run("get", "crd", name, "-o", "json").stdout)
    return found


def _old_operator_at_work(kubectl: Cli, api_client: client.ApiClient) -> None:
    """What the SKA operator leaves: its status, its finalizer, its children."""
    for sample in ("ska-databaseds.yaml", "ska-tangotest.yaml"):
        kubectl.run("apply", "-f", str(SAMPLES / sample))
    for kind, name in (("databaseds", DATABASEDS), ("deviceserver", TANGOTEST)):
        old_status = {"state": "Running", "replicas": 1, "succeeded": 1, "resources": "ok"}
        kubectl.run(
            "patch", kind, name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": old_status}),
        )  # fmt: skip
    kubectl.run(
        "patch", "deviceserver", TANGOTEST, "--type=merge",
        "-p", json.dumps({"metadata": {"finalizers": [OLD_FINALIZER]}}),
    )  # fmt: skip
    owner = _custom(api_client).get_namespaced_custom_object(
        crd.GROUP, "v1", "default", "deviceservers", TANGOTEST
    )
    labels = {"app.kubernetes.io/instance": TANGOTEST,
              "app.kubernetes.io/managed-by": "DeviceServerController"}  # fmt: skip
    metadata = {
        "name": f"ds-{TANGOTEST}",
        "labels": labels,
        "ownerReferences": [{"apiVersion": f"{crd.GROUP}/v1", "kind": "DeviceServer",
                             "name": TANGOTEST, "uid": owner["metadata"]["uid"],
                             "controller": True, "blockOwnerDeletion": True}],
    }  # fmt: skip
    client.CoreV1Api(api_client).create_namespaced_service(
        "default", {"metadata": metadata, "spec": {"selector": labels, "ports": [{"port": 10}]}}
    )
    pod = {"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "deviceserver", "image": "old:1"}]}}  # fmt: skip
    client.AppsV1Api(api_client).create_namespaced_stateful_set(
        "default",
        {"metadata": metadata, "spec": {"selector": {"matchLabels": labels},
                                        "serviceName": metadata["name"], "template": pod}},
    )  # fmt: skip


def _put_back_the_operators_crds(kubectl: Cli) -> None:
    """The session's server keeps the operator's CRDs, unowned by any release."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    kubectl.run(
        "annotate", "crd", *CRDS, "meta.helm.sh/release-name-",
        "meta.helm.sh/release-namespace-", "helm.sh/resource-policy-",
    )  # fmt: skip
    kubectl.run("label", "crd", *CRDS, "app.kubernetes.io/managed-by-")


OLD_RELEASE = ("ska-tango-operator", "-n", "ska-tango-operator")


@pytest.fixture
def old_operator(api_client: client.ApiClient, kubectl: Cli, helm: Cli) -> Iterator[None]:
    """The stand-in SKA release installed, its CRDs Established; the operator's CRDs at the end.

    On the session's real server the operator's CRDs go first (empty by now: every test
    cleans up): a release cannot take over objects it did not make.
    """
    kubectl.run("delete", "crd", *CRDS, "--ignore-not-found", "--wait=true", timeout=120)
    helm.run("install", *OLD_RELEASE, str(OLD_CHART), "--create-namespace")
    try:
        kubectl.run("wait", "--for=condition=Established", *(f"crd/{n}" for n in CRDS))
        _served(api_client, "v1")
        yield
    finally:
        helm.run("uninstall", *OLD_RELEASE, check=False)
        helm.run("uninstall", "tango-operator", "-n", "tango-operator", check=False)
        # the session's real server is shared: leave no namespace behind (a later test lists
        # a fresh server's namespaces)
        kubectl.run(
            "delete", "namespace", "ska-tango-operator", "tango-operator",
            "--ignore-not-found", "--wait=true", timeout=120,
        )  # fmt: skip
        _put_back_the_operators_crds(kubectl)


@pytest.mark.usefixtures("old_operator")
def test_keep_on_a_live_crd_does_not_save_it_from_helm_uninstall(kubectl: Cli, helm: Cli) -> None:
    """Why docs/migrating.md does not say "annotate the CRDs with keep, then uninstall".

    Helm reads ``helm.sh/resource-policy`` from the release's stored manifest, not from the
    live object: the CRDs, and every custom resource in the cluster with them, are deleted.
    """
    kubectl.run("apply", "-f", str(SAMPLES / "ska-tangotest.yaml"))
    kubectl.run("annotate", "crd", *CRDS, "helm.sh/resource-policy=keep")
    helm.run("uninstall", *OLD_RELEASE, "--wait", "--timeout=60s")
    deadline = time.monotonic() + 60
    while kubectl.run("get", "crd", "-o", "name").stdout.count(crd.GROUP):
        assert time.monotonic() < deadline, "the CRDs were kept"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.usefixtures("old_operator")
def test_crs_of_the_ska_operator_are_reconciled_after_the_crds_are_replaced(
    api_client: client.ApiClient, kubectl: Cli, helm: Cli
) -> None:
    _old_operator_at_work(kubectl, api_client)
    _migrate(api_client, kubectl, helm)


def _migrate(api_client: client.ApiClient, kubectl: Cli, helm: Cli) -> None:
    """docs/migrating.md's steps, in its order and with its commands."""
    # 1. who owns the CRDs: a Helm release that has them in its templates deletes them
    owners = kubectl.run(
        "get", "crd", *CRDS, "-o",
        r"custom-columns=NAME:.metadata.name,VERSIONS:.spec.versions[*].name,"
        r"STORED:.status.storedVersions,RELEASE:.metadata.annotations.meta\.helm\.sh/release-name",
    ).stdout  # fmt: skip
    assert [row.split()[1:] for row in owners.splitlines()[1:]] == [
        ["v1", "[v1]", "ska-tango-operator"]
    ] * 2

    # 2. the old operator goes, its CRDs stay: everything of the release but them deleted,
    # then Helm made to forget the release
    manifest = kubectl.workdir / "old-operator.yaml"
    manifest.write_text(helm.run("get", "manifest", *OLD_RELEASE).stdout)
    names = kubectl.run("get", "-n", "ska-tango-operator", "-f", str(manifest), "-o", "name")
    doomed = [n for n in names.stdout.split() if not n.startswith("customresourcedefinition")]
    assert sorted(doomed) == [
        "deployment.apps/ska-tango-operator-controller-manager",
        "serviceaccount/ska-tango-operator-controller-manager",
    ]
    kubectl.run("delete", "-n", "ska-tango-operator", *doomed)
    kubectl.run("delete", "secret", "-n", "ska-tango-operator", "-l",
                "owner=helm,name=ska-tango-operator")  # fmt: skip
    assert helm.run("list", "-n", "ska-tango-operator", "-q").stdout.strip() == ""
    assert all(_crd(kubectl, name)["spec"]["versions"][0]["name"] == "v1" for name in CRDS)
    assert kubectl.run("get", "deviceserver", TANGOTEST, "-o", "name").stdout.strip()

    # 3. the CRDs become the operator's: Helm's field ownership yields to --force-conflicts
    refused = kubectl.run("apply", "--server-side", "-f", str(CRD_DIR), check=False)
    assert refused.returncode != 0
    assert 'conflict with "helm"' in refused.stderr, refused.stderr
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    kubectl.run("wait", "--for=condition=Established", *(f"crd/{n}" for n in CRDS))
    kubectl.run(
        "annotate", "crd", *CRDS, "meta.helm.sh/release-name-",
        "meta.helm.sh/release-namespace-", "helm.sh/resource-policy-",
    )  # fmt: skip
    kubectl.run("label", "crd", *CRDS, "app.kubernetes.io/managed-by-")
    _served(api_client, "v2")
    for name in CRDS:
        replaced = _crd(kubectl, name)
        assert [v["name"] for v in replaced["spec"]["versions"]] == ["v1", "v2"]
        assert replaced["status"]["storedVersions"] == ["v1"]
        assert not (replaced["metadata"].get("annotations") or {}).keys() & {
            "meta.helm.sh/release-name",
            "helm.sh/resource-policy",
        }
    # what the old CRD stored is read under the new schema: the old status fields are gone
    read = _custom(api_client).get_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", TANGOTEST
    )
    assert read["status"] == {"state": "Running", "replicas": 1}, "succeeded, resources: gone"
    assert read["spec"]["clusterDomain"] == "cluster.local"

    # 4. the old operator's finalizer: nothing will ever remove it now
    finalizers = kubectl.run(
        "get", "deviceservers,databaseds", "-A", "-o",
        "custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name,"
        "FINALIZERS:.metadata.finalizers",
    ).stdout  # fmt: skip
    rows = [row.split() for row in finalizers.splitlines()[1:]]
    assert ["DeviceServer", "default", TANGOTEST, f"[{OLD_FINALIZER}]"] in rows, finalizers
    kubectl.run(
        "patch", "deviceserver", TANGOTEST, "-n", "default", "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip

    # 5. the old operator's children
    deleted = kubectl.run(
        "delete", "statefulsets,services,configmaps,serviceaccounts", "-A", "-l", OLD_MANAGERS
    ).stdout
    assert sorted(deleted.split("\n")[:-1]) == [
        f'service "ds-{TANGOTEST}" deleted',
        f'statefulset.apps "ds-{TANGOTEST}" deleted',
    ]

    # 6. the operator's chart: Helm leaves CRDs that exist alone
    helm.run("install", "tango-operator", str(CHART), "-n", "tango-operator",
             "--create-namespace")  # fmt: skip
    assert [v["name"] for v in _crd(kubectl, CRDS[0])["spec"]["versions"]] == ["v1", "v2"]

    # the custom resources, as they are, reconciled; SKA's smoke test sees them Running
    outcomes = Operator(api_client).settle(db_key(DATABASEDS), ds_key(TANGOTEST))
    assert {outcome.state for outcome in outcomes.values()} == {"Running"}
    listed = _custom(api_client).list_namespaced_custom_object(
        "tango.tango-controls.org", "v2", "default", "deviceservers"
    )
    assert [(i["metadata"]["name"], i["status"]["state"]) for i in listed["items"]] == [
        (TANGOTEST, "Running")
    ]
    ours = client.AppsV1Api(api_client).list_namespaced_stateful_set(
        "default", label_selector=f"app.kubernetes.io/managed-by={crd.MANAGED_BY}"
    )
    assert sorted(s.metadata.name for s in ours.items) == sorted(
        [TANGOTEST, DATABASEDS, f"{DATABASEDS}-tangodb"]
    )


def test_a_finalizer_of_the_old_operator_holds_a_deleted_cr_until_it_is_removed(
    kube_client: client.ApiClient, kubectl: Cli
) -> None:
    """The operator removes only its own finalizer; the old one is removed as the doc says."""
    operator = Operator(kube_client)
    body = device_server("motor", databaseds="tango-databaseds", dependsOn=["db-host:3306"])
    body["metadata"]["finalizers"] = [OLD_FINALIZER]
    custom = _custom(kube_client)
    custom.create_namespaced_custom_object(crd.GROUP, crd.VERSION, "default", "deviceservers", body)
    operator.settle(ds_key("motor"))
    held = custom.get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "motor"
    )
    assert held["metadata"]["finalizers"] == [OLD_FINALIZER, crd.FINALIZER]

    custom.delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "motor"
    )
    operator.reconcile(ds_key("motor"))  # the operator's cleanup, its finalizer released
    held = custom.get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "motor"
    )
    assert held["metadata"]["finalizers"] == [OLD_FINALIZER]
    assert held["metadata"]["deletionTimestamp"]
    apps = client.AppsV1Api(kube_client)
    assert apps.read_namespaced_stateful_set("motor", "default"), "its server still runs"

    guarded = [
        {"op": "test", "path": "/metadata/finalizers/0", "value": OLD_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    kubectl.run("patch", "deviceserver", "motor", "-n", "default", "--type=json",
                "-p", json.dumps(guarded))  # fmt: skip
    # gone; its children follow by the garbage collector (on a real cluster once it watches
    # the kind: up to half a minute after the CRD appeared)
    kubectl.run("wait", "--for=delete", "deviceserver/motor", "--timeout=30s")


def test_an_application_chart_switched_to_global_operator_true_is_taken_over(
    kube_client: client.ApiClient, kubectl: Cli, helm: Cli
) -> None:
    """From ska-tango-util's charts without an operator: ``helm upgrade … global.operator=true``.

    Helm replaces the server's StatefulSet and Service by the custom resources; the operator
    then makes children of the same names, its own.
    """
    chart = kubectl.workdir / "ska-app"
    shutil.copytree(APP_CHART, chart)
    (chart / "crs").mkdir()
    for sample in ("ska-databaseds.yaml", "ska-tangotest.yaml"):
        shutil.copy(SAMPLES / sample, chart / "crs" / sample)
    helm.run("install", "app", str(chart), "-n", "default")
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    legacy = apps.read_namespaced_stateful_set(TANGOTEST, "default")
    assert legacy.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"

    helm.run("upgrade", "app", str(chart), "-n", "default", "--reuse-values",
             "--set", "global.operator=true")  # fmt: skip
    kubectl.run("wait", "--for=delete", f"statefulset/{TANGOTEST}", f"service/{TANGOTEST}",
                "--timeout=60s")  # fmt: skip
    outcomes = Operator(kube_client).settle(db_key(DATABASEDS), ds_key(TANGOTEST))
    assert {outcome.state for outcome in outcomes.values()} == {"Running"}
    for child in (
        apps.read_namespaced_stateful_set(TANGOTEST, "default"),
        core.read_namespaced_service(TANGOTEST, "default"),
    ):
        assert child.metadata.labels["app.kubernetes.io/managed-by"] == crd.MANAGED_BY
        assert child.metadata.uid != legacy.metadata.uid
        assert child.metadata.owner_references[0].kind == "DeviceServer"

    helm.run("upgrade", "app", str(chart), "-n", "default", "--reuse-values")
    assert (
        apps.read_namespaced_stateful_set(TANGOTEST, "default").metadata.labels[
            "app.kubernetes.io/managed-by"
        ]
        == crd.MANAGED_BY
    ), "later upgrades of the release leave the operator's children alone"
    helm.run("uninstall", "app", "-n", "default")
