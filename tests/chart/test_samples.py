"""The samples in helm/samples: a DatabaseDS and a DeviceServer chain (C → B → A).

They are samples that the CRDs accept (kubectl apply into kubeemu),
that render without an Error, written with the keys of ``tests/data/crs``, whose ``dependsOn``
entries are devices of the other samples, and whose scripts are small PyTango servers importing only
``tango``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, Cli

SAMPLES = ROOT / "helm" / "samples"
JsonDict = dict[str, Any]


def _load(directory: Path) -> list[JsonDict]:
    return [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


DOCUMENTS = _load(SAMPLES)
DEVICE_SERVERS = {d["metadata"]["name"]: d for d in DOCUMENTS if d["kind"] == "DeviceServer"}


def _devices(config: str) -> set[str]:
    servers = json.loads(config)["servers"]
    return {
        device
        for instances in servers.values()
        for classes in instances.values()
        for devices in classes.values()
        for device in devices
    }


def test_kinds_and_chain() -> None:
    assert [d["kind"] for d in DOCUMENTS].count("DatabaseDS") == 1
    assert len(DEVICE_SERVERS) == 3
    provided = {name: _devices(ds["spec"]["config"]) for name, ds in DEVICE_SERVERS.items()}
    provider_of = {device: name for name, devices in provided.items() for device in devices}
    needs = {
        name: {provider_of[d] for d in ds["spec"].get("dependsOn") or []}
        for name, ds in DEVICE_SERVERS.items()
    }
    assert needs == {
        "sample-source": set(),
        "sample-relay": {"sample-source"},
        "sample-display": {"sample-relay"},
    }
    database = next(d for d in DOCUMENTS if d["kind"] == "DatabaseDS")
    for ds in DEVICE_SERVERS.values():
        assert ds["spec"]["databaseds"] == database["metadata"]["name"]


def test_keys_are_those_of_the_ska_charts() -> None:
    reference = _load(ROOT / "tests" / "data" / "crs")
    for kind in ("DeviceServer", "DatabaseDS"):
        known = {key for d in reference if d["kind"] == kind for key in d["spec"]}
        for sample in (d for d in DOCUMENTS if d["kind"] == kind):
            assert set(sample["spec"]) <= known, sample["metadata"]["name"]


@pytest.mark.parametrize("name", sorted(DEVICE_SERVERS))
def test_scripts_are_pytango_servers_importing_only_tango(name: str) -> None:
    spec = DEVICE_SERVERS[name]["spec"]
    tree = ast.parse(spec["script"])
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    assert imported == {"tango"}
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    assert spec["dsname"] in classes, "PyTango names the server after the script (dsname.py)"
    bases = [ast.unparse(base) for base in classes[spec["dsname"]].bases]
    assert bases == ["Device"]
    config_classes = {
        cls for instances in json.loads(spec["config"])["servers"].values()
        for classes_ in instances.values() for cls in classes_
    }  # fmt: skip
    assert config_classes == {spec["dsname"]}


@pytest.mark.parametrize("name", sorted(DEVICE_SERVERS))
def test_scripts_define_their_device_class(name: str, tmp_path: Path) -> None:
    """Import each script with the real PyTango (not run: no TANGO host here)."""
    spec = DEVICE_SERVERS[name]["spec"]
    script = tmp_path / f"{spec['dsname']}.py"
    script.write_text(spec["script"])
    probe = (
        "import importlib.util, sys, tango.server\n"
        f"s = importlib.util.spec_from_file_location('sample', {str(script)!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        f"assert issubclass(getattr(m, {spec['dsname']!r}), tango.server.Device)\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_samples_render_without_errors() -> None:
    files = [arg for path in sorted(SAMPLES.glob("*.yaml")) for arg in ("-f", str(path))]
    result = subprocess.run(
        [sys.executable, "-m", "tango_operator.cli", "render", *files, "-n", "tango-samples"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert kinds.count("StatefulSet") >= 5  # 3 servers, the TANGO DB and the DataBaseds


@pytest.mark.kubectl
def test_the_crds_accept_the_samples(kubectl: Cli) -> None:
    kubectl.run("apply", "-f", str(ROOT / "helm" / "tango-operator" / "crds"))
    kubectl.run(
        "wait", "--for=condition=Established", "--timeout=30s",
        "crd/deviceservers.tango.tango-controls.org", "crd/databaseds.tango.tango-controls.org",
    )  # fmt: skip
    kubectl.run("create", "namespace", "tango-samples")
    result = kubectl.run("apply", "-n", "tango-samples", "-f", str(SAMPLES))
    assert "Warning" not in result.stderr, result.stderr
    listed = json.loads(
        kubectl.run("get", "deviceservers,databaseds", "-n", "tango-samples", "-o", "json").stdout
    )
    assert len(listed["items"]) == 4
