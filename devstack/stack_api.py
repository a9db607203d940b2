"""The Kubernetes API a ``LocalStack`` runs on, and this machine as its Node: one of two servers.

- ``kubeemu`` (``EmulatedApi``, the default; no build needed): ``python -m kubeemu`` in
  ``workdir/kubeemu`` with its StatefulSet controller in ``manual`` mode, so that the pods it
  makes wait for a kubelet; its scheduler stand-in binds them to the Node.
- ``real`` (``RealApi``): a control plane of the stack's own (``devstack.controlplane``: etcd,
  kube-apiserver, kube-controller-manager, kube-scheduler from ``make controlplane``) in
  ``workdir/controlplane``, shared with nothing; kube-scheduler binds the pods to the Node.

On either, ``devstack.runner.node.LocalNode`` is the one Node (``NodeOfThisMachine``): its
kubelet runs the processes of the pods bound to it (``simulate=False``), serves ``kubectl
logs`` (the API server forwards it to the Node's log endpoint) and reserves local volumes for
pending claims.

Either way the stack reads ``url`` and ``kubeconfig`` (the admin's: the watcher, the workers
and the user's ``kubectl`` get it), hands ``run_pods`` the stack's client and the kubelet's
settings, and finds the pods' kubelet in ``kubelet`` (for ``suspend``/``resume``). ``stop_pods``
stops the pods' processes, ``stop`` the server; ``dead`` names the server's processes that
exited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from kubernetes import client

from devstack.controlplane import ControlPlane
from devstack.runner import plan
from devstack.runner.kubelet import LocalKubelet
from devstack.runner.node import LocalNode
from devstack.runner.process import RestartPolicy
from kubeemu.testing import KubeEmu

ApiChoice = Literal["kubeemu", "real"]
API_CHOICES: tuple[ApiChoice, ...] = ("kubeemu", "real")


class StackApi(Protocol):
    """What ``LocalStack`` needs of its API server and of what runs its pods."""

    name: ApiChoice
    label: str
    """How the stack lists the server among its endpoints."""
    kubelet: LocalKubelet | None

    @property
    def url(self) -> str:
        """The server's URL."""

    @property
    def kubeconfig(self) -> Path:
        """An admin kubeconfig for the server."""

    def start(self) -> None:
        """Start the server; return when it serves requests."""

    def run_pods(
        self,
        api_client: client.ApiClient,
        settings: plan.Settings,
        *,
        restart: RestartPolicy,
        probe_period_cap: float,
    ) -> None:
        """Start running the pods the server gets, through ``api_client``."""

    def stop_pods(self) -> None:
        """Stop running pods; stop their processes."""

    def dead(self) -> list[str]:
        """Names of the server's processes that have exited."""

    def stop(self) -> None:
        """Stop the server (after ``stop_pods``)."""


class NodeOfThisMachine:
    """This machine as the server's one Node: ``run_pods`` starts it, ``stop_pods`` stops it."""

    def __init__(self) -> None:
        self.node: LocalNode | None = None
        self.kubelet: LocalKubelet | None = None

    def run_pods(
        self,
        api_client: client.ApiClient,
        settings: plan.Settings,
        *,
        restart: RestartPolicy,
        probe_period_cap: float,
    ) -> None:
        """Register this machine as a Node and run the pods bound to it until ``stop_pods``."""
        self.node = LocalNode(
            api_client, settings, restart=restart, probe_period_cap=probe_period_cap
        )
        self.kubelet = self.node.kubelet
        self.node.start()

    def stop_pods(self) -> None:
        """Stop the Node's kubelet (and the pods' processes), heartbeat and log endpoint."""
        if self.node is not None:
            self.node.stop()


class EmulatedApi(NodeOfThisMachine):
    """kubeemu with manual StatefulSets; its scheduler stand-in binds the pods to the Node."""

    name: ApiChoice = "kubeemu"
    label = "Kubernetes API (kubeemu)"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.emulator: KubeEmu | None = None

    @property
    def url(self) -> str:
        """The URL of kubeemu."""
        assert self.emulator is not None, "not started"
        return self.emulator.url

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig of kubeemu."""
        assert self.emulator is not None, "not started"
        return self.emulator.kubeconfig

    def start(self) -> None:
        """Start ``python -m kubeemu --statefulsets manual`` in ``workdir/kubeemu``."""
        self.emulator = KubeEmu.start(self.workdir / "kubeemu", ["--statefulsets", "manual"])

    def dead(self) -> list[str]:
        """``["kubeemu"]`` once its process has exited."""
        process = self.emulator.process if self.emulator is not None else None
        return ["kubeemu"] if process is not None and process.poll() is not None else []

    def stop(self) -> None:
        """Stop kubeemu."""
        if self.emulator is not None:
            self.emulator.stop()


class RealApi(NodeOfThisMachine):
    """A control plane of the stack's own; kube-scheduler binds the pods to the Node."""

    name: ApiChoice = "real"
    label = "Kubernetes API (kube-apiserver)"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.plane: ControlPlane | None = None

    @property
    def url(self) -> str:
        """kube-apiserver's URL."""
        assert self.plane is not None, "not started"
        return self.plane.url

    @property
    def kubeconfig(self) -> Path:
        """The control plane's admin kubeconfig (a client certificate in system:masters)."""
        assert self.plane is not None, "not started"
        return self.plane.kubeconfig

    def start(self) -> None:
        """Start the control plane in ``workdir/controlplane``.

        Its components run in sessions of their own, as the stack's other processes do: a
        terminal's Ctrl-C reaches only the program that started the stack, which stops them
        last (``LocalStack.stop``). ``devstack.controlplane.ControlPlaneError`` says when its
        binaries are missing (with the build hint) or a component did not start.
        """
        self.plane = ControlPlane.start(self.workdir / "controlplane", new_session=True)

    def dead(self) -> list[str]:
        """The control plane's components whose process has exited."""
        if self.plane is None:
            return []
        return [p.name for p in self.plane.processes if p.popen.poll() is not None]

    def stop(self) -> None:
        """Stop the control plane: scheduler and controllers, kube-apiserver, then etcd."""
        if self.plane is not None:
            self.plane.stop()


def make_api(choice: ApiChoice, workdir: Path) -> StackApi:
    """The (unstarted) API of ``choice`` with its files under ``workdir``."""
    if choice == "kubeemu":
        return EmulatedApi(workdir)
    if choice == "real":
        return RealApi(workdir)
    raise ValueError(f"unknown Kubernetes API {choice!r}: expected one of {API_CHOICES}")
