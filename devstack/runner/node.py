"""This machine as a Node of an API server: registration, heartbeat, kubelet, log endpoint.

kube-scheduler (or kubeemu's stand-in) binds pods only to a Node that is there and
schedulable, and kube-apiserver (and kubeemu, the same way) forwards ``kubectl logs`` to the
kubelet of the pod's Node; neither ``devstack.controlplane`` nor kubeemu runs a kubelet or a
container runtime. ``LocalNode`` plays that part, as kwok does for
scale tests but with the pods' processes really run, by starting and stopping together:

- ``devstack.runner.nodeagent.NodeAgent``: the Node object, its Lease and heartbeat;
- ``devstack.runner.kubelet.LocalKubelet`` with ``node_name``: runs the pods bound to the Node
  and writes their status;
- ``devstack.runner.volumes.LocalVolumeProvisioner`` reserves a local volume for every
  pending PersistentVolumeClaim (the cluster's storage provisioner).
- ``devstack.runner.logserver.KubeletServer``: answers the log requests the API server
  forwards, over HTTPS with a certificate of a throw-away CA (``devstack.pki``, made under the
  kubelet's work directory), on a free loopback port that the Node advertises.

Stopping it stops the pods' processes; the Node and its Lease stay, as a stopped kubelet's do.
"""

from __future__ import annotations

import threading
from types import TracebackType

from kubernetes import client

from devstack import pki
from devstack.runner import plan
from devstack.runner.kubelet import LocalKubelet
from devstack.runner.logserver import KubeletServer
from devstack.runner.nodeagent import LEASE_NAMESPACE, NODE_NAME, NodeAgent
from devstack.runner.process import RestartPolicy
from devstack.runner.volumes import LocalVolumeProvisioner

__all__ = ["LEASE_NAMESPACE", "NODE_NAME", "LocalNode", "NodeAgent"]


class LocalNode:
    """The agent, the kubelet and the log endpoint of one Node, started and stopped together."""

    def __init__(
        self,
        api_client: client.ApiClient,
        settings: plan.Settings,
        *,
        name: str = NODE_NAME,
        restart: RestartPolicy | None = None,
        probe_period_cap: float = 1.0,
        tick: float = 0.2,
        lease_period: float = 10.0,
        status_period: float = 60.0,
        simulate: bool = False,
    ) -> None:
        """``simulate``: the kubelet runs no process and reports every pod ready at once."""
        self.api_client = api_client
        self.settings = settings
        self.name = name
        self.lease_period = lease_period
        self.status_period = status_period
        self.kubelet = LocalKubelet(
            api_client,
            settings,
            restart=restart,
            probe_period_cap=probe_period_cap,
            tick=tick,
            node_name=name,
            simulate=simulate,
        )
        self.server: KubeletServer | None = None
        self.agent: NodeAgent | None = None
        self.volumes: LocalVolumeProvisioner | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Serve the log endpoint, register the Node, then run the heartbeat and the kubelet.

        The Node exists when this returns; on failure whatever started is stopped.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        secrets = self.settings.workdir / "pki"
        ca = pki.make_ca(secrets, f"{self.name}-ca")
        serving = pki.issue(ca, secrets, self.name, (plan.LOCAL_ADDRESS, self.name))
        self.server = KubeletServer(
            self.kubelet, serving.cert_file, serving.key_file, address=plan.LOCAL_ADDRESS
        )
        self.server.start()
        self.agent = NodeAgent(
            self.api_client,
            kubelet_port=self.server.port,
            name=self.name,
            lease_period=self.lease_period,
            status_period=self.status_period,
        )
        self.agent.register()
        self.volumes = LocalVolumeProvisioner(self.api_client, self.settings.workdir / "volumes")
        for target, label in (
            (self.agent.run, "node-agent"),
            (self.kubelet.run, "kubelet"),
            (self.volumes.run, "volumes"),
        ):
            thread = threading.Thread(target=target, args=(self._stop,), name=label, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the kubelet (and its processes), the heartbeat and the log endpoint.

        The Node and its Lease stay, as a stopped kubelet's do.
        """
        self._stop.set()
        if self.volumes is not None:
            self.volumes.interrupt()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> LocalNode:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
