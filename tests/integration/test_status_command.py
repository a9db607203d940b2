"""``tango-operator status`` against kubeemu with the operator's CRDs.

Resources in two namespaces with the statuses the workers write (Running, Waiting on a
dependency, a crash loop): the table names each, with what it waits for or why it fails, in
all namespaces or in one; an unreachable API server is a clear error, not a traceback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubeemu.testing import KubeEmu
from tango_operator import crd
from workers import status

JsonDict = dict[str, Any]


def _create(
    api: client.CustomObjectsApi, namespace: str, kind: str, name: str, state: JsonDict
) -> None:
    spec: JsonDict = {}
    if kind == "DeviceServer":
        spec = {
            "dsname": "Probe",
            "args": name,
            "command": "/bin/probe",
            "image": "registry.example/probe:1",
            "databaseds": "tango-db",
        }
    plural = crd.Kind(kind).plural
    api.create_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        namespace,
        plural,
        {"apiVersion": crd.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec},
    )
    api.patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, namespace, plural, name, {"status": state}
    )


def _ready(reason: str, value: str = "False") -> list[JsonDict]:
    return [
        {
            "type": "Ready",
            "status": value,
            "reason": reason,
            "message": "",
            "lastTransitionTime": "2026-12-05T10:00:00Z",
        }
    ]


def test_the_table_says_what_each_server_waits_for_or_why_it_fails(
    kubeemu: KubeEmu, kube_client: client.ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    core = client.CoreV1Api(kube_client)
    for namespace in ("lab", "ops"):
        core.create_namespace({"metadata": {"name": namespace}})
    api = client.CustomObjectsApi(kube_client)
    host = "tango-db.lab.svc.cluster.local:10000"
    _create(
        api,
        "lab",
        "DatabaseDS",
        "tango-db",
        {"state": "Running", "tangoHost": host, "conditions": _ready("Running", "True")},
    )
    _create(
        api,
        "lab",
        "DeviceServer",
        "motor",
        {
            "state": "Running",
            "tangoHost": host,
            "devices": ["lab/motor/1", "lab/motor/2"],
            "conditions": _ready("Running", "True"),
            "message": "device server running",
        },
    )
    _create(
        api,
        "lab",
        "DeviceServer",
        "camera",
        {
            "state": "Waiting",
            "tangoHost": host,
            "devices": ["lab/camera/1"],
            "conditions": _ready("DependenciesNotReady"),
            "unmetDependencies": [{"name": "lab/motor/3", "reason": "not defined in the TANGO DB"}],
        },
    )
    crash_loop = {
        "restartCount": 4,
        "reason": "CrashLoopBackOff",
        "lastExitCode": 1,
        "lastOutput": "Traceback\nRuntimeError: no calibration",
    }
    failing = {
        "state": "Pending",
        "conditions": _ready("CrashLoopBackOff"),
        "container": crash_loop,
    }
    _create(api, "ops", "DeviceServer", "crashy", failing)

    out = io.StringIO()
    assert status.main(["--kubeconfig", str(kubeemu.kubeconfig), "--wide"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "KIND",
        "NAME",
        "STATE",
        "REASON",
        "DEVICES",
        "TANGO",
        "HOST",
        "DETAIL",
    ]
    rows = {line.split()[2]: line for line in lines[1:]}
    assert set(rows) == {"tango-db", "motor", "camera", "crashy"}
    assert rows["motor"].split()[3:7] == ["Running", "Running", "2", host]
    assert "lab/motor/3: not defined in the TANGO DB" in rows["camera"]
    assert "CrashLoopBackOff" in rows["crashy"]
    assert "restarts 4, exit 1, RuntimeError: no calibration" in rows["crashy"]

    only = io.StringIO()
    assert status.main(["--kubeconfig", str(kubeemu.kubeconfig), "-n", "ops"], out=only) == 0
    assert [line.split()[2] for line in only.getvalue().splitlines()[1:]] == ["crashy"]


def test_an_unreachable_cluster_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    assert status.main(["--kubeconfig", str(kubeconfig)], out=io.StringIO()) == 1
    error = capsys.readouterr().err
    assert error.startswith("cannot read the cluster: listing databaseds"), error
    assert "Traceback" not in error


def test_device_states_in_the_table_and_each_device_under_its_server(
    kubeemu: KubeEmu, kube_client: client.ApiClient
) -> None:
    api = client.CustomObjectsApi(kube_client)
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": "lab"}})
    fault = "lab/motor/2 FAULT: no power"
    _create(
        api,
        "lab",
        "DeviceServer",
        "motor",
        {
            "state": "Running",
            "devices": ["lab/motor/1", "lab/motor/2"],
            "deviceSummary": "1/2 FAULT, 1 ON",
            "deviceHealth": [
                {"name": "lab/motor/2", "exported": True, "state": "FAULT", "status": "no power"},
                {"name": "lab/motor/1", "exported": True, "state": "ON", "status": "moving on"},
            ],
            "conditions": [
                *_ready("Running", "True"),
                {
                    "type": "DevicesHealthy",
                    "status": "False",
                    "reason": "DeviceFault",
                    "message": fault,
                    "lastTransitionTime": "2026-12-05T10:00:00Z",
                },
            ],
            "message": "device server running",
        },
    )
    kubeconfig = str(kubeemu.kubeconfig)
    out = io.StringIO()
    assert status.main(["--kubeconfig", kubeconfig, "--wide"], out=out) == 0
    (row,) = out.getvalue().splitlines()[1:]
    assert "1/2 FAULT, 1 ON" in row, "the devices' states counted"
    assert row.endswith(fault), "the unhealthy devices are the detail"

    listed = io.StringIO()
    assert status.main(["--kubeconfig", kubeconfig, "--wide", "--devices"], out=listed) == 0
    server, first, second = listed.getvalue().splitlines()[1:]
    assert server.split()[2] == "motor"
    assert first.split() == ["device", "lab/motor/2", "FAULT", "-", "no", "power"]
    assert second.split() == ["device", "lab/motor/1", "ON", "-", "moving", "on"]
