"""The chart as the tests see it.

``helm template`` output (the pinned helm binary) for the value sets in ``tests/data``, and the
pieces of it the tests read (pods, containers, env, RBAC rules).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, TOOLS

JsonDict = dict[str, Any]
CHART = ROOT / "helm" / "tango-operator"
DATA = ROOT / "tests" / "data"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


@dataclass(frozen=True)
class ValueSet:
    """A named way of installing the chart: value files and extra helm arguments."""

    name: str
    values: tuple[str, ...] = ()
    """Value options (lint, template, install)."""
    api_versions: tuple[str, ...] = ()
    """Capabilities to pretend to ``helm template`` (no cluster to ask)."""

    @property
    def args(self) -> tuple[str, ...]:
        """The ``helm template`` arguments."""
        return self.values + tuple(f"--api-versions={api}" for api in self.api_versions)

    def __str__(self) -> str:
        return self.name


VALUE_SETS = (
    ValueSet("defaults"),
    ValueSet("all-on", ("-f", str(DATA / "values-all-on.yaml")), (SERVICE_MONITOR_API,)),
    ValueSet("external-redis", ("-f", str(DATA / "values-external-redis.yaml"))),
)


def helm(*args: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """The pinned helm, with its caches in ``workdir`` and no cluster."""
    binary = TOOLS / "helm"
    assert binary.exists(), "helm is missing: run `make tools`"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "HELM_CACHE_HOME": str(workdir / "cache"),
        "HELM_CONFIG_HOME": str(workdir / "config"),
        "HELM_DATA_HOME": str(workdir / "data"),
        "KUBECONFIG": str(workdir / "no-cluster"),
    }
    return subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def render(*args: str, workdir: Path, namespace: str = "tango") -> list[JsonDict]:
    """``helm template`` of the chart: the objects, in order."""
    result = helm("template", "op", str(CHART), "--namespace", namespace, *args, workdir=workdir)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[JsonDict], kind: str, name_suffix: str = "") -> JsonDict:
    matches = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(matches) == 1, f"{kind} *{name_suffix}: {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def pod_specs(objects: list[JsonDict]) -> Iterator[tuple[str, JsonDict]]:
    """``(workload name, pod spec)`` of every workload the chart renders."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def container(objects: list[JsonDict], workload_suffix: str) -> JsonDict:
    """The one container of a Deployment whose name ends with ``workload_suffix``."""
    spec = find(objects, "Deployment", workload_suffix)["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    found: JsonDict = only
    return found


def env_of(container_spec: JsonDict) -> dict[str, JsonDict]:
    """Env entries by name."""
    return {entry["name"]: entry for entry in container_spec.get("env") or []}
