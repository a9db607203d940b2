"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, controllers, scheduler.

The binaries come from ``make controlplane`` (``scripts/build-controlplane.sh`` builds them from
the Go module in this directory into ``.tools/controlplane``). ``ControlPlane.start`` makes a
throw-away PKI in its work directory (``devstack.pki``: a CA, kube-apiserver's serving
certificate, an admin client certificate in ``system:masters`` and an admin bearer token, the
service-account signing key), starts

- etcd (its own data directory, ``--unsafe-no-fsync``: a test store, not a durable one),
- kube-apiserver with RBAC authorization, service-account tokens and the usual admission
  plugins,
- kube-controller-manager with the controllers the operator relies on (StatefulSet, garbage
  collector, namespace, service accounts and their tokens, endpoints and EndpointSlices,
  ReplicaSet/Deployment for the chart's own pods, the root CA publisher, the PersistentVolume
  binder, the protection of claims and volumes in use, and the pod garbage collector), and
- kube-scheduler,

all on free loopback ports, each logging to ``<name>.log`` in the work directory (and
kube-apiserver its audit events, at level Metadata, to ``audit.log``), and writes a
kubeconfig (``kubeconfig``: the admin user) that the official clients, kubectl and helm read.
The interface matches kubeemu's ``KubeEmu`` where the two overlap (``url``, ``kubeconfig``,
``start``/``stop``, a context manager), so a fixture can hand either to a test.
There is no kubelet: ``devstack.runner.node`` plays the node. Nothing here is used by the
operator itself.
"""

from __future__ import annotations

import json
import os
import secrets as secrets_module
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from devstack import pki
from devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
BINARIES = ROOT / ".tools" / "controlplane"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CIDR = "10.96.0.0/16"
CONTROLLERS = (
    "statefulset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "replicaset-controller",
    "deployment-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "pod-garbage-collector-controller",
)
BUILD_HINT = "run `make controlplane` (make test does it for you)"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


class ControlPlaneError(RuntimeError):
    """A binary is missing, or a component did not start (the message holds its log's tail)."""


def binary(name: str) -> Path:
    """The path of a control-plane binary; ``ControlPlaneError`` with the build hint if absent."""
    path = BINARIES / name
    if not path.exists():
        raise ControlPlaneError(f"{path} is missing: {BUILD_HINT}")
    return path


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class ControlPlane:
    """A running control plane: its URL, kubeconfig and processes."""

    workdir: Path
    url: str = ""
    kubeconfig: Path = field(default_factory=Path)
    etcd_url: str = ""
    ca_file: Path = field(default_factory=Path)
    admin: pki.Certificate | None = None
    admin_token: str = ""
    audit_log: Path = field(default_factory=Path)
    processes: list[_Process] = field(default_factory=list)
    new_session: bool = False
    """Each component in a session of its own (``start``)."""

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls, workdir: Path, *, timeout: float = 90.0, new_session: bool = False
    ) -> ControlPlane:
        """Start every component in ``workdir`` and wait until the API server is ready.

        ``new_session``: the components leave the caller's process group, so that a
        terminal's Ctrl-C reaches only the program that started them, which then stops them
        after what uses them (``make demo``); by default they share the caller's group.
        """
        for name in COMPONENTS:
            binary(name)
        workdir.mkdir(parents=True, exist_ok=True)
        plane = cls(workdir=workdir, new_session=new_session)
        try:
            plane._start(timeout)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _start(self, timeout: float) -> None:
        secrets = self.workdir / "pki"
        ca = pki.make_ca(secrets, "kubernetes-ca")
        self.ca_file = ca.cert_file
        serving = pki.issue(
            ca,
            secrets,
            "kube-apiserver",
            (
                "127.0.0.1",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ),
        )
        self.admin = pki.issue(ca, secrets, "admin", organisations=("system:masters",))
        signing_key, verifying_key = pki.make_rsa_key_pair(secrets, "service-account")
        # a bearer token for the admin too, for clients that cannot present a certificate
        # (a proxy in front of the server forwards the Authorization header as it is)
        self.admin_token = secrets_module.token_urlsafe(32)
        tokens = secrets / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin-token,admin-token,"system:masters"\n')
        tokens.chmod(0o600)
        deadline = time.monotonic() + timeout

        etcd_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            "--name=controlplane",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=controlplane=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        self._wait("etcd", lambda: self._get(f"{self.etcd_url}/health", tls=False), deadline)

        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.audit_log = self.workdir / "audit.log"
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert_file}",
            f"--tls-private-key-file={serving.key_file}",
            f"--client-ca-file={ca.cert_file}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={verifying_key}",
            f"--service-account-signing-key-file={signing_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={secrets}",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--audit-log-format=json",
            # on SIGTERM, end the open watches (a client's long watch would otherwise hold the
            # graceful shutdown past stop()'s 10 s, until it is killed)
            "--shutdown-watch-termination-grace-period=2s",
        )
        self._wait("kube-apiserver", lambda: self._get(f"{self.url}/readyz"), deadline)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig()))

        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={signing_key}",
            f"--root-ca-file={ca.cert_file}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--concurrent-statefulset-syncs=10",
            "--concurrent-gc-syncs=20",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        )
        # the controllers are ready when they have made the default namespace's ServiceAccount
        self._wait(
            "kube-controller-manager",
            lambda: self._get(f"{self.url}/api/v1/namespaces/default/serviceaccounts/default"),
            deadline,
        )

    def _kubeconfig(self) -> dict[str, object]:
        assert self.admin is not None
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "controlplane",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.admin.cert_file),
                        "client-key": str(self.admin.key_file),
                    },
                }
            ],
            "contexts": [
                {"name": "controlplane", "context": {"cluster": "controlplane", "user": "admin"}}
            ],
            "current-context": "controlplane",
        }

    def _spawn(self, name: str, *args: str) -> None:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [str(binary(name)), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "GOMAXPROCS": os.environ.get("GOMAXPROCS", "2")},
                start_new_session=self.new_session,
            )
        self.processes.append(_Process(name, popen, log_path))

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        process = next(p for p in self.processes if p.name == name)
        while True:
            if process.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited ({process.popen.returncode}):\n{_tail(process.log_path)}"
                )
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} was not ready in time:\n{_tail(process.log_path)}")
            time.sleep(0.2)

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        assert self.admin is not None
        context.load_cert_chain(str(self.admin.cert_file), str(self.admin.key_file))
        return context

    def _get(self, url: str, *, tls: bool = True) -> bool:
        context = self._ssl_context() if tls else None
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False

    def request(self, method: str, path: str, body: object | None = None) -> object:
        """One admin request to the API server; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30, context=self._ssl_context()) as answer:
            return json.loads(answer.read())

    def audit(self, since: int = 0) -> list[dict[str, Any]]:
        """The audit events (level Metadata, stage ResponseComplete) from line ``since`` on.

        Each names the user (``user.username``, a ServiceAccount's as
        ``system:serviceaccount:<ns>:<name>``), the ``verb``, the ``objectRef`` and the answer's
        ``responseStatus.code``: what kube-apiserver itself decided, RBAC included.
        """
        lines = self.audit_log.read_text().splitlines()[since:]
        return [json.loads(line) for line in lines if line.strip()]

    def audit_mark(self) -> int:
        """The number of audit lines so far, for ``audit(since=...)``."""
        return len(self.audit_log.read_text().splitlines())

    def compact(self) -> int:
        """Compact etcd up to its current revision (old watches then get 410 Gone).

        Returns the revision compacted to. etcd's own v3 JSON gateway does it, no client library.
        """
        header = self._etcd("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]
        assert isinstance(header, dict)
        revision = int(header["revision"])
        self._etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _etcd(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            decoded: dict[str, object] = json.loads(answer.read())
        return decoded

    def stop(self) -> None:
        """Stop the components, newest first (SIGTERM, then SIGKILL after 10 s)."""
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self.processes.clear()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
