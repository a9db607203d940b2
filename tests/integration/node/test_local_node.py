"""The local kubelet as the Node of a real control plane.

Real kube-apiserver, StatefulSet controller and kube-scheduler (the session's ``control_plane``),
``devstack.runner.node.LocalNode`` as the node, real processes, and the pinned kubectl for
``kubectl logs`` (kube-apiserver forwards it to the node's HTTPS endpoint). The pods run a
small Python program through a plain container command (``python3``, which the plan maps to
this interpreter); nothing here is the operator's.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from devstack.runner.node import LEASE_NAMESPACE, LocalNode
from tests.conftest import Cli
from tests.integration.node.conftest import NODE
from tests.support.workers import wait_for

JsonDict = dict[str, Any]

SERVING = """\
import os, time
print("hello from", os.environ["POD_NAME"], flush=True)
for tick in range(100000):
    print("tick", tick, flush=True)
    time.sleep(0.2)
"""
CRASHING = """\
import sys
print("about to fail", flush=True)
sys.exit(3)
"""


def statefulset(name: str, replicas: int, program: str) -> JsonDict:
    """A StatefulSet whose pods run ``program`` with ``python3 -c``."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # this module's node: a simulated one of the session may be up as well
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11-slim",
                            "command": ["python3", "-u", "-c", program],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        }
                    ],
                },
            },
        },
    }


def _pod(api: client.ApiClient, namespace: str, name: str) -> JsonDict | None:
    try:
        found = client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    pod: JsonDict = api.sanitize_for_serialization(found)
    return pod


def _ready_replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    status = client.AppsV1Api(api).read_namespaced_stateful_set(name, namespace).status
    return int(status.ready_replicas or 0) if status else 0


def _pid(node: LocalNode, namespace: str, name: str) -> int:
    (local,) = [
        p
        for p in node.kubelet.running.values()
        if p is not None and p.name == f"{namespace}/{name}"
    ]
    assert local.process is not None
    return local.process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_node_registers_ready_and_keeps_its_lease(
    node_api: client.ApiClient, local_node: LocalNode
) -> None:
    core = client.CoreV1Api(node_api)
    node: JsonDict = node_api.sanitize_for_serialization(core.read_node(NODE))
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions == {
        "Ready": "True",
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
    }
    assert node["status"]["allocatable"]["pods"] == "1k"  # 1000, as the server writes it
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    server_version = client.VersionApi(node_api).get_code().git_version
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == server_version
    assert (info["operatingSystem"], info["architecture"]) == ("linux", "amd64")
    assert local_node.server is not None
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == local_node.server.port
    # the admission's not-ready taint is lifted (no node-lifecycle controller runs here)
    assert not node["spec"].get("taints")

    leases = client.CoordinationV1Api(node_api)
    first = leases.read_namespaced_lease(NODE, LEASE_NAMESPACE)
    assert first.spec.holder_identity == NODE
    assert first.metadata.owner_references[0].uid == node["metadata"]["uid"]
    wait_for(
        lambda: (
            leases.read_namespaced_lease(NODE, LEASE_NAMESPACE).spec.renew_time
            > first.spec.renew_time
        ),
        timeout=10,
        what="the Lease renewed",
    )

    def heartbeat() -> datetime:
        (ready,) = [c for c in core.read_node(NODE).status.conditions if c.type == "Ready"]
        return ready.last_heartbeat_time  # type: ignore[no-any-return]

    beat = heartbeat()
    wait_for(lambda: heartbeat() > beat, timeout=15, what="the Ready heartbeat refreshed")

    # deleted, the Node is registered again (a new object), Ready
    core.delete_node(NODE)

    def registered_again() -> bool:
        try:
            again = core.read_node(NODE)
        except client.ApiException:
            return False
        return bool(again.metadata.uid != node["metadata"]["uid"] and again.status.conditions)

    wait_for(registered_again, timeout=20, what="the Node registered again")

    def lease_of_the_new_node() -> bool:
        try:
            lease = leases.read_namespaced_lease(NODE, LEASE_NAMESPACE)
        except client.ApiException:  # the garbage collector took it with the old Node
            return False
        return bool(lease.metadata.owner_references[0].uid == core.read_node(NODE).metadata.uid)

    wait_for(lease_of_the_new_node, timeout=20, what="the Lease owned by the new Node")


def test_statefulset_pods_are_scheduled_here_and_run_ready(
    node_api: client.ApiClient, local_node: LocalNode, namespace: str
) -> None:
    client.AppsV1Api(node_api).create_namespaced_stateful_set(
        namespace, statefulset("web", 2, SERVING)
    )
    wait_for(
        lambda: _ready_replicas(node_api, namespace, "web") == 2,
        timeout=60,
        interval=0.3,
        what="the StatefulSet controller counting 2 ready replicas",
    )
    for name in ("web-0", "web-1"):
        pod = _pod(node_api, namespace, name)
        assert pod is not None
        assert pod["spec"]["nodeName"] == NODE
        status = pod["status"]
        assert status["phase"] == "Running"
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert conditions[kind] == "True", kind
        assert (status["hostIP"], status["podIP"]) == ("127.0.0.1", "127.0.0.1")
        assert status["startTime"]
        (container,) = status["containerStatuses"]
        assert container["name"] == "main"
        assert (container["ready"], container["started"], container["restartCount"]) == (
            True,
            True,
            0,
        )
        assert "startedAt" in container["state"]["running"]
        assert _alive(_pid(local_node, namespace, name))


