"""TANGO worlds described once, made real or told to the stand-in; the answers compared.

A :class:`World` says which server instances a TANGO DB defines and whether each runs, never
started, or was killed (SIGKILL: the DB still says "exported"), each device's State and Status
at start, which device names the DB does not define, which TCP endpoints refuse, and whether
the DB answers, refuses (killed) or hangs (SIGSTOP). :func:`realize` makes it real on a
DataBaseds (``tests.support.tango_db``) with EchoServer processes
(``tests.support.tango_servers``); :func:`take_down` kills or freezes the DB;
:func:`stand_in` tells the same facts to :class:`~tests.support.standin_tango.StandInTango`.

:func:`ask` makes one ``TangoPort`` call and keeps what the reconcilers and the CR status use
of its answer (or of what it raised): ``ok`` and the reason's :func:`kind` (the whole reason
where it does not depend on PyTango's error texts), the exported flag, State and Status of
each device, ``changed``, the devices named, the exception's type. The contract suite
(``tests/integration/tango/test_port_contract.py``) compares ``ask`` of PyTangoPort with
``ask`` of the stand-in.

:class:`ConfigCase` is the dsconfig document pair of the configuration-mode tests, with the
DB's view of it read through PyTango's Database API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import tango

from tests.support.standin_tango import StandInTango
from tests.support.tango_db import TangoDatabase
from tests.support.tango_servers import TangoServers
from workers.reconcile.ports import (
    ConfigConflictError,
    ConfigResult,
    DeviceHealth,
    Probe,
    TangoPort,
    TangoUnavailableError,
)

JsonDict = dict[str, Any]
UNKNOWN = "UNKNOWN"


class Run(StrEnum):
    """What became of a server instance defined in the DB."""

    RUNNING = "running"
    NEVER = "never started"
    KILLED = "killed"
    """Started, then SIGKILLed: its devices stay exported in the DB and answer nothing."""


class DatabaseState(StrEnum):
    """How the TANGO DB answers."""

    UP = "up"
    REFUSING = "refusing"
    """Its process was killed: connections are refused."""
    HUNG = "hung"
    """SIGSTOPped: the kernel accepts connections, nothing answers."""


@dataclass(frozen=True)
class Device:
    """An ``Echo`` device: its State at start and the greeting its Status shows."""

    name: str
    state: str = "ON"
    greeting: str = "hello"

    @property
    def status(self) -> str:
        """The Status the EchoServer sets at start."""
        return f"{self.state}: {self.greeting}"


@dataclass(frozen=True)
class Server:
    """``EchoServer/<instance>`` and its devices."""

    instance: str
    devices: tuple[Device, ...]
    run: Run = Run.RUNNING

    @property
    def server_instance(self) -> str:
        """``EchoServer/<instance>``."""
        return f"EchoServer/{self.instance}"

    @property
    def names(self) -> tuple[str, ...]:
        """The devices' names."""
        return tuple(device.name for device in self.devices)


@dataclass(frozen=True)
class World:
    """What a TANGO DB and its servers look like, as a scenario describes it."""

    servers: tuple[Server, ...] = ()
    undefined: tuple[str, ...] = ()
    """Device names the DB does not define."""
    closed_endpoints: tuple[str, ...] = ()
    """``host:port`` endpoints nothing listens on."""
    database: DatabaseState = DatabaseState.UP


def realize(world: World, servers: TangoServers) -> None:
    """Register and start (or not, or kill) the world's servers on ``servers``' DB.

    The DB's own state is :func:`take_down`'s: a caller may warm a port before it.
    """
    for server in world.servers:
        properties = {
            device.name: {"state_at_start": [device.state], "greeting": [device.greeting]}
            for device in server.devices
        }
        servers.register(server.server_instance, "Echo", server.names, properties)
        if server.run is not Run.NEVER:
            running = servers.start_echo(server.instance)
            if server.run is Run.KILLED:
                running.kill()


def take_down(world: World, db: TangoDatabase) -> None:
    """Kill or freeze the DB as the world says (nothing for ``UP``)."""
    if world.database is DatabaseState.REFUSING:
        db.kill()
    elif world.database is DatabaseState.HUNG:
        db.freeze()


def stand_in(world: World, tango_host: str) -> StandInTango:
    """A StandInTango told the world's facts (for the DB at ``tango_host``)."""
    standin = StandInTango()
    for server in world.servers:
        standin.register(server.server_instance, "Echo", server.names)
        if server.run is Run.NEVER:
            standin.unexported.update(server.names)
        elif server.run is Run.KILLED:
            standin.silent_devices.update(server.names)
        for device in server.devices:
            standin.device_states[device.name] = (device.state, device.status)
    standin.undefined_devices.update(world.undefined)
    standin.unreachable_endpoints.update(world.closed_endpoints)
    if world.database is DatabaseState.REFUSING:
        standin.down_hosts.add(tango_host)
    elif world.database is DatabaseState.HUNG:
        standin.hung_hosts.add(tango_host)
    return standin


EXACT_KINDS = frozenset({"not defined", "not exported", "refused"})
"""Kinds whose whole reason is compared: their words are the operator's, not PyTango's."""


def kind(reason: str) -> str:
    """The kind of a probe reason or a device's Status, as a user reads it in the CR status.

    ``not defined`` / ``not exported`` (in the TANGO DB), ``TANGO DB does not answer`` (a
    device probed through a DB that cannot be asked), ``no answer`` (a DB or device that
    does not answer: killed, hung), ``refused`` (a TCP connection refused); "" for none.
    """
    if not reason:
        return ""
    low = reason.lower()
    if "not defined" in low:
        return "not defined"
    if "not exported" in low:
        return "not exported"
    if low.startswith("tango db ") and "does not answer" in low:
        return "TANGO DB does not answer"
    if "does not answer" in low or "no answer" in low or "timed out" in low:
        return "no answer"
    if "refused" in low:
        return "refused"
    return f"unclassified: {reason}"


