"""What the soak creates and what each custom resource must end as.

Pure data, built from a ``Size`` and a seed: per namespace one DatabaseDS (``tango-db``) and
DeviceServers using it, most of them in dependency chains (a server depends on a device of
an earlier server of its namespace, sometimes of two), plus a few deliberately bad specs
and one dependency cycle. ``tests.soak.soak`` creates the manifests, ``tests.soak.tango_side``
reads which devices each server exports, and ``tests.soak.checks`` compares the cluster
with the expectations: state, the Ready condition's reason, the message, the children by
controller ownerReference and the StatefulSet's replicas. The expected messages are written
here from the operator's documented behaviour (docs/api.md), not read back from the operator.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from tango_operator import crd

JsonDict = dict[str, Any]
DATABASEDS = "tango-db"
DSNAME = "SoakServer"
DEVICE_CLASS = "SoakDevice"
DEVICE_SERVER_CHILDREN = {"StatefulSet": 1, "Service": 1, "ConfigMap": 1}
DATABASEDS_CHILDREN = {"StatefulSet": 2, "Service": 2, "Secret": 1}
"""The DataBaseds and TANGO DB StatefulSets and Services, and the generated credentials."""
CHILD_KINDS = ("StatefulSet", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim")


@dataclass(frozen=True)
class Size:
    namespaces: int
    device_servers: int
    """All of them, the bad ones and the cycle included."""
    seed: int = 7


@dataclass(frozen=True)
class Expected:
    """One custom resource: its manifest and the final state it must reach."""

    kind: str
    namespace: str
    name: str
    manifest: JsonDict
    state: str
    reason: str
    """Of the Ready condition."""
    message: str
    children: dict[str, int]
    """Children by kind, counted by controller ownerReference; kinds absent: none."""
    replicas: int | None = None
    """Of the DeviceServer's StatefulSet."""
    devices: tuple[str, ...] = ()
    """The devices it configures (and exports once its pod is ready)."""
    depends_on: tuple[str, ...] = ()

    @property
    def tango_host(self) -> str:
        return f"{DATABASEDS}.{self.namespace}.svc.cluster.local:10000"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass
class Plan:
    size: Size
    namespaces: list[str]
    resources: list[Expected] = field(default_factory=list)
    chain_depth: int = 0
    """The longest dependency chain, in servers."""

    def of_kind(self, kind: str) -> list[Expected]:
        return [r for r in self.resources if r.kind == kind]

    @property
    def bad(self) -> list[Expected]:
        return [r for r in self.resources if r.state == "Error"]


def namespace_name(index: int) -> str:
    return f"soak-{index:02d}"


def device_of(name: str) -> str:
    return f"soak/{name}/0"


def _config(name: str, devices: tuple[str, ...]) -> str:
    body = {device: {"properties": {"owner": [name]}} for device in devices}
    return json.dumps({"servers": {DSNAME: {name: {DEVICE_CLASS: body}}}})


def _device_server(namespace: str, name: str, **spec: Any) -> JsonDict:
    body: JsonDict = {
        "dsname": DSNAME,
        "args": name,
        "command": f"/usr/bin/{DSNAME}",
        "databaseds": DATABASEDS,
        "image": "registry.example/soak-server:1",
    }
    for key, value in spec.items():  # None: the key is absent
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def _good(namespace: str, name: str, depends_on: tuple[str, ...]) -> Expected:
    devices = (device_of(name),)
    manifest = _device_server(
        namespace, name, config=_config(name, devices), dependsOn=list(depends_on) or None
    )
    return Expected(
        "DeviceServer",
        namespace,
        name,
        manifest,
        "Running",
        "Running",
        "device server running",
        DEVICE_SERVER_CHILDREN,
        replicas=1,
        devices=devices,
        depends_on=depends_on,
    )


def _invalid(namespace: str, name: str, message: str, **spec: Any) -> Expected:
    manifest = _device_server(namespace, name, **spec)
    return Expected("DeviceServer", namespace, name, manifest, "Error", "InvalidSpec", message, {})


