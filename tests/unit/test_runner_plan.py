"""The local kubelet's translation of the operator's pods into local command lines.

The pods are built from the manifests the operator really renders.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.runner import plan
from tango_operator import crd
from workers import rendering

JsonDict = dict[str, Any]
DATA = Path(__file__).resolve().parents[1] / "data" / "crs"


class Objects:
    """An ObjectReader over the manifests of one render (no cluster needed)."""

    def __init__(self, manifests: list[JsonDict], secrets: Mapping[str, Mapping[str, str]]):
        self.maps = {
            m["metadata"]["name"]: m["data"] for m in manifests if m["kind"] == "ConfigMap"
        }
        self.secrets = secrets

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        assert namespace == "lab"
        return self.maps.get(name)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        assert namespace == "lab"
        return self.secrets.get(name)


def _resource(sample: str) -> JsonDict:
    resource: JsonDict = yaml.safe_load((DATA / sample).read_text())
    resource["metadata"].update(namespace="lab", uid="1234abcd-0000-0000-0000-000000000000")
    return resource


def _pod(statefulset: JsonDict) -> JsonDict:
    template = statefulset["spec"]["template"]
    return {
        "metadata": {
            "name": statefulset["metadata"]["name"] + "-0",
            "namespace": statefulset["metadata"]["namespace"],
            "uid": "feedbeef-0000-0000-0000-000000000000",
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


def _device_server(sample: str) -> tuple[JsonDict, Objects]:
    resource = _resource(sample)
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(
        spec.databaseds, namespace="lab", cluster_domain="cluster.local"
    )
    manifests = rendering.render_device_server(resource, spec, tango_host=tango_host, replicas=1)
    (statefulset,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    return _pod(statefulset), Objects(manifests, {})


def _ports() -> Any:
    numbers = iter(range(50001, 50100))
    return lambda: next(numbers)


def test_a_python_server_runs_its_script_with_local_ports_and_tango_host(tmp_path: Path) -> None:
    pod, objects = _device_server("python-server.yaml")
    host_map = {"databaseds-tango-base.lab.svc.cluster.local:10000": "127.0.0.1:20000"}
    settings = plan.Settings(workdir=tmp_path, host_map=host_map)
    launch = plan.plan_container(
        pod, pod["spec"]["containers"][0], objects, settings, allocate_port=_ports()
    )
    script = Path(launch.argv[1])
    assert launch.argv[0] == sys.executable
    assert script.is_file(), "the ConfigMap became a file"
    assert script.is_relative_to(tmp_path)
    assert "tango.server.run" in script.read_text()
    assert launch.argv[2:] == [
        "ps1",
        "-ORBendPoint",
        "giop:tcp::50001",
        "-ORBendPointPublish",
        "giop:tcp:127.0.0.1:50001",
    ]
    assert launch.env["TANGO_HOST"] == "127.0.0.1:20000"
    assert launch.env["TANGO_SERVER_PORT"] == "50001"
    assert launch.env["TANGO_ZMQ_HEARTBEAT_PORT"] == "50002"
    assert launch.env["TANGO_ZMQ_EVENT_PORT"] == "50003"
    assert launch.env["POWER_LOG_LEVEL"] == "INFO"
    assert launch.readiness_port == 50001
    assert launch.cwd.is_relative_to(tmp_path)


def test_a_command_is_mapped_to_a_local_program(tmp_path: Path) -> None:
    pod, objects = _device_server("ska-tangotest.yaml")
    settings = plan.Settings(
        workdir=tmp_path, commands={"/usr/local/bin/TangoTest": ("/usr/lib/tango/TangoTest",)}
    )
    launch = plan.plan_container(pod, pod["spec"]["containers"][0], objects, settings)
    assert launch.argv[0] == "/usr/lib/tango/TangoTest"
    assert launch.argv[1] == "test"


def test_the_databaseds_listens_where_the_host_map_says(tmp_path: Path) -> None:
    resource = _resource("ska-databaseds.yaml")
    spec = crd.parse_database_ds(resource)
    manifests = rendering.render_database_ds(
        resource, spec, credentials_secret="creds", databaseds_replicas=1
    )
    name = resource["metadata"]["name"]
    (statefulset,) = [
        m for m in manifests if m["kind"] == "StatefulSet" and m["metadata"]["name"] == name
    ]
    pod = _pod(statefulset)
    objects = Objects(manifests, {"creds": {"MYSQL_PASSWORD": "pw", "MYSQL_ROOT_PASSWORD": "r"}})
    host_map = {f"{name}.lab.svc.cluster.local:10000": "127.0.0.1:21000"}
    settings = plan.Settings(workdir=tmp_path, host_map=host_map)
    launch = plan.plan_container(pod, pod["spec"]["containers"][0], objects, settings)
    assert launch.argv[:3] == [sys.executable, "-m", "tango.databaseds.database"]
    assert launch.argv[3:] == [
        "2",
        "-ORBendPoint",
        "giop:tcp:127.0.0.1:21000",
        "-ORBendPointPublish",
        "giop:tcp:127.0.0.1:21000",
    ]
    assert launch.readiness_port == 21000
    assert launch.env["MYSQL_PASSWORD"] == "pw", "secretKeyRef resolved"


def test_kubernetes_variable_expansion() -> None:
    variables = {"A": "x", "B": "$(A)"}
    assert plan.expand("$(A)-$(B)-$(C)", variables) == "x-$(A)-$(C)"
    assert plan.expand("$$(A) costs $$5", variables) == "$(A) costs $5"


def test_missing_objects_are_reported_not_raised_later(tmp_path: Path) -> None:
    pod, _ = _device_server("python-server.yaml")
    with pytest.raises(plan.PlanError, match='configmap "powersupply-ps1-config" not found'):
        plan.plan_container(
            pod, pod["spec"]["containers"][0], Objects([], {}), plan.Settings(workdir=tmp_path)
        )