def _probe(probe: Probe) -> tuple[bool, str, str]:
    found = kind(probe.reason)
    return probe.ok, found, probe.reason if found in EXACT_KINDS else ""


def _health(entry: DeviceHealth) -> tuple[str, bool, str, str]:
    # a State read: its Status as the device set it; UNKNOWN: why it was not read
    status = entry.status if entry.state != UNKNOWN else kind(entry.status)
    return entry.name, entry.exported, entry.state, status


def _init_failure(failure: str) -> tuple[str, str]:
    device, _, why = failure.partition(": ")
    return device, "not defined" if "not defined" in why else "failed"


Answer = Any
"""What :func:`ask` keeps of an answer: tuples, lists of tuples, strings; comparable with ==."""


@dataclass
class Asked:
    """The comparable answer of one call, and how long it took."""

    answer: Answer
    seconds: float = field(compare=False)


def ask(port: TangoPort, method: str, *args: Any, **kwargs: Any) -> Asked:
    """Call ``port.<method>(*args, **kwargs)``; what the reconcilers use of its answer.

    An exception the reconcilers handle becomes ``(type name, detail)``: for
    TangoUnavailableError whether the message names the TANGO host (the first argument), for
    ConfigConflictError the message (the CR status shows it).
    """
    call: Callable[..., Any] = getattr(port, method)
    started = time.monotonic()
    try:
        result = call(*args, **kwargs)
    except TangoUnavailableError as exc:
        answer: Answer = ("TangoUnavailableError", f"names the host: {str(args[0]) in str(exc)}")
    except ConfigConflictError as exc:
        answer = ("ConfigConflictError", str(exc))
    else:
        answer = _normalized(method, result)
    return Asked(answer, time.monotonic() - started)


def _normalized(method: str, result: Any) -> Answer:
    if isinstance(result, Probe):
        return _probe(result)
    if isinstance(result, ConfigResult):
        return ("changed", result.changed)
    if method == "device_health":
        return [_health(entry) for entry in result]
    if method == "init_devices":
        return [_init_failure(failure) for failure in result]
    if method == "unexported_devices":
        return list(result)
    if method == "remove_server":
        return ("removed", result)
    raise AssertionError(f"no comparison for {method} returning {result!r}")


class ConfigCase:
    """One server instance, its two documents and the DB's view of its first device.

    ``first`` configures two devices and a class; ``second`` changes ``speed``, the unit and
    the class property, gives ``obsolete`` as ``[]``, no longer lists ``greeting`` and the
    second device.
    """

    def __init__(self, db: TangoDatabase, unique: str) -> None:
        self.db = db
        self.instance = unique
        self.target = f"EchoServer/{unique}"
        self.device, self.other = f"modes/{unique}/1", f"modes/{unique}/2"
        self.cls = f"Cls{unique.replace('-', '')}"
        self.first = self.document(
            {
                "properties": {"greeting": ["hi"], "speed": ["1"], "obsolete": ["x"]},
                "attribute_properties": {"level": {"unit": ["mm"], "note": ["first"]}},
            },
            {self.other: {"properties": {"p": ["2"]}}},
            shared=["a"],
        )
        self.second = self.document(
            {
                "properties": {"speed": ["2"], "obsolete": []},
                "attribute_properties": {"level": {"unit": ["m"]}},
            },
            {},
            shared=["b"],
        )

    def document(self, body: JsonDict, others: JsonDict, *, shared: list[str]) -> JsonDict:
        """The instance's dsconfig document: its first device, ``others``, the class."""
        devices = {self.device: body, **others}
        return {
            "servers": {"EchoServer": {self.instance: {"Echo": devices}}},
            "classes": {self.cls: {"properties": {"shared": shared}}},
        }

    def written_at_run_time(self) -> None:
        """What Jive and a memorized attribute write while the server runs."""
        database = self.db.database()
        database.put_device_property(self.device, {"set_in_jive": ["42"]})
        database.put_device_attribute_property(
            self.device, {"level": {"__value": ["3.5"], "jive_note": ["tuned"]}}
        )
        database.put_class_property(self.cls, {"class_in_jive": ["c"]})

    def properties(self) -> dict[str, list[str]]:
        """The first device's properties in the DB (names lower-cased)."""
        database = self.db.database()
        names = list(database.get_device_property_list(self.device, "*"))
        values = database.get_device_property(self.device, names) if names else {}
        return {name.lower(): list(value) for name, value in values.items()}

    def attribute_properties(self) -> dict[str, dict[str, list[str]]]:
        """The first device's attribute properties in the DB (names lower-cased)."""
        database = self.db.database()
        attributes = tango.StdStringVector()
        database.get_device_attribute_list(self.device, attributes)
        values = database.get_device_attribute_property(self.device, list(attributes))
        return {
            attribute.lower(): {name.lower(): list(v) for name, v in props.items()}
            for attribute, props in values.items()
            if props
        }

    def class_properties(self) -> dict[str, list[str]]:
        """The class's properties in the DB (names lower-cased)."""
        database = self.db.database()
        names = list(database.get_class_property_list(self.cls))
        values = database.get_class_property(self.cls, names) if names else {}
        return {name.lower(): list(value) for name, value in values.items()}

    def devices(self) -> set[str]:
        """The instance's ``Echo`` devices in the DB (lower-cased)."""
        listing = list(self.db.database().get_device_class_list(self.target))
        return {d.lower() for d, c in zip(listing[0::2], listing[1::2], strict=True) if c == "Echo"}
