"""Helm 3.17 (the real binary) installs, upgrades and uninstalls a chart in kubeemu.

OpenAPI validation is on (no ``--disable-openapi-validation``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Cli

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")

CHART = Path(__file__).parent / "charts" / "sample"


def _get(kubectl: Cli, *args: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(kubectl.run("get", *args, "-o", "json").stdout)
    return decoded


@pytest.mark.slow
def test_install_upgrade_uninstall(helm: Cli, kubectl: Cli) -> None:
    helm.run("install", "demo", str(CHART), "--namespace", "default", "--wait", "--timeout", "60s")
    config = _get(kubectl, "configmap", "demo-config")
    assert config["data"] == {"greeting": "hello"}
    service = _get(kubectl, "service", "demo-svc")
    assert service["spec"]["clusterIP"].startswith("10.")  # type: ignore[index]
    statefulset = _get(kubectl, "statefulset", "demo-app")
    assert statefulset["status"]["readyReplicas"] == 1  # type: ignore[index]
    assert "deployed" in helm.run("status", "demo").stdout

    helm.run(
        "upgrade",
        "demo",
        str(CHART),
        "--set",
        "greeting=bonjour",
        "--set",
        "replicas=2",
        "--wait",
        "--timeout",
        "60s",
    )
    assert _get(kubectl, "configmap", "demo-config")["data"] == {"greeting": "bonjour"}
    assert _get(kubectl, "statefulset", "demo-app")["spec"]["replicas"] == 2  # type: ignore[index]
    history = helm.run("history", "demo", "-o", "json").stdout
    assert [entry["revision"] for entry in json.loads(history)] == [1, 2]

    helm.run("uninstall", "demo", "--wait", "--timeout", "60s")
    for kind, name in (
        ("configmap", "demo-config"),
        ("service", "demo-svc"),
        ("statefulset", "demo-app"),
    ):
        assert kubectl.run("get", kind, name, check=False).returncode != 0
    deadline = time.monotonic() + 10
    while kubectl.run("get", "pods", "-o", "name").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kubectl.run("get", "pods", "-o", "name").stdout.strip() == "", "GC removes the pods"


def _chart(root: Path, manifest: str) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(f"apiVersion: v2\nname: {root.name}\nversion: 0.1.0\n")
    (root / "templates" / "object.yaml").write_text(manifest)
    return root


def test_unknown_field_is_a_warning_as_on_a_real_server(helm: Cli) -> None:
    # helm 3.17 leaves field validation to the server and sends no fieldValidation
    # parameter, so a real apiserver applies its default (Warn): installed, with a warning.
    chart = _chart(
        helm.workdir / "unknown",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unknown\n"
        "data:\n  a: b\nbogusField: 1\n",
    )
    result = helm.run("install", "unknown", str(chart))
    assert 'unknown field "bogusField"' in result.stderr


def test_invalid_object_is_rejected_with_the_servers_message(helm: Cli) -> None:
    chart = _chart(
        helm.workdir / "invalid",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_DNS_Name\ndata:\n  a: b\n",
    )
    result = helm.run("install", "invalid", str(chart), check=False)
    assert result.returncode != 0
    assert 'ConfigMap "Not_A_DNS_Name" is invalid: metadata.name: Invalid value' in result.stderr
