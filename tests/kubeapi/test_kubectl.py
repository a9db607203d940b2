"""kubectl 1.31 (the real binary) against kubeemu."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from kubeemu.testing import KubeEmu
from tests.conftest import Cli
from tests.kubeapi.crds import WIDGET_CRD, widget

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


def _write(path: Path, *documents: Mapping[str, object]) -> str:
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def _install_crd(kubectl: Cli) -> None:
    crd_file = _write(kubectl.workdir / "crd.yaml", WIDGET_CRD)
    kubectl.run("apply", "-f", crd_file)
    kubectl.run("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=10s")


def test_apply_crd_wait_established_and_get_printer_columns(kubectl: Cli) -> None:
    _install_crd(kubectl)
    kubectl.run("apply", "-f", _write(kubectl.workdir / "w.yaml", widget("alpha", size=3)))
    output = kubectl.run("get", "widgets").stdout.splitlines()
    assert output[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    # the server sends null for the missing .status.phase; kubectl prints it as a blank cell
    name, size, age = output[1].split()
    assert (name, size) == ("alpha", "3")
    assert age.endswith("s")
    header = output[0]
    assert output[1][header.index("PHASE") : header.index("AGE")].strip() == ""
    # short name from discovery, -o json round trip
    as_json = json.loads(kubectl.run("get", "wd", "alpha", "-o", "json").stdout)
    assert as_json["spec"] == {"size": 3, "color": "red"}


def test_client_side_apply_then_update(kubectl: Cli) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "csa"},
        "data": {"a": "1"},
    }
    path = kubectl.workdir / "cm.yaml"
    assert "created" in kubectl.run("apply", "-f", _write(path, manifest)).stdout
    assert "unchanged" in kubectl.run("apply", "-f", str(path)).stdout
    manifest["data"] = {"a": "2", "b": "3"}
    assert "configured" in kubectl.run("apply", "-f", _write(path, manifest)).stdout
    data = json.loads(kubectl.run("get", "cm", "csa", "-o", "json").stdout)["data"]
    assert data == {"a": "2", "b": "3"}


def test_server_side_apply_conflict_then_force(kubectl: Cli) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa"},
        "data": {"a": "1"},
    }
    path = kubectl.workdir / "ssa.yaml"
    kubectl.run("apply", "--server-side", "--field-manager=first", "-f", _write(path, manifest))
    manifest["data"] = {"a": "2"}
    _write(path, manifest)
    conflict = kubectl.run(
        "apply", "--server-side", "--field-manager=second", "-f", str(path), check=False
    )
    assert conflict.returncode != 0
    assert 'conflict with "first"' in conflict.stderr
    assert ".data.a" in conflict.stderr
    kubectl.run(
        "apply", "--server-side", "--field-manager=second", "--force-conflicts", "-f", str(path)
    )
    assert json.loads(kubectl.run("get", "cm", "ssa", "-o", "json").stdout)["data"] == {"a": "2"}


def test_patch_types(kubectl: Cli) -> None:
    _install_crd(kubectl)
    kubectl.run("apply", "-f", _write(kubectl.workdir / "w.yaml", widget("p", size=1)))
    kubectl.run("patch", "widget", "p", "--type", "merge", "-p", '{"spec":{"size":5}}')
    kubectl.run(
        "patch",
        "widget",
        "p",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/color","value":"blue"}]',
    )
    spec = json.loads(kubectl.run("get", "widget", "p", "-o", "json").stdout)["spec"]
    assert spec == {"size": 5, "color": "blue"}
    refused = kubectl.run(
        "patch", "widget", "p", "--type", "strategic", "-p", '{"spec":{"size":6}}', check=False
    )
    assert refused.returncode != 0
    assert "unknown format" in refused.stderr or "UnsupportedMediaType" in refused.stderr

    kubectl.run("create", "configmap", "smp", "--from-literal=a=1")
    kubectl.run("patch", "configmap", "smp", "--type", "strategic", "-p", '{"data":{"b":"2"}}')
    data = json.loads(kubectl.run("get", "cm", "smp", "-o", "json").stdout)["data"]
    assert data == {"a": "1", "b": "2"}


def test_delete_waits_for_finalizer_removal(kubectl: Cli) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
    }
    kubectl.run("apply", "-f", _write(kubectl.workdir / "held.yaml", manifest))
    deleting = kubectl.popen("delete", "configmap", "held", "--wait=true", "--timeout=30s")
    time.sleep(1.5)
    assert deleting.poll() is None, "delete --wait must block while a finalizer is present"
    kubectl.run(
        "patch", "configmap", "held", "--type", "merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    stdout, stderr = deleting.communicate(timeout=20)
    assert deleting.returncode == 0, stderr
    assert 'configmap "held" deleted' in stdout
    assert kubectl.run("get", "configmap", "held", check=False).returncode != 0


def test_get_watch_sees_an_update(kubectl: Cli, kubeemu: KubeEmu) -> None:
    kubectl.run("create", "configmap", "watched", "--from-literal=a=1")
    watcher = kubectl.popen(
        "get",
        "configmap",
        "watched",
        "-w",
        "-o",
        'jsonpath={.data.a}{"\\n"}',
        "--request-timeout=20s",
    )
    time.sleep(1.5)
    kubectl.run("patch", "configmap", "watched", "--type", "merge", "-p", '{"data":{"a":"2"}}')
    time.sleep(1.5)
    watcher.terminate()
    stdout, _ = watcher.communicate(timeout=10)
    assert stdout.split() == ["1", "2"]
