"""The Node of this machine in an API server (kube-apiserver or kubeemu): registration, Lease.

``NodeAgent`` (started by ``devstack.runner.node.LocalNode``) writes through the Kubernetes API
(official client, with the credentials it was given — the local control plane's admin, or
kubeemu's; the Node authorizer is not enabled there): it registers the Node (``local-node`` by
default) with the status a kubelet posts — Ready=True and the pressure conditions False,
generous capacity, the addresses, ``nodeInfo`` with the server's own version (read from
``/version``) as the kubelet's, and the port of the node's log endpoint in ``daemonEndpoints``
— renews the node's Lease in ``kube-node-lease`` every ``lease_period`` (10 s, a kubelet's
default), reads the Node back as often (deleted: it registers again) and refreshes the Ready
condition's heartbeat every ``status_period``. It removes nothing on stop: a kubelet that
stops leaves its Node and Lease behind.

kube-apiserver's TaintNodesByCondition admission taints a new Node ``not-ready`` (NoSchedule);
in a cluster the node-lifecycle controller lifts that once the Node is Ready, and as that
controller does not run in ``devstack.controlplane``, the agent lifts it (and ``unreachable``)
itself (kubeemu adds no such taint). The addresses are InternalIP 127.0.0.1 and Hostname
``localhost``: kube-apiserver (and kubeemu) tries Hostname first
(``--kubelet-preferred-address-types``), so that name has to resolve here.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from devstack.runner import plan

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]

NODE_NAME = "local-node"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
"""Seconds, as a kubelet's ``nodeLeaseDurationSeconds``."""
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}
CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)  # fmt: skip
LIFECYCLE_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
"""Taints the node-lifecycle controller puts on and takes off by the Ready condition."""
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
MERGE_PATCH = "application/merge-patch+json"


