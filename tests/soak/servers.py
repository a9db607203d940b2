"""The API server a soak runs on: kubeemu, or a real control plane behind the fault proxy.

``start(api, workdir)`` gives either as a ``Server``, which is all the soak asks of one:

- ``kubeconfig``: what the operator (watchers, workers), the TANGO side and the soak's own
  driver use. The faults apply to every request made with it, the driver's included, as on
  kubeemu, where every request over HTTP can fail (hence ``tests.soak.soak.retried``);
- the faults: ``set_faults`` (kubeemu's rule format on both), ``clear_faults``,
  ``drop_watches``, ``compact``, ``faults_injected``;
- the traffic: ``mark`` and ``records(since)``, the requests made with ``kubeconfig`` in the
  record shape ``tests.soak.traffic`` reads (``RECORD_FIELDS``).

``kubeemu`` (``Emulated``): ``KubeEmu`` with its StatefulSets instant; the records are its
audit log's, which has everything, ``changed`` (whether a write changed the store) and
``injected`` (the fault answered instead) included.

``real`` (``Real``): ``devstack.controlplane.ControlPlane`` (etcd, kube-apiserver, the
controllers, the scheduler) in ``workdir/controlplane``, ``devstack.runner.node.LocalNode``
as its one Node with ``simulate=True`` (every pod Running and Ready at once with no process;
the real StatefulSet controller counts ``readyReplicas``: kubeemu's instant StatefulSets on
the real server), and ``devstack.faultproxy.FaultProxy`` in front of kube-apiserver, whose
kubeconfig (the admin token) is ``kubeconfig``. The controllers and the node talk to
kube-apiserver directly: they are kubeemu's in-process controllers' counterpart, and
unfaulted like them. The records are built from two sources:

- kube-apiserver's own audit log (level Metadata): every request that reached it as the
  proxy's user (found with a SelfSubjectReview, so the controllers' and the node's requests,
  made as another user, are left out), one record per request (a watch's ResponseStarted and
  ResponseComplete events are one request);
- the proxy's record of the errors it injected (``FaultProxy.injections``), which never reach
  the server: a record each with ``injected`` set, as kubeemu writes them.

What the real server's records cannot say: ``changed``. The audit log at level Metadata does
not tell a write that changed an object from one that changed nothing (a server-side apply of
what is already there answers 200 too), so a real record's ``changed`` is ``None``, unknown;
``tests.soak.traffic.is_mutation`` then counts a successful write as a mutation (an upper
bound), and ``tests.soak.traffic.settle_changes`` decides it for the quiet window from the
objects' resourceVersions before and after the window.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from kubernetes import client, config

from devstack.controlplane import COMPONENTS, ControlPlane, ControlPlaneError, binary
from devstack.faultproxy import FaultProxy, Injection
from devstack.runner import plan as runner_plan
from devstack.runner.node import LocalNode
from kubeemu.testing import KubeEmu

JsonDict = dict[str, Any]
ApiChoice = Literal["kubeemu", "real"]
API_CHOICES: tuple[ApiChoice, ...] = ("kubeemu", "real")
RECORD_FIELDS = (
    "time",
    "verb",
    "path",
    "group",
    "resource",
    "namespace",
    "name",
    "subresource",
    "user_agent",
    "code",
    "injected",
    "changed",
)
"""What a traffic record holds: ``time`` (time.time() the request was received), ``code`` (the
status answered), ``injected`` (the injected fault's code as a string, or ""), ``changed``
(bool; None: unknown)."""
NODE_NAME = "soak-node"


class Server(Protocol):
    """What the soak needs of its API server (see the module's docstring)."""

    name: ApiChoice
    kubeconfig: Path
    injector: str
    """What injects the faults, for the figures."""

    def set_faults(self, rules: list[JsonDict], seed: int | None = None) -> None: ...

    def clear_faults(self) -> None: ...

    def drop_watches(self) -> int: ...

    def compact(self) -> int: ...

    def faults_injected(self) -> int: ...

    def mark(self) -> Any:
        """A position in the traffic, for ``records``."""
        ...

    def records(self, since: Any) -> list[JsonDict]:
        """The requests made with ``kubeconfig`` since ``since``, oldest first."""
        ...


def missing_parts(api: ApiChoice) -> str | None:
    """Why ``api`` cannot run here (the control plane's binaries are not built), or None."""
    if api == "real":
        try:
            for name in COMPONENTS:
                binary(name)
        except ControlPlaneError as error:  # with the build hint
            return str(error)
    return None


@contextlib.contextmanager
def start(api: ApiChoice, workdir: Path) -> Iterator[Server]:
    """The server ``api`` in ``workdir``, stopped when the block ends."""
    if api == "kubeemu":
        with KubeEmu.start(workdir / "emu") as emu:
            yield Emulated(emu)
        return
    with Real.start(workdir) as real:
        yield real


class Emulated:
    """kubeemu: its own faults and audit log."""

    name: ApiChoice = "kubeemu"
    injector = "kubeemu"

    def __init__(self, emu: KubeEmu) -> None:
        self.emu = emu
        self.kubeconfig = emu.kubeconfig

    def set_faults(self, rules: list[JsonDict], seed: int | None = None) -> None:
        self.emu.set_faults(rules, seed=seed)

    def clear_faults(self) -> None:
        self.emu.clear_faults()

    def drop_watches(self) -> int:
        return self.emu.drop_watches()

    def compact(self) -> int:
        return self.emu.compact()

    def faults_injected(self) -> int:
        return int(self.emu.stats()["faultsInjected"])

    def mark(self) -> int:
        return self.emu.mark()

    def records(self, since: int) -> list[JsonDict]:
        """The audit log from ``since``, in pages."""
        records: list[JsonDict] = []
        while True:
            page = self.emu.audit(since, limit=20_000)
            records.extend(page)
            if len(page) < 20_000:
                return records
            since = int(page[-1]["seq"]) + 1


class Real:
    """A control plane of the soak's own, its simulated node, and the fault proxy before it."""

    name: ApiChoice = "real"
    injector = "the fault proxy"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.plane: ControlPlane | None = None
        self.node: LocalNode | None = None
        self.proxy: FaultProxy | None = None
        self._node_client: client.ApiClient | None = None
        self.kubeconfig = Path()
        self.user = ""
        """The user kube-apiserver sees the proxy's requests as."""

    @classmethod
    @contextlib.contextmanager
    def start(cls, workdir: Path) -> Iterator[Real]:
        real = cls(workdir)
        try:
            real._start()
            yield real
        finally:
            real.stop()

    def _start(self) -> None:
        self.plane = ControlPlane.start(self.workdir / "controlplane")
        self._node_client = config.new_client_from_config(config_file=str(self.plane.kubeconfig))
        self.node = LocalNode(
            self._node_client,
            runner_plan.Settings(workdir=self.workdir / "node"),
            name=NODE_NAME,
            simulate=True,
            tick=0.05,
        )
        self.node.start()
        self.proxy = FaultProxy.start(self.plane, self.workdir / "faultproxy")
        self.kubeconfig = self.proxy.kubeconfig
        self.user = self._whoami()

    def _whoami(self) -> str:
        """The username of the proxy kubeconfig's token (a SelfSubjectReview through the proxy)."""
        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            review = client.AuthenticationV1Api(api_client).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            )
            return str(review.status.user_info.username)
        finally:
            api_client.close()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.node is not None:
            self.node.stop()
        if self._node_client is not None:
            self._node_client.close()
        if self.plane is not None:
            self.plane.stop()

    def _proxy(self) -> FaultProxy:
        assert self.proxy is not None, "not started"
        return self.proxy

    def set_faults(self, rules: list[JsonDict], seed: int | None = None) -> None:
        self._proxy().set_faults(rules, seed=seed)

    def clear_faults(self) -> None:
        self._proxy().clear_faults()

    def drop_watches(self) -> int:
        return self._proxy().drop_watches()

    def compact(self) -> int:
        return self._proxy().compact()

    def faults_injected(self) -> int:
        return int(self._proxy().stats()["faultsInjected"])

    def mark(self) -> tuple[int, float]:
        """The audit log's line count, and the time (the proxy's injections are by time)."""
        assert self.plane is not None, "not started"
        return self.plane.audit_mark(), time.time()

    def records(self, since: tuple[int, float]) -> list[JsonDict]:
        assert self.plane is not None, "not started"
        line, moment = since
        records = audit_records(self.plane.audit(line), self.user)
        records += [injected_record(i) for i in self._proxy().injections() if i.time >= moment]
        return sorted(records, key=lambda r: float(r["time"]))


def _timestamp(text: str) -> float:
    """An audit event's RFC 3339 timestamp (microseconds, ``Z``) as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit_records(events: list[JsonDict], user: str) -> list[JsonDict]:
    """kube-apiserver's audit events of ``user``'s requests as traffic records, one a request.

    A long-running request (a watch) has two events, ResponseStarted and ResponseComplete (the
    latter only once it ended); both carry the request's ``auditID`` and time, and the first
    one seen stands for the request.
    """
    seen: set[str] = set()
    records = []
    for event in events:
        if event.get("stage") not in ("ResponseStarted", "ResponseComplete"):
            continue
        if (event.get("user") or {}).get("username") != user:
            continue
        audit_id = str(event.get("auditID"))
        if audit_id in seen:
            continue
        seen.add(audit_id)
        ref = event.get("objectRef") or {}
        records.append(
            {
                "time": _timestamp(str(event["requestReceivedTimestamp"])),
                "verb": str(event.get("verb", "")),
                "path": str(event.get("requestURI", "")).split("?", 1)[0],
                "group": str(ref.get("apiGroup") or ""),
                "resource": str(ref.get("resource") or ""),
                "namespace": str(ref.get("namespace") or ""),
                "name": str(ref.get("name") or ""),
                "subresource": str(ref.get("subresource") or ""),
                "user_agent": str(event.get("userAgent", "")),
                "code": int((event.get("responseStatus") or {}).get("code") or 0),
                "injected": "",
                "changed": None,
            }
        )
    return records


def injected_record(injection: Injection) -> JsonDict:
    """One error the fault proxy injected, as a traffic record (kubeemu's shape for it)."""
    return {
        "time": injection.time,
        "verb": injection.verb,
        "path": injection.path,
        "group": injection.group,
        "resource": injection.resource,
        "namespace": injection.namespace,
        "name": "",
        "subresource": "",
        "user_agent": injection.user_agent,
        "code": injection.code,
        "injected": str(injection.code),
        "changed": False,
    }


def dump(records: list[JsonDict], path: Path) -> None:
    """The records as JSON lines, for a post-mortem."""
    with path.open("w") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