def _bad_specs(namespace: str) -> list[Expected]:
    """Specs the CRD accepts and the operator must refuse, each with its message."""
    broken = '{"servers": {'
    try:
        json.loads(broken)
    except json.JSONDecodeError as exc:
        why = str(exc)
    own = device_of("bad-self")
    return [
        _invalid(namespace, "bad-json", f"spec.config: is not valid JSON: {why}", config=broken),
        _invalid(
            namespace,
            "bad-both",
            "spec.command: give either command or script, not both",
            script="print('x')",
        ),
        _invalid(
            namespace,
            "bad-neither",
            "spec.command: one of command or script is required",
            command=None,
        ),
        _invalid(
            namespace,
            "bad-self",
            f"spec.dependsOn[0]: {own!r} is a device of this DeviceServer itself "
            "(a self-dependency never resolves)",
            config=_config("bad-self", (own,)),
            dependsOn=[own],
        ),
    ]


def _cycle(namespace: str) -> list[Expected]:
    """Three servers, each waiting for the next one's device.

    Every member is in Error, naming the cycle from itself; their children exist with the
    StatefulSet at 0.
    """
    names = ["cycle-a", "cycle-b", "cycle-c"]
    members = []
    for index, name in enumerate(names):
        wanted = device_of(names[(index + 1) % 3])
        devices = (device_of(name),)
        order = [*names[index:], *names[:index], name]
        members.append(
            Expected(
                "DeviceServer",
                namespace,
                name,
                _device_server(namespace, name, config=_config(name, devices), dependsOn=[wanted]),
                "Error",
                "DependencyCycle",
                f"spec.dependsOn: dependency cycle {' → '.join(order)}",
                DEVICE_SERVER_CHILDREN,
                replicas=0,
                devices=devices,
                depends_on=(wanted,),
            )
        )
    return members


def _database_ds(namespace: str) -> Expected:
    manifest = {
        "apiVersion": crd.API_VERSION,
        "kind": "DatabaseDS",
        "metadata": {"name": DATABASEDS, "namespace": namespace},
        "spec": {"clusterDomain": "cluster.local", "usePV": False},
    }
    return Expected(
        "DatabaseDS",
        namespace,
        DATABASEDS,
        manifest,
        "Running",
        "Running",
        "TANGO database running",
        DATABASEDS_CHILDREN,
    )


def build(size: Size) -> Plan:
    """The whole scenario.

    ``size.device_servers`` DeviceServers spread evenly over ``size.namespaces`` namespaces, chains
    drawn with ``size.seed``.
    """
    rng = random.Random(size.seed)
    namespaces = [namespace_name(i) for i in range(size.namespaces)]
    plan = Plan(size, namespaces)
    special = {namespaces[0]: _bad_specs(namespaces[0])}
    special.setdefault(namespaces[min(1, len(namespaces) - 1)], []).extend(
        _cycle(namespaces[min(1, len(namespaces) - 1)])
    )
    good_total = size.device_servers - sum(len(v) for v in special.values())
    if good_total < size.namespaces:
        raise ValueError(f"{size}: too few DeviceServers for the bad specs and the cycle")
    depth: dict[tuple[str, str], int] = {}
    for index, namespace in enumerate(namespaces):
        plan.resources.append(_database_ds(namespace))
        count = good_total // size.namespaces + (index < good_total % size.namespaces)
        names: list[str] = []
        for number in range(count):
            name = f"srv-{number:03d}"
            parents: list[str] = []
            if names and rng.random() < 0.75:
                parents.append(rng.choice(names[-4:]))
                if len(names) > 1 and rng.random() < 0.2:
                    parents.append(rng.choice([n for n in names if n not in parents]))
            depth[(namespace, name)] = 1 + max(
                (depth[(namespace, parent)] for parent in parents), default=0
            )
            plan.resources.append(
                _good(namespace, name, tuple(device_of(parent) for parent in parents))
            )
            names.append(name)
        plan.resources.extend(special.get(namespace, []))
    plan.chain_depth = max(depth.values())
    return plan