def _seconds(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def _os_image() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


def node_info(kubelet_version: str) -> JsonDict:
    """``status.nodeInfo``: this machine's, with ``kubelet_version`` as the kubelet's."""
    return {
        "machineID": _first_line("/etc/machine-id"),
        "systemUUID": "",
        "bootID": _first_line("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": f"local://python-{platform.python_version()}",
        "kubeletVersion": kubelet_version,
        "kubeProxyVersion": kubelet_version,
        "operatingSystem": "linux",
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
    }


def node_status(
    *,
    address: str,
    hostname: str,
    port: int,
    info: JsonDict,
    since: dict[str, str],
    now: datetime,
) -> JsonDict:
    """The Node's status as a healthy kubelet posts it (``since``: each condition's transition)."""
    return {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "conditions": [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": _seconds(now),
                "lastTransitionTime": since.get(kind, _seconds(now)),
            }
            for kind, status, reason, message in CONDITIONS
        ],
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": info,
    }


class NodeAgent:
    """Registers one Node and keeps it alive: Lease renewal, heartbeat (see the module doc)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        kubelet_port: int,
        name: str = NODE_NAME,
        address: str = plan.LOCAL_ADDRESS,
        hostname: str = "localhost",
        lease_period: float = 10.0,
        status_period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client
        self.name = name
        self.kubelet_port = kubelet_port
        self.address = address
        self.hostname = hostname
        self.lease_period = lease_period
        self.status_period = status_period
        self.clock = clock
        self.uid: str | None = None
        """The registered Node's uid (None until registered)."""
        self.info: JsonDict = {}
        self.since: dict[str, str] = {}
        self.lease: JsonDict | None = None
        self.next_status = 0.0

    def _call(
        self, method: str, path: str, body: object = None, content_type: str = "application/json"
    ) -> JsonDict:
        response = self.api_client.call_api(
            path,
            method,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=30,
        )
        decoded: JsonDict = json.loads(response.data or b"{}")
        return decoded

    # -- the Node ----------------------------------------------------------------------

    def register(self) -> None:
        """Create the Node (or take over the one of that name), post its status, renew its Lease."""
        version = self._call("GET", "/version").get("gitVersion", "v0.0.0")
        self.info = node_info(str(version))
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": self.info["architecture"],
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {},
            "status": self._status(datetime.now(UTC)),
        }
        try:
            node = self._call("POST", "/api/v1/nodes", body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            node = self._call("GET", f"/api/v1/nodes/{self.name}")
        self.uid = str(node["metadata"]["uid"])
        now = _seconds(datetime.now(UTC))
        previous = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
        self.since = {
            kind: previous[kind].get("lastTransitionTime", now)
            if previous.get(kind, {}).get("status") == status
            else now
            for kind, status, _, _ in CONDITIONS
        }
        self._post_status()
        self._untaint(self._call("GET", f"/api/v1/nodes/{self.name}"))
        self.lease = None
        self._renew_lease()
        log.info(
            "node=%s registered uid=%s kubelet_port=%d", self.name, self.uid, self.kubelet_port
        )

    def _status(self, now: datetime) -> JsonDict:
        return node_status(
            address=self.address,
            hostname=self.hostname,
            port=self.kubelet_port,
            info=self.info,
            since=self.since,
            now=now,
        )

    def _post_status(self) -> None:
        self._call(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": self._status(datetime.now(UTC))},
            MERGE_PATCH,
        )
        self.next_status = self.clock() + self.status_period

    def _untaint(self, node: JsonDict) -> None:
        """Lift the lifecycle taints of a Ready Node (the node-lifecycle controller's part)."""
        taints = node["spec"].get("taints") or []
        kept = [t for t in taints if t.get("key") not in LIFECYCLE_TAINTS]
        if len(kept) == len(taints):
            return
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"taints": kept or None},
        }
        try:
            self._call("PATCH", f"/api/v1/nodes/{self.name}", patch, MERGE_PATCH)
        except client.ApiException as exc:
            if exc.status != 409:  # changed meanwhile: the next beat looks again
                raise

    # -- the Lease ---------------------------------------------------------------------

    def _lease_body(self) -> JsonDict:
        lease = self.lease or {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
            "spec": {},
        }
        lease["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
        ]
        lease["spec"].update(
            holderIdentity=self.name,
            leaseDurationSeconds=LEASE_DURATION,
            renewTime=_micro(datetime.now(UTC)),
        )
        return lease

    def _renew_lease(self) -> None:
        """Update the Lease (create it when missing; re-read it when someone else wrote it)."""
        leases = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        for _ in range(2):
            try:
                if self.lease is None:
                    try:
                        self.lease = self._call("GET", f"{leases}/{self.name}")
                    except client.ApiException as exc:
                        if exc.status != 404:
                            raise
                        self.lease = self._call("POST", leases, self._lease_body())
                        return
                self.lease = self._call("PUT", f"{leases}/{self.name}", self._lease_body())
                return
            except client.ApiException as exc:
                if exc.status not in (404, 409):
                    raise
                self.lease = None  # deleted, or written by another: read it again

    # -- the loop ----------------------------------------------------------------------

    def heartbeat(self) -> None:
        """One beat: the Node still there (else register again), the Lease, the status when due."""
        try:
            node = self._call("GET", f"/api/v1/nodes/{self.name}")
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            log.warning("node=%s is gone: registering again", self.name)
            self.register()
            return
        if node["metadata"]["uid"] != self.uid:  # deleted and made again by someone else
            self.register()
            return
        self._untaint(node)
        self._renew_lease()
        if self.clock() >= self.next_status:
            self._post_status()

    def run(self, stop: threading.Event) -> None:
        """Register (unless done) and beat every ``lease_period`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.uid is None:
                    self.register()
                else:
                    self.heartbeat()
            except Exception as exc:  # the API restarting, a dropped connection
                log.warning("node=%s heartbeat failed: %s", self.name, exc)
                stop.wait(1.0)
                continue
            stop.wait(self.lease_period)
