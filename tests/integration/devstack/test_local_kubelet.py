"""The local kubelet with real processes.

Kubeemu (StatefulSets in manual mode, so pods wait for a kubelet), the manifests the operator
renders, PyTango's DataBaseds and a real PyTango device server started from a DeviceServer's
``script``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tango
from kubernetes import client

from devstack.ports import free_port
from devstack.runner import plan
from devstack.runner.kubelet import LocalKubelet
from devstack.runner.process import RestartPolicy
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.support.workers import wait_for
from workers import rendering
from workers.kube import Kube

JsonDict = dict[str, Any]
NAMESPACE = "default"

SERVER_SCRIPT = """\
from tango.server import Device, attribute, run

class Blinker(Device):
    @attribute(dtype=int)
    def count(self):
        return 7

if __name__ == "__main__":
    run((Blinker,))
"""


@dataclass
class Stack:
    kube: Kube
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    kubelet: LocalKubelet
    db_port: int

    def create(self, resource: JsonDict) -> JsonDict:
        kind = crd.Kind(resource["kind"])
        created: JsonDict = self.custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NAMESPACE, kind.plural, resource
        )
        return created

    def ready(self, statefulset: str) -> bool:
        found = self.apps.read_namespaced_stateful_set(statefulset, NAMESPACE)
        return bool(found.status and (found.status.ready_replicas or 0) >= 1)

    def container_status(self, pod: str) -> Any:
        statuses = self.core.read_namespaced_pod(pod, NAMESPACE).status.container_statuses
        return statuses[0] if statuses else None


@pytest.fixture
def stack(kubeemu: KubeEmu, kube_client: client.ApiClient, tmp_path: Path) -> Iterator[Stack]:
    kubeemu.controllers(statefulset="manual")
    db_port = free_port()
    settings = plan.Settings(
        workdir=tmp_path / "stack",
        host_map={f"tangodb.{NAMESPACE}.svc.cluster.local:10000": f"127.0.0.1:{db_port}"},
    )
    kubelet = LocalKubelet(
        kube_client, settings, restart=RestartPolicy(base=0.2, cap=1.0), probe_period_cap=0.2
    )
    stop = threading.Event()
    thread = threading.Thread(target=kubelet.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield Stack(
            kube=Kube(kube_client),
            core=client.CoreV1Api(kube_client),
            apps=client.AppsV1Api(kube_client),
            custom=client.CustomObjectsApi(kube_client),
            kubelet=kubelet,
            db_port=db_port,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the kubelet stops and takes its processes with it"


def _database(stack: Stack) -> tango.Database:
    stack.kube.create_if_absent(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NAMESPACE},
            "stringData": {"MYSQL_PASSWORD": "p", "MYSQL_ROOT_PASSWORD": "r"},
        }
    )
    resource = stack.create(
        {"apiVersion": crd.API_VERSION, "kind": "DatabaseDS", "metadata": {"name": "tangodb"}}
    )
    spec = crd.parse_database_ds(resource)
    for manifest in rendering.render_database_ds(
        resource, spec, credentials_secret="creds", databaseds_replicas=1
    ):
        stack.kube.apply(manifest)
    wait_for(lambda: stack.ready("tangodb-tangodb"), timeout=30, what="the MariaDB pod ready")
    wait_for(lambda: stack.ready("tangodb"), timeout=60, what="the DataBaseds pod ready")
    # ready = its port accepts connections (the pod's TCP probe); the DB device answers a
    # moment later, which is why the operator's own check is a real DB query
    connected: list[tango.Database] = []

    def answers() -> bool:
        try:
            connected.append(tango.Database("127.0.0.1", stack.db_port))
        except tango.DevFailed:
            return False
        return True

    wait_for(answers, timeout=30, interval=0.2, what="the DataBaseds answering")
    return connected[-1]


def _device_server(stack: Stack, name: str, device: str) -> list[JsonDict]:
    config: JsonDict = {"servers": {"Blinker": {name: {"Blinker": {device: {}}}}}}
    resource = stack.create(
        {
            "apiVersion": crd.API_VERSION,
            "kind": "DeviceServer",
            "metadata": {"name": name},
            "spec": {
                "dsname": "Blinker",
                "args": name,
                "script": SERVER_SCRIPT,
                "image": "registry.example/blinker:1",
                "databaseds": "tangodb",
                "config": json.dumps(config),
            },
        }
    )
    spec = crd.parse_device_server(resource)
    tango_host = crd.tango_host_for(
        spec.databaseds, namespace=NAMESPACE, cluster_domain="cluster.local"
    )
    return rendering.render_device_server(resource, spec, tango_host=tango_host, replicas=1)


def _register(database: tango.Database, server: str, device: str) -> None:
    info = tango.DbDevInfo()
    info.name, info._class, info.server = device, "Blinker", server
    database.add_device(info)


def _exported(database: tango.Database, device: str) -> bool:
    try:
        return bool(database.get_device_info(device).exported)
    except tango.DevFailed:
        return False


def test_databaseds_and_a_device_server_run_as_local_processes(stack: Stack) -> None:
    database = _database(stack)
    assert tango.DeviceProxy(f"tango://127.0.0.1:{stack.db_port}/sys/database/2").ping() > 0

    _register(database, "Blinker/blink", "lab/blink/1")
    for manifest in _device_server(stack, "blink", "lab/blink/1"):
        stack.kube.apply(manifest)
    wait_for(lambda: stack.ready("blink"), timeout=60, what="the device server pod ready")
    wait_for(lambda: _exported(database, "lab/blink/1"), timeout=30, what="the device exported")
    proxy = tango.DeviceProxy(f"tango://127.0.0.1:{stack.db_port}/lab/blink/1")
    assert proxy.read_attribute("count").value == 7
    pod = stack.core.read_namespaced_pod("blink-0", NAMESPACE)
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].restart_count == 0

    # the process dies: it is started again, and the restart shows in the pod status
    (local,) = [p for p in stack.kubelet.running.values() if p is not None and "blink" in p.name]
    assert local.process is not None
    os.killpg(local.process.pid, signal.SIGKILL)
    wait_for(
        lambda: (
            (stack.container_status("blink-0").restart_count or 0) >= 1 and stack.ready("blink")
        ),
        timeout=60,
        what="the device server restarted and ready again",
    )
    # SIGKILL, reported as a container runtime does: 128 + 9
    assert stack.container_status("blink-0").last_state.terminated.exit_code == 137

    # scaled to zero: the pod goes and so does its process
    pid = local.process.pid if local.process else None
    stack.apps.patch_namespaced_stateful_set_scale("blink", NAMESPACE, {"spec": {"replicas": 0}})
    wait_for(lambda: local.process is None, timeout=30, what="the process stopped")
    if pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_pod_that_cannot_run_yet_says_why_and_starts_once_it_can(stack: Stack) -> None:
    manifests = _device_server(stack, "broken", "lab/broken/1")
    (statefulset,) = [m for m in manifests if m["kind"] == "StatefulSet"]
    (config_map,) = [m for m in manifests if m["kind"] == "ConfigMap"]
    stack.kube.apply(statefulset)  # without its ConfigMap, the script volume cannot be made

    def reported() -> bool:
        status = stack.container_status("broken-0")
        return bool(status and status.state.waiting and status.state.waiting.message)

    wait_for(reported, timeout=30, what="the pod status to explain")
    waiting = stack.container_status("broken-0").state.waiting
    assert waiting.reason == "CreateContainerConfigError"
    assert 'configmap "broken-config" not found' in waiting.message
    time.sleep(0.5)
    assert not stack.ready("broken")

    # the ConfigMap arrives: the kubelet tries again (with its backoff) and starts the process
    stack.kube.apply(config_map)

    def started() -> bool:
        return any(
            local is not None and local.name == f"{NAMESPACE}/broken-0"
            for local in list(stack.kubelet.running.values())
        )

    wait_for(started, timeout=30, what="the process started once its ConfigMap exists")
    waiting = stack.container_status("broken-0").state.waiting
    assert waiting is None or waiting.reason != "CreateContainerConfigError"
