"""``helm install``, upgrade and uninstall of the chart in kubeemu.

Helm 3.17 with OpenAPI validation on; generated passwords survive the upgrade; default and all-on
values; the ServiceMonitor appears exactly when the cluster serves its API.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.chart.chart import CHART, DATA
from tests.conftest import Cli

pytestmark = [pytest.mark.helm, pytest.mark.kubectl]
JsonDict = dict[str, Any]

SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    plural: servicemonitors
    singular: servicemonitor
    kind: ServiceMonitor
    listKind: ServiceMonitorList
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def _get(kubectl: Cli, *args: str) -> JsonDict:
    decoded: JsonDict = json.loads(kubectl.run("get", *args, "-o", "json").stdout)
    return decoded


def _names(kubectl: Cli, kind: str, *scope: str) -> set[str]:
    listed = _get(kubectl, kind, *scope)
    return {item["metadata"]["name"] for item in listed["items"]}


def _secret_value(kubectl: Cli, name: str, key: str) -> str:
    secret = _get(kubectl, "secret", name, "-n", "tango")
    return base64.b64decode(secret["data"][key]).decode()


@pytest.mark.slow
def test_install_upgrade_uninstall(helm: Cli, kubectl: Cli) -> None:
    result = helm.run(
        "install", "op", str(CHART), "--namespace", "tango", "--create-namespace",
        "--timeout", "60s",
    )  # fmt: skip
    assert "kubectl get databaseds,deviceservers -A" in result.stdout
    assert "port-forward service/op-tango-operator-flower 5555:5555" in result.stdout

    assert {
        "deviceservers.tango.tango-controls.org",
        "databaseds.tango.tango-controls.org",
    } <= _names(kubectl, "crd")
    kubectl.run("wait", "--for=condition=Established", "crd/deviceservers.tango.tango-controls.org")
    scope = ("-n", "tango")
    assert _names(kubectl, "deployments", *scope) == {
        "op-tango-operator-watcher",
        "op-tango-operator-worker",
        "op-tango-operator-flower",
    }
    assert _names(kubectl, "statefulsets", *scope) == {"op-tango-operator-redis"}
    assert {
        "op-tango-operator-redis",
        "op-tango-operator-flower",
        "op-tango-operator-watcher-metrics",
        "op-tango-operator-worker-metrics",
    } <= _names(kubectl, "services", *scope)
    assert {
        "op-tango-operator-watcher",
        "op-tango-operator-worker",
        "op-tango-operator-flower",
        "op-tango-operator-redis",
    } <= _names(kubectl, "serviceaccounts", *scope)
    assert {"op-tango-operator-watcher", "op-tango-operator-worker"} <= _names(
        kubectl, "clusterroles"
    )
    assert {"op-tango-operator-watcher", "op-tango-operator-worker"} <= _names(
        kubectl, "clusterrolebindings"
    )
    assert "op-tango-operator-watcher-leader-election" in _names(kubectl, "roles", *scope)
    assert "op-tango-operator-dashboard" in _names(kubectl, "configmaps", *scope)
    watcher = _get(kubectl, "deployment", "op-tango-operator-watcher", *scope)
    assert watcher["spec"]["replicas"] == 2
    # the bundled Redis' StatefulSet runs (kubeemu's StatefulSet controller)
    kubectl.run(
        "wait", "--for=jsonpath={.status.readyReplicas}=1", "statefulset/op-tango-operator-redis",
        *scope, "--timeout=30s",
    )  # fmt: skip

    redis_password = _secret_value(kubectl, "op-tango-operator-redis", "redis-password")
    flower_password = _secret_value(kubectl, "op-tango-operator-flower", "password")
    helm.run("upgrade", "op", str(CHART), "--namespace", "tango", "--set", "worker.replicaCount=3")
    assert _get(kubectl, "deployment", "op-tango-operator-worker", *scope)["spec"]["replicas"] == 3
    assert _secret_value(kubectl, "op-tango-operator-redis", "redis-password") == redis_password
    assert _secret_value(kubectl, "op-tango-operator-flower", "password") == flower_password

    helm.run("uninstall", "op", "--namespace", "tango", "--timeout", "60s")
    assert _names(kubectl, "deployments", *scope) == set()
    assert _names(kubectl, "statefulsets", *scope) == set()
    assert "op-tango-operator-watcher" not in _names(kubectl, "clusterroles")
    # Helm never deletes what it installed from crds/: the custom resources survive
    assert "deviceservers.tango.tango-controls.org" in _names(kubectl, "crd")


def test_install_all_on_with_and_without_the_service_monitor_api(helm: Cli, kubectl: Cli) -> None:
    for namespace in ("tango", "lab", "beamline"):
        kubectl.run("create", "namespace", namespace)
    values = ("--namespace", "tango", "-f", str(DATA / "values-all-on.yaml"))
    result = helm.run("install", "op", str(CHART), *values)
    assert "this cluster serves no monitoring.coreos.com/v1" in result.stdout
    scope = ("-n", "tango")
    assert _names(kubectl, "horizontalpodautoscalers", *scope) == {"op-tango-operator-worker"}
    assert _names(kubectl, "poddisruptionbudgets", *scope) == {
        "op-tango-operator-watcher",
        "op-tango-operator-worker",
    }
    for namespace in ("lab", "beamline"):
        assert _names(kubectl, "roles", "-n", namespace) == {
            "op-tango-operator-watcher",
            "op-tango-operator-worker",
        }
    assert "op-tango-operator-watcher-namespaces" in _names(kubectl, "clusterroles")

    # the Prometheus operator's API appears: the next upgrade creates the ServiceMonitor
    kubectl.run("apply", "-f", "-", input_text=SERVICE_MONITOR_CRD)
    kubectl.run("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    result = helm.run("upgrade", "op", str(CHART), *values)
    assert "A ServiceMonitor op-tango-operator lets the Prometheus operator" in result.stdout
    monitor = _get(kubectl, "servicemonitor", "op-tango-operator", *scope)
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "http"]
    helm.run("uninstall", "op", "--namespace", "tango")
    assert _names(kubectl, "servicemonitors", *scope) == set()
