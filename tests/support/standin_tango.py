"""A controllable stand-in for the TANGO side of the operator (``TangoPort``).

Used where a test is about the Kubernetes side of reconciliation; the real PyTango and
dsconfig implementation has its own tests against real TANGO servers. The stand-in keeps
a small "TANGO DB" (server instance → device → class, properties, attribute properties,
alias; class properties; device → owning instance) so that claims of one device by two
servers, idempotent applies and the two configuration modes behave as in TANGO
(``tests/integration/tango/test_port_contract.py`` pins every answer the reconcilers use to
PyTangoPort on both DataBaseds: the reasons read as PyTangoPort's, which the CR status shows).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tango_operator.crd import ConfigMode
from tango_operator.keys import Key
from workers.reconcile import by_kind
from workers.reconcile.ports import (
    ConfigConflictError,
    ConfigResult,
    DeviceHealth,
    Outcome,
    Ports,
    Probe,
    TangoUnavailableError,
)

JsonDict = dict[str, Any]


def _entries_of(document: JsonDict) -> dict[str, tuple[str, JsonDict]]:
    """Device (lower-cased) → (class, entry) of every device the document lists."""
    found: dict[str, tuple[str, JsonDict]] = {}
    for instances in (document.get("servers") or {}).values():
        for classes in instances.values():
            for class_name, devices in classes.items():
                for device, body in devices.items():
                    found[device.lower()] = (class_name, body or {})
    return found


def _protected(name: str, *, attribute: bool) -> bool:
    """Whether dsconfig protects the property (memorized ``__value``, ``polled_attr``, ``unit``).

    Imported when a Declarative apply asks: the soak's workers load the stand-in without
    PyTango, which dsconfig imports.
    """
    from dsconfig.tangodb import is_protected  # noqa: PLC0415

    return bool(is_protected(name, attr=attribute))


def _write(held: JsonDict, wanted: JsonDict, *, declarative: bool, attribute: bool) -> None:
    """Write one group of properties as dsconfig does.

    ``[]`` deletes only in Declarative mode, which also deletes what ``wanted`` does not list,
    protected names excepted.
    """
    wanted = {name.lower(): values for name, values in wanted.items()}
    for name, values in wanted.items():
        if values:
            held[name] = list(values)
        elif declarative:
            held.pop(name, None)
    if declarative:
        for name in [n for n in held if n not in wanted]:
            if not _protected(name, attribute=attribute):
                del held[name]


def _write_entry(held: JsonDict, body: JsonDict, *, declarative: bool) -> None:
    """A device's or class's properties and attribute properties (a key left out: untouched)."""
    if "properties" in body:
        _write(held["properties"], body["properties"], declarative=declarative, attribute=False)
    if "attribute_properties" in body:
        attributes = held["attribute_properties"]
        wanted = {name.lower(): props for name, props in body["attribute_properties"].items()}
        for attribute in set(attributes) | set(wanted):
            props = attributes.setdefault(attribute, {})
            _write(props, wanted.get(attribute, {}), declarative=declarative, attribute=True)
            if not props:
                del attributes[attribute]


def _no_properties() -> JsonDict:
    return {"properties": {}, "attribute_properties": {}}


DATABASE_DEVICE = "sys/database/2"
PROBE_DEADLINE = 1.5
"""Seconds PyTangoPort waits for a DB that does not answer (its default timeout + 0.5 s)."""


@dataclass
class StandInTango:
    """Everything is up and exported unless a test says otherwise.

    The reasons and messages read as PyTangoPort's for the same world (the CR status shows
    them): ``tests.support.tango_worlds`` describes worlds to both.
    """

    down_hosts: set[str] = field(default_factory=set)
    """TANGO hosts (as given to the port, after the host map) that refuse connections."""
    hung_hosts: set[str] = field(default_factory=set)
    """TANGO hosts whose DB accepts connections and never answers (a stopped process)."""
    unready_devices: set[str] = field(default_factory=set)
    """Dependencies that are not exported (``device_ready`` only: servers no test runs)."""
    unreachable_endpoints: set[str] = field(default_factory=set)
    """``host:port`` endpoints that refuse connections."""
    unexported: set[str] = field(default_factory=set)
    """Devices defined in the DB and not (yet) exported: their server is not running."""
    undefined_devices: set[str] = field(default_factory=set)
    """Devices not defined in the DB (never registered, or their server was removed)."""
    silent_devices: set[str] = field(default_factory=set)
    """Devices still exported in the DB whose server is gone (killed): nothing answers."""
    device_states: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Device → (State, Status) read by ``device_health``; others are ON."""
    health_reads: list[str] = field(default_factory=list)
    """Server instances whose devices were read, in order."""
    inits: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """(server instance, devices) sent ``Init``, in order."""
    servers: dict[str, JsonDict] = field(default_factory=dict)
    """Server instance → device (lower-cased) → its ``class``, ``properties``,
    ``attribute_properties`` and ``alias``, as the DB holds them (names lower-cased)."""
    classes: dict[str, JsonDict] = field(default_factory=dict)
    """Class (lower-cased) → its ``properties`` and ``attribute_properties``."""
    owners: dict[str, str] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    """Server instances written to the DB, in order (one entry per changing apply)."""
    applies: list[tuple[str, ConfigMode]] = field(default_factory=list)
    """Every ``apply_config`` call that reached the DB: (server instance, mode), in order."""
    removed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _unavailable(self, tango_host: str) -> str:
        """Why the DB at ``tango_host`` cannot be asked ("" when it answers)."""
        if tango_host in self.down_hosts:
            return f"TCP connect to {tango_host} failed: Connection refused"
        if tango_host in self.hung_hosts:
            return f"{tango_host}: no answer within {PROBE_DEADLINE:g} s"
        return ""

    def _check_host(self, tango_host: str) -> None:
        why = self._unavailable(tango_host)
        if why:
            raise TangoUnavailableError(f"TANGO DB {tango_host}: {why}")

    def register(self, server_instance: str, class_name: str, devices: tuple[str, ...]) -> None:
        """Define devices of a server instance, without properties (``Database.add_device``)."""
        with self._lock:
            held = self.servers.setdefault(server_instance, {})
            for device in devices:
                held.setdefault(device.lower(), {"class": class_name, **_no_properties()})
                self.owners[device.lower()] = server_instance
                self.undefined_devices.discard(device)

    def database_alive(self, tango_host: str) -> Probe:
        if tango_host in self.down_hosts:
            return Probe(False, self._unavailable(tango_host))
        if tango_host in self.hung_hosts:
            why = self._unavailable(tango_host)
            return Probe(False, f"{DATABASE_DEVICE} at {tango_host} does not answer: {why}")
        return Probe(True)

    def device_ready(self, tango_host: str, device: str) -> Probe:
        why = self._unavailable(tango_host)
        if why:
            return Probe(False, f"TANGO DB {tango_host} does not answer: {why}")
        if device in self.undefined_devices:
            return Probe(False, f"{device} is not defined in the TANGO DB at {tango_host}")
        if device in self.unready_devices or device in self.unexported:
            owner = self.owners.get(device.lower())
            server = f"server {owner}" if owner else "its server"
            return Probe(False, f"{device} is not exported ({server} not running)")
        if device in self.silent_devices:
            return Probe(False, f"{device} is exported but does not answer: connection refused")
        return Probe(True)

    def endpoint_reachable(self, host: str, port: int) -> Probe:
        if f"{host}:{port}" in self.unreachable_endpoints:
            return Probe(False, f"TCP connect to {host}:{port} failed: Connection refused")
        return Probe(True)

    def unexported_devices(self, tango_host: str, devices: tuple[str, ...]) -> list[str]:
        self._check_host(tango_host)
        return [
            device
            for device in devices
            if device in self.unexported or device in self.undefined_devices
        ]

    def device_health(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[DeviceHealth]:
        # as PyTangoPort: the DB's exported flags first (raises when it does not answer)
        unexported = set(self.unexported_devices(tango_host, devices))
        self.health_reads.append(server_instance)
        health = []
        for device in devices:
            if device in unexported:
                why = "not defined" if device in self.undefined_devices else "not exported"
                health.append(DeviceHealth(device, False, "UNKNOWN", why))
            elif device in self.silent_devices:
                why = f"no answer: Failed to connect to device {device}"
                health.append(DeviceHealth(device, True, "UNKNOWN", why))
            else:
                state, status = self.device_states.get(device, ("ON", "The device is in ON state."))
                health.append(DeviceHealth(device, True, state, status))
        return health

    def put_device_property(self, device: str, properties: dict[str, list[str]]) -> None:
        """What Jive (``Database.put_device_property``) does to a device of an applied server."""
        self._device(device)["properties"].update(
            {name.lower(): list(values) for name, values in properties.items()}
        )

    def put_device_attribute_property(
        self, device: str, attributes: dict[str, dict[str, list[str]]]
    ) -> None:
        """What Jive, or a server memorizing a value (``__value``), writes."""
        held = self._device(device)["attribute_properties"]
        for attribute, properties in attributes.items():
            held.setdefault(attribute.lower(), {}).update(
                {name.lower(): list(values) for name, values in properties.items()}
            )

    def _device(self, device: str) -> JsonDict:
        entry: JsonDict = self.servers[self.owners[device.lower()]][device.lower()]
        return entry

    def init_devices(
        self, tango_host: str, server_instance: str, devices: tuple[str, ...]
    ) -> list[str]:
        # as PyTangoPort: no DB check of its own; each device's proxy fails without the DB
        if self._unavailable(tango_host):
            return [f"{d}: Failed to connect to device {DATABASE_DEVICE}" for d in devices]
        self.inits.append((server_instance, devices))
        failures = []
        for device in devices:
            if device in self.undefined_devices:
                failures.append(f"{device}: device {device} not defined in the database !")
            elif device in self.unexported or device in self.silent_devices:
                failures.append(f"{device}: Failed to connect to device {device}")
        return failures

    def apply_config(
        self, tango_host: str, server_instance: str, document: JsonDict, *, mode: ConfigMode
    ) -> ConfigResult:
        self._check_host(tango_host)
        with self._lock:
            listed = _entries_of(document)
            conflicts = [
                f"device {device} is registered to server {owner}"
                for device, owner in ((d, self.owners.get(d)) for d in listed)
                if owner is not None and owner.lower() != server_instance.lower()
            ]
            if conflicts:  # PyTangoPort's words (the CR's status shows them)
                raise ConfigConflictError(
                    f"{'; '.join(conflicts)}, not to {server_instance} (remove it there first)"
                )
            self.applies.append((server_instance, mode))
            before = copy.deepcopy((self.servers.get(server_instance) or {}, self.classes))
            self._write(server_instance, listed, document.get("classes") or {}, mode)
            if (self.servers.get(server_instance) or {}, self.classes) == before:
                return ConfigResult(changed=False)
            self.writes.append(server_instance)
            return ConfigResult(changed=True)

    def _write(
        self,
        server_instance: str,
        listed: dict[str, tuple[str, JsonDict]],
        classes: JsonDict,
        mode: ConfigMode,
    ) -> None:
        declarative = mode == ConfigMode.DECLARATIVE
        held = self.servers.setdefault(server_instance, {})
        if declarative:
            for device in set(held) - set(listed):
                del held[device]
                self.owners.pop(device, None)
                self.undefined_devices.add(device)
        for device, (class_name, body) in listed.items():
            entry = held.setdefault(device, {"class": class_name, **_no_properties()})
            self.owners[device] = server_instance
            self.undefined_devices.discard(device)
            _write_entry(entry, body, declarative=declarative)
            # in both modes, as json2tango's alias pre-step: a listed device has the
            # document's alias or none, taken from another device of the instance if need be
            entry.pop("alias", None)
            alias = str(body.get("alias") or "")
            if alias:
                for other in held.values():
                    if str(other.get("alias", "")).lower() == alias.lower():
                        del other["alias"]
                entry["alias"] = alias
        for class_name, body in classes.items():
            entry = self.classes.setdefault(class_name.lower(), _no_properties())
            _write_entry(entry, body, declarative=declarative)
            if not any(entry.values()):
                del self.classes[class_name.lower()]  # no row in the DB

    def remove_server(self, tango_host: str, server_instance: str) -> None:
        self._check_host(tango_host)
        with self._lock:
            self.servers.pop(server_instance, None)
            for device, owner in list(self.owners.items()):
                if owner.lower() == server_instance.lower():
                    del self.owners[device]
                    self.undefined_devices.add(device)  # a later device_ready: not defined
            self.removed.append(server_instance)


@dataclass
class TracingStandIn(StandInTango):
    """The stand-in as loaded by real worker processes (``TANGO_OPERATOR_TANGO_PORT``).

    An independent recorder for the queue tests: every ``database_alive`` call — one per
    DeviceServer reconcile, made with the lease held — appends ``enter``/``exit`` lines
    (pid, TANGO host, monotonic clock) to the file named by ``TANGO_STANDIN_TRACE`` and
    stays inside for ``TANGO_STANDIN_HOLD_MS``. Two overlapping windows for one TANGO host
    (each test CR gets its own) mean two concurrent reconciles of one key. A TANGO host
    starting with ``poison`` raises, for the poison-key test.
    """

    def __post_init__(self) -> None:
        unreachable = os.environ.get("TANGO_STANDIN_UNREACHABLE", "")
        self.unreachable_endpoints.update(e for e in unreachable.split(",") if e)

    def database_alive(self, tango_host: str) -> Probe:
        if tango_host.startswith("poison"):
            raise RuntimeError(f"poisoned key for {tango_host}")
        trace = os.environ.get("TANGO_STANDIN_TRACE")
        hold = float(os.environ.get("TANGO_STANDIN_HOLD_MS", "0")) / 1000
        if trace:
            append_line(trace, f"enter {os.getpid()} {tango_host} {time.monotonic():.6f}\n")
        time.sleep(hold)
        if trace:
            append_line(trace, f"exit {os.getpid()} {tango_host} {time.monotonic():.6f}\n")
        return Probe(True)


@dataclass
class SoakStandIn(StandInTango):
    """The stand-in of the fault soak (``tests/soak``), as loaded by real worker processes.

    500 real PyTango device servers do not fit on the soak's machine, so TANGO is played
    here, at the ``TangoPort`` boundary, from what the soak driver publishes
    (``tests.soak.tango_side``), which it derives from the StatefulSets in kubeemu:

    - ``TANGO_STANDIN_REGISTRY`` names a JSON file ``{"hosts": [...], "devices": {host:
      [...]}}``: the TANGO hosts whose DataBaseds pod is ready, and per host the devices
      exported — those of the DeviceServers whose pod is ready. A dependency is ready, and
      a server's own devices are exported, only once its provider's pod is. The file is
      replaced atomically by the driver and read again whenever it changed.
    - ``TANGO_STANDIN_OUTAGE`` names a file whose existence means every TANGO DB is down:
      ``database_alive`` and ``device_ready`` answer no, ``unexported_devices``,
      ``apply_config`` and ``remove_server`` raise ``TangoUnavailableError``.

    The independent concurrency recorder: when ``TANGO_STANDIN_TRACE`` is set, the whole of
    every reconcile this process runs (``workers.reconcile.by_kind.reconcile``, called by
    the task with the key's lease held) is bracketed by ``enter``/``exit`` lines carrying the
    key (``Key.encode()``), in ``overlapping_windows``' format; it looks at what runs, not at
    the work queue's lock. The claims of devices (``apply_config``) stay per process, as in
    ``StandInTango``: the soak's specs never claim one device twice.
    """

    def __post_init__(self) -> None:
        self._registry_path = os.environ.get("TANGO_STANDIN_REGISTRY", "")
        self._outage_path = os.environ.get("TANGO_STANDIN_OUTAGE", "")
        self._seen: tuple[int, int, int] | None = None
        self._hosts: frozenset[str] = frozenset()
        self._exported: dict[str, frozenset[str]] = {}
        trace = os.environ.get("TANGO_STANDIN_TRACE")
        if trace:
            trace_reconciles(trace)

    def _down(self) -> bool:
        return bool(self._outage_path) and os.path.exists(self._outage_path)

    def _refresh(self) -> None:
        """Read the registry again if the driver replaced it (a new inode each time)."""
        if not self._registry_path:
            return
        try:
            stat = os.stat(self._registry_path)
        except FileNotFoundError:
            return
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        with open(self._registry_path, encoding="utf-8") as handle:
            published = json.load(handle)
        self._hosts = frozenset(published.get("hosts") or ())
        self._exported = {
            host: frozenset(device.lower() for device in devices)
            for host, devices in (published.get("devices") or {}).items()
        }
        self._seen = seen

    def database_alive(self, tango_host: str) -> Probe:
        if self._down():
            return Probe(False, "connection refused (TANGO DB outage)")
        self._refresh()
        if tango_host not in self._hosts:
            return Probe(False, "DataBaseds pod not ready")
        return Probe(True)

    def device_ready(self, tango_host: str, device: str) -> Probe:
        if self._down():
            return Probe(False, "TANGO host down")
        self._refresh()
        if device.lower() not in self._exported.get(tango_host, frozenset()):
            return Probe(False, "not exported")
        return Probe(True)

    def unexported_devices(self, tango_host: str, devices: tuple[str, ...]) -> list[str]:
        if self._down():
            raise TangoUnavailableError(f"{tango_host}: connection refused (TANGO DB outage)")
        self._refresh()
        exported = self._exported.get(tango_host, frozenset())
        return [device for device in devices if device.lower() not in exported]

    def apply_config(
        self, tango_host: str, server_instance: str, document: JsonDict, *, mode: ConfigMode
    ) -> ConfigResult:
        if self._down():
            raise TangoUnavailableError(f"{tango_host}: connection refused (TANGO DB outage)")
        return super().apply_config(tango_host, server_instance, document, mode=mode)

    def remove_server(self, tango_host: str, server_instance: str) -> None:
        if self._down():
            raise TangoUnavailableError(f"{tango_host}: connection refused (TANGO DB outage)")
        super().remove_server(tango_host, server_instance)


_TRACERS: list[object] = []
"""The wrappers ``trace_reconciles`` made: a process (or a fork of one) wraps only once."""


def trace_reconciles(trace: str) -> None:
    """Wrap ``workers.reconcile.by_kind.reconcile`` in this process to trace each call.

    Each call appends ``enter``/``exit`` lines (pid, key, monotonic clock) to ``trace``.

    The task looks the function up at every call, so every reconcile from now on is
    traced; a process killed inside one leaves an ``enter`` without its ``exit``.
    """
    if any(tracer is by_kind.reconcile for tracer in _TRACERS):
        return
    original = by_kind.reconcile

    def traced(key: Key, ports: Ports) -> Outcome:
        subject = key.encode()
        append_line(trace, f"enter {os.getpid()} {subject} {time.monotonic():.6f}\n")
        try:
            return original(key, ports)
        finally:
            append_line(trace, f"exit {os.getpid()} {subject} {time.monotonic():.6f}\n")

    _TRACERS.append(traced)
    by_kind.reconcile = traced


def append_line(path: str, line: str) -> None:
    """One write of one line with O_APPEND: lines from many processes never interleave."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def reconcile_starts(trace: Path) -> list[tuple[int, str, float]]:
    """Read the reconcile starts of the ``TracingStandIn`` trace, in the order written.

    Returns (pid, TANGO host, time.monotonic) of every ``enter`` line; empty before the first
    reconcile wrote one.
    """
    if not trace.exists():
        return []
    starts = []
    for line in trace.read_text().splitlines():
        event, pid, host, stamp = line.split()
        if event == "enter":
            starts.append((int(pid), host, float(stamp)))
    return starts


def overlapping_windows(
    trace: str, deaths: dict[int, float] | None = None
) -> list[tuple[str, str]]:
    """Pairs (host, detail) where two processes were inside for the same host at once.

    ``deaths`` maps the pids a test killed to when (time.monotonic) it killed them: a
    killed process never writes its ``exit`` line, and is not inside after its death.
    """
    inside: dict[str, dict[str, float]] = {}
    overlaps: list[tuple[str, str]] = []
    for line in Path(trace).read_text().splitlines():
        event, pid, host, stamp = line.split()
        current = inside.setdefault(host, {})
        for dead, when in (deaths or {}).items():
            if when < float(stamp):
                current.pop(str(dead), None)
        if event == "enter":
            if current:
                overlaps.append((host, f"pid {pid} entered while {sorted(current)} inside"))
            current[pid] = float(stamp)
        else:
            current.pop(pid, None)
    return overlaps
