"""From a pod to a command line on this machine: what the local kubelet runs.

Input: the pod (as the API returns it), the ConfigMaps and Secrets it refers to (through
``ObjectReader``), and the runner's settings. Output: a ``Launch`` — argv, environment,
working directory and the local ports of the container — which ``devstack.runner.process``
starts. The translation does what a kubelet and a container runtime would, within one host:

- env: ``value``, ``valueFrom`` (ConfigMap and Secret keys, the pod's name, namespace and
  IP), then ``$(VAR)`` references in env, command and args expanded the Kubernetes way
  (``$$`` escapes; an unknown name is left as written);
- network: every pod shares 127.0.0.1, so each declared container port gets a free local
  port, and the TANGO port variables of the operator's templates follow it; a pod whose
  published address (``TANGO_SERVER_PUBLISH_HOSTNAME`` and its server port) is in the host
  map listens on the mapped address instead, so it is reachable where the workers look;
  ``TANGO_HOST`` goes through the same host map;
- volumes: ConfigMap and Secret volumes are written to files, emptyDir and claims become
  directories, and paths under a mount in command, args and env are rewritten to them;
- programs: the command map replaces an image's executable with a local one (``python3``
  is this interpreter).
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.ports import free_port

JsonDict = dict[str, Any]

TANGO_PORT_VARIABLES = {
    "TANGO_SERVER_PORT": "tango-server",
    "TANGO_ZMQ_HEARTBEAT_PORT": "tango-heartbeat",
    "TANGO_ZMQ_EVENT_PORT": "tango-event",
}
LOCAL_ADDRESS = "127.0.0.1"
DEBIAN_TANGO_TEST = "/usr/lib/tango/TangoTest"
DEFAULT_COMMANDS: dict[str, tuple[str, ...]] = {
    "python3": (sys.executable,),
    "python": (sys.executable,),
    # the C++ DataBaseds of the images → PyTango's (sqlite, PYTANGO_DATABASE_NAME)
    "/usr/local/bin/DataBaseds": (sys.executable, "-m", "tango.databaseds.database"),
    # the SKA images' TangoTest → Debian's (package tango-test), where it is installed
    **(
        {"/usr/local/bin/TangoTest": (DEBIAN_TANGO_TEST,)}
        if os.path.exists(DEBIAN_TANGO_TEST)
        else {}
    ),
}
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PlanError(Exception):
    """The pod cannot run here; the message goes into the pod status."""


class ObjectReader(Protocol):
    """Reads the ConfigMaps and Secrets a pod refers to (None: it does not exist)."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The data of ConfigMap ``namespace/name``; None when it does not exist."""

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The decoded data of Secret ``namespace/name``; None when it does not exist."""


@dataclass(frozen=True)
class Settings:
    """How pods are translated to local processes: where, with which programs and variables."""

    workdir: Path
    host_map: Mapping[str, str] = field(default_factory=dict)
    """Cluster ``host:port`` → local ``host:port`` (the workers' TANGO_OPERATOR_HOST_MAP)."""
    commands: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_COMMANDS))
    """Executable in the image → the command line prefix that replaces it here."""
    inherited_environment: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")
    """Variables of the runner's own environment a process also gets (a container has its
    image's; here the local programs need the host's PATH)."""


@dataclass(frozen=True)
class Launch:
    """One container as a local process: its command line, environment, ports and hooks."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]
    """Container port name (or number as text) → local port."""
    bind_address: str = LOCAL_ADDRESS
    readiness_port: int | None = None
    probe_period: float = 5.0
    post_start: list[str] | None = None
    pre_stop: list[str] | None = None
    grace_seconds: float = 30.0


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names replaced, ``$$`` → ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return variables[name] if name in variables else match.group(0)

    return _REFERENCE.sub(replace, text)


def _pod_directory(settings: Settings, pod: JsonDict) -> Path:
    meta = pod["metadata"]
    leaf = f"{meta['name']}-{str(meta['uid'])[:8]}"
    return settings.workdir / "pods" / str(meta["namespace"]) / leaf


def _write_volume(directory: Path, data: Mapping[str, str], items: list[JsonDict] | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {
        str(item["key"]): str(item.get("path", item["key"])) for item in items or []
    }
    for key, value in data.items():
        if wanted and key not in wanted:
            continue
        target = directory / wanted.get(key, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value, encoding="utf-8")


def _volumes(pod: JsonDict, reader: ObjectReader, root: Path) -> dict[str, Path]:
    """Volume name → local directory, with its files written."""
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = root / "volumes" / name
        if "configMap" in volume:
            source = volume["configMap"]
            data = reader.config_map(namespace, source["name"])
            if data is None and not source.get("optional"):
                raise PlanError(f'configmap "{source["name"]}" not found (volume {name})')
            _write_volume(directory, data or {}, source.get("items"))
        elif "secret" in volume:
            source = volume["secret"]
            data = reader.secret(namespace, source["secretName"])
            if data is None and not source.get("optional"):
                raise PlanError(f'secret "{source["secretName"]}" not found (volume {name})')
            _write_volume(directory, data or {}, source.get("items"))
        else:  # emptyDir, persistentVolumeClaim, …: a directory that outlives restarts
            directory.mkdir(parents=True, exist_ok=True)
        paths[name] = directory
    return paths


def _mounts(container: JsonDict, volumes: Mapping[str, Path]) -> list[tuple[str, Path]]:
    """(mount path, local path), longest mount first so nested mounts win."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        local = volumes.get(mount["name"])
        if local is None:
            raise PlanError(f"volumeMount {mount['name']} names no volume of the pod")
        if mount.get("subPath"):
            local = local / mount["subPath"]
        mounts.append((str(mount["mountPath"]).rstrip("/") or "/", local))
    return sorted(mounts, key=lambda pair: -len(pair[0]))


