"""A kubelet's log endpoint with fixed output, and Nodes and pods that lead to it, on any server.

For the ``pods/log`` tests that run one scenario on kubeemu and on the real kube-apiserver
(``tests/parity/scenarios.py::pod_logs``, ``tests/kubeapi/test_pod_logs.py``): both servers
forward ``GET …/pods/{name}/log`` to the kubelet of the pod's Node, so the test plays that
kubelet. ``FakeKubelet`` is ``devstack.runner.logserver.KubeletServer`` (the demo's log
endpoint, over HTTPS with a throw-away CA's certificate from ``devstack.pki``) on a
``LogSource`` that knows pods by name only: each name in ``outputs`` has a finished run with that
output (``previous=true`` gets ``PREVIOUS``); a name in ``failures`` gets that kubelet error;
any other pod is unknown (404, as a kubelet answers). ``node`` and ``pod`` are the objects the
scenarios create, through the official client, on whichever server: a Node that advertises the
endpoint (or another port), and pods bound to a Node by ``spec.nodeName`` (a pod without one
names a scheduler that does not exist, so no scheduler binds it). ``remove`` deletes them at
once (grace period 0: no kubelet would confirm a graceful deletion).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from devstack import pki
from devstack.runner.logserver import KubeletServer, LogUnavailableError, LogView
from devstack.runner.process import Run

JsonDict = dict[str, Any]
PREVIOUS = b"the previous run\n"
LOOPBACK = [
    {"type": "InternalIP", "address": "127.0.0.1"},
    {"type": "Hostname", "address": "localhost"},
]
"""A local kubelet's addresses (``devstack.runner.nodeagent``): kube-apiserver takes Hostname."""


class _Outputs:
    """The ``LogSource``: fixed outputs, fixed failures, every other pod unknown."""

    def __init__(
        self, directory: Path, outputs: Mapping[str, bytes], failures: Mapping[str, tuple[int, str]]
    ) -> None:
        self.views: dict[tuple[str, bool], LogView] = {}
        for pod, output in outputs.items():
            for previous, data in ((False, output), (True, PREVIOUS)):
                path = directory / f"{pod}-{previous}.log"
                path.write_bytes(data)
                run = Run(started_at=0.0, log_start=0, finished_at=1.0, log_end=len(data))
                self.views[pod, previous] = LogView(path, run)
        self.failures = dict(failures)

    def container_log(self, namespace: str, pod: str, container: str, *, previous: bool) -> LogView:
        del namespace, container
        if pod in self.failures:
            status, message = self.failures[pod]
            raise LogUnavailableError(status, message)
        view = self.views.get((pod, previous))
        if view is None:
            raise LogUnavailableError(404, f'pod "{pod}" does not exist')
        return view


@contextlib.contextmanager
def fake_kubelet(
    outputs: Mapping[str, bytes], failures: Mapping[str, tuple[int, str]] | None = None
) -> Iterator[KubeletServer]:
    """A started log endpoint on a free loopback port (``.port``), stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="fake-kubelet-") as temporary:
        directory = Path(temporary)
        ca = pki.make_ca(directory / "pki", "kubelet-ca")
        serving = pki.issue(ca, directory / "pki", "kubelet", ("127.0.0.1", "localhost"))
        source = _Outputs(directory, outputs, failures or {})
        server = KubeletServer(source, serving.cert_file, serving.key_file)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def node(api_client: client.ApiClient, name: str, addresses: list[JsonDict], port: int) -> None:
    """Create the Node ``name`` whose kubelet is at ``addresses`` on ``port``."""
    core = client.CoreV1Api(api_client)
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    endpoints = {"kubeletEndpoint": {"Port": port}}
    core.patch_node_status(name, {"status": {"addresses": addresses, "daemonEndpoints": endpoints}})


def pod(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    node_name: str | None,
    containers: Iterable[str] = ("main",),
    init_containers: Iterable[str] = (),
) -> None:
    """Create a pod bound to ``node_name`` (None: one that no scheduler ever binds)."""
    image = "registry.example/app:1"
    spec: JsonDict = {"containers": [{"name": c, "image": image} for c in containers]}
    if init_containers:
        spec["initContainers"] = [{"name": c, "image": image} for c in init_containers]
    if node_name is None:
        spec["schedulerName"] = "no-such-scheduler"
    else:
        spec["nodeName"] = node_name
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    client.CoreV1Api(api_client).create_namespaced_pod(namespace, body)


def remove(api_client: client.ApiClient, namespace: str, nodes: Iterable[str]) -> None:
    """Delete the pods of ``namespace`` (grace period 0) and the Nodes ``nodes``."""
    core = client.CoreV1Api(api_client)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    for name in nodes:
        with contextlib.suppress(client.ApiException):
            core.delete_node(name)