def test_a_crashing_container_is_restarted_with_its_exit_code(
    node_api: client.ApiClient, local_node: LocalNode, namespace: str
) -> None:
    client.AppsV1Api(node_api).create_namespaced_stateful_set(
        namespace, statefulset("crash", 1, CRASHING)
    )

    def restarted_twice() -> bool:
        pod = _pod(node_api, namespace, "crash-0")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return bool(statuses and statuses[0]["restartCount"] >= 2)

    wait_for(restarted_twice, timeout=60, interval=0.3, what="restartCount reaching 2")
    pod = _pod(node_api, namespace, "crash-0")
    assert pod is not None
    (container,) = pod["status"]["containerStatuses"]
    terminated = container["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["startedAt"] <= terminated["finishedAt"]
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: it is being restarted
    assert container["ready"] is False or container["state"].get("running")
    assert _ready_replicas(node_api, namespace, "crash") == 0


def test_kubectl_logs_reads_the_process_output(
    node_api: client.ApiClient, local_node: LocalNode, namespace: str, node_kubectl: Cli
) -> None:
    apps = client.AppsV1Api(node_api)
    apps.create_namespaced_stateful_set(namespace, statefulset("web", 1, SERVING))
    apps.create_namespaced_stateful_set(namespace, statefulset("crash", 1, CRASHING))
    wait_for(
        lambda: _ready_replicas(node_api, namespace, "web") == 1, timeout=60, what="web-0 ready"
    )

    logs = node_kubectl.run("logs", "-n", namespace, "web-0").stdout
    assert logs.startswith("hello from web-0\ntick 0\n")
    assert "--- start" not in logs, "only the process's own output"
    wait_for(
        lambda: "tick 3" in node_kubectl.run("logs", "-n", namespace, "web-0").stdout,
        timeout=10,
        what="more output",
    )
    last = node_kubectl.run("logs", "-n", namespace, "web-0", "--tail=1").stdout
    assert last.count("\n") == 1
    assert last.startswith("tick ")
    assert node_kubectl.run("logs", "-n", namespace, "web-0", "--limit-bytes=5").stdout == "hello"
    missing = node_kubectl.run("logs", "-n", namespace, "web-0", "--previous", check=False)
    assert missing.returncode != 0
    assert 'previous terminated container "main" in pod "web-0" not found' in missing.stderr

    def restarted() -> bool:
        pod = _pod(node_api, namespace, "crash-0")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return bool(statuses and statuses[0]["restartCount"] >= 1)

    wait_for(restarted, timeout=60, what="crash-0 restarted")
    previous = node_kubectl.run("logs", "-n", namespace, "crash-0", "--previous").stdout
    assert previous == "about to fail\n"


def test_scaling_down_stops_the_process_and_ends_a_followed_log(
    node_api: client.ApiClient, local_node: LocalNode, namespace: str, node_kubectl: Cli
) -> None:
    apps = client.AppsV1Api(node_api)
    apps.create_namespaced_stateful_set(namespace, statefulset("web", 1, SERVING))
    wait_for(
        lambda: _ready_replicas(node_api, namespace, "web") == 1, timeout=60, what="web-0 ready"
    )
    pid = _pid(local_node, namespace, "web-0")
    follow = node_kubectl.popen("logs", "-n", namespace, "web-0", "--follow")
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "hello from web-0\n"
        assert follow.stdout.readline().startswith("tick ")  # streamed as it is written

        apps.patch_namespaced_stateful_set_scale("web", namespace, {"spec": {"replicas": 0}})
        wait_for(lambda: not _alive(pid), timeout=30, what="the process stopped")
        wait_for(
            lambda: _pod(node_api, namespace, "web-0") is None,
            timeout=30,
            what="the pod deleted by its kubelet",
        )
        rest, _ = follow.communicate(timeout=30)  # the stream ends with the process
        assert follow.returncode == 0
        # whatever the process wrote before it stopped (maybe nothing more), then the end
        assert all(line.startswith("tick ") for line in rest.splitlines()), rest
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert not [p for p in local_node.kubelet.running.values() if p and namespace in p.name]


def test_the_log_endpoint_speaks_https_as_a_kubelet(local_node: LocalNode) -> None:
    assert local_node.server is not None
    base = f"https://127.0.0.1:{local_node.server.port}"
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"{base}/healthz", context=unverified, timeout=10) as answer:
        assert answer.read() == b"ok"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(
            f"{base}/containerLogs/none/nope/main", context=unverified, timeout=10
        )
    assert missing.value.code == 404
    assert missing.value.read() == b'pod "nope" does not exist'