def _relocate(text: str, mounts: list[tuple[str, Path]]) -> str:
    for mount_path, local in mounts:
        if text == mount_path or text.startswith(mount_path + "/"):
            return str(local) + text[len(mount_path) :]
        # a path inside a longer string, e.g. "--config=/data/x.json"
        text = re.sub(rf"(?<![\w/]){re.escape(mount_path)}(?=/|$)", str(local), text)
    return text


def _env_value(
    entry: JsonDict, pod: JsonDict, reader: ObjectReader, variables: Mapping[str, str]
) -> str | None:
    if "value" in entry:
        return expand(str(entry["value"]), variables)
    source = entry.get("valueFrom") or {}
    namespace = pod["metadata"]["namespace"]
    for field_name, read in (
        ("configMapKeyRef", reader.config_map),
        ("secretKeyRef", reader.secret),
    ):
        if field_name in source:
            ref = source[field_name]
            data = read(namespace, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PlanError(f"env {entry['name']}: {ref['name']}/{ref['key']} not found")
            return str(data[ref["key"]])
    if "fieldRef" in source:
        path = source["fieldRef"]["fieldPath"]
        fields = {
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": namespace,
            "metadata.uid": pod["metadata"]["uid"],
            "status.podIP": LOCAL_ADDRESS,
            "status.hostIP": LOCAL_ADDRESS,
            "spec.nodeName": pod["spec"].get("nodeName") or "localhost",
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        }
        if path not in fields:
            raise PlanError(f"env {entry['name']}: fieldRef {path} is not supported here")
        return str(fields[path])
    return ""


def _hook(container: JsonDict, name: str) -> list[str] | None:
    handler = ((container.get("lifecycle") or {}).get(name) or {}).get("exec")
    return list(handler["command"]) if handler else None


def plan_container(
    pod: JsonDict,
    container: JsonDict,
    reader: ObjectReader,
    settings: Settings,
    *,
    allocate_port: Callable[[], int] = free_port,
) -> Launch:
    """The launch of one container of ``pod`` (see the module docstring)."""
    root = _pod_directory(settings, pod)
    mounts = _mounts(container, _volumes(pod, reader, root))
    variables: dict[str, str] = {}
    for entry in container.get("env") or []:
        value = _env_value(entry, pod, reader, variables)
        if value is not None:
            variables[entry["name"]] = value

    declared = {
        str(p.get("name") or p["containerPort"]): int(p["containerPort"])
        for p in container.get("ports") or []
    }
    bind_address, published_port = LOCAL_ADDRESS, None
    published = variables.get("TANGO_SERVER_PUBLISH_HOSTNAME")
    server_port = variables.get("TANGO_SERVER_PORT") or (
        str(declared["tango"]) if "tango" in declared else None
    )
    if published and server_port and f"{published}:{server_port}" in settings.host_map:
        host, _, port = settings.host_map[f"{published}:{server_port}"].rpartition(":")
        bind_address, published_port = host or LOCAL_ADDRESS, int(port)
    ports: dict[str, int] = {}
    for name, number in declared.items():
        is_server = str(number) == server_port
        ports[name] = published_port if (is_server and published_port) else allocate_port()
        ports[str(number)] = ports[name]
    for variable, port_name in TANGO_PORT_VARIABLES.items():
        if variable in variables and port_name in ports:
            variables[variable] = str(ports[port_name])
    if published:
        variables["TANGO_SERVER_PUBLISH_HOSTNAME"] = bind_address
    if "TANGO_HOST" in variables:
        variables["TANGO_HOST"] = settings.host_map.get(
            variables["TANGO_HOST"], variables["TANGO_HOST"]
        )
    variables = {name: _relocate(value, mounts) for name, value in variables.items()}

    command = [expand(str(part), variables) for part in container.get("command") or []]
    args = [expand(str(part), variables) for part in container.get("args") or []]
    argv = [_relocate(part, mounts) for part in [*command, *args]]
    if not argv:
        raise PlanError("the container has no command: an image's entrypoint cannot run here")
    argv = [*settings.commands.get(argv[0], (argv[0],)), *argv[1:]]
    argv = [_local_endpoint(part, declared, ports, bind_address) for part in argv]

    environment = {
        name: value
        for name in settings.inherited_environment
        if (value := os.environ.get(name)) is not None
    }
    environment.update(variables)
    probe = container.get("readinessProbe") or {}
    readiness_port = None
    if "tcpSocket" in probe:
        target = str(probe["tcpSocket"]["port"])
        readiness_port = ports.get(target)
    return Launch(
        argv=argv,
        env=environment,
        cwd=root,
        ports=ports,
        bind_address=bind_address,
        readiness_port=readiness_port,
        probe_period=float(probe.get("periodSeconds", 10)),
        post_start=_hook(container, "postStart"),
        pre_stop=_hook(container, "preStop"),
        grace_seconds=float(pod["spec"].get("terminationGracePeriodSeconds", 30)),
    )


_ENDPOINT = re.compile(r"^giop:tcp:([^:]*):(\d+)$")


def _local_endpoint(
    part: str, declared: Mapping[str, int], ports: Mapping[str, int], bind_address: str
) -> str:
    """A literal ``giop:tcp:HOST:PORT`` for a declared port → its local address and port."""
    match = _ENDPOINT.match(part)
    if match is None or int(match.group(2)) not in declared.values():
        return part
    return f"giop:tcp:{bind_address}:{ports[match.group(2)]}"


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str] | None:
    """A Secret's ``data`` (base64) as text."""
    if data is None:
        return None
    return {key: base64.b64decode(value).decode("utf-8") for key, value in data.items()}
