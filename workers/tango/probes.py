"""The readiness probes.

Is a TANGO DB answering, is a device exported and alive, is a TCP endpoint open. Uncached;
:mod:`workers.tango.port` puts its TTL cache in front.

Data in: ``host:port`` TANGO hosts (as reachable from the worker) and device names.
Data out: :class:`~workers.reconcile.ports.Probe` answers with a human reason, for the
export check ``(exported, error)`` pairs, and an exported device's health
(:class:`~workers.reconcile.ports.DeviceHealth`: State and Status read in one
``read_attributes`` call). Nothing here raises for "down".

Where the answers come from: the DB device's ``DbImportDevice`` command (the DB's own
record of a device: exported flag, server, pid) through a DeviceProxy to
``sys/database/2`` — a real query, so a DataBaseds whose SQL backend is gone is not
"alive" — and ``DeviceProxy.ping`` of the device itself, since a killed server leaves its
exported flag set in the DB. Every call is bounded twice: PyTango's timeout on the proxy
and a wall-clock deadline (:class:`workers.tango.calls.BoundedCaller`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.reconcile.ports import DeviceHealth, Probe
from workers.tango.calls import BoundedCaller, describe, reasons, unavailable
from workers.tango.connections import Connections, split_host, tcp_connect


@dataclass(frozen=True)
class Exported:
    """The DB's record of one device: defined, exported, and by which server."""

    defined: bool
    exported: bool
    server: str = ""
    error: str = ""
    """Non-empty when the DB could not be asked (the other fields then mean nothing)."""
    refused: str = ""
    """Non-empty when the DB answered the lookup with an error other than "not defined"."""


@dataclass
class Probes:
    """The uncached probes, each call bounded by ``timeout`` through ``caller``."""

    connections: Connections
    caller: BoundedCaller
    timeout: float
    """Seconds: PyTango timeout of each call and the TCP connect timeout."""

    @property
    def deadline(self) -> float:
        """Seconds a probe call may take in all: the PyTango timeout plus half a second."""
        return self.timeout + 0.5

    def _import(self, tango_host: str, device: str) -> Any:
        def call() -> Any:
            proxy = self.connections.database_proxy(tango_host)
            return proxy.command_inout("DbImportDevice", device)

        return self.caller.call(tango_host, call, self.deadline)

    def exported(self, tango_host: str, device: str) -> Exported:
        """Ask the DB whether ``device`` is defined and exported, and by which server.

        A DB that does not answer gives ``error``; a refusal of the device gives ``refused``.
        """
        try:
            flags, strings = self._import(tango_host, device)
        except Exception as exc:
            if "DB_DeviceNotDefined" in reasons(exc):
                return Exported(defined=False, exported=False)
            if unavailable(exc):
                # a proxy that failed refuses to reconnect for a while (cppTango's
                # reconnection delay): the next probe starts with a fresh one
                self.connections.forget(tango_host, self.connections.database_device)
                return Exported(False, False, error=describe(exc))
            return Exported(defined=False, exported=False, refused=describe(exc))
        server = str(strings[3]) if len(strings) > 3 else ""
        return Exported(defined=True, exported=bool(flags[0]), server=server)

    def database_alive(self, tango_host: str) -> Probe:
        """Whether the DB at ``tango_host`` accepts TCP and its DB device is exported."""
        try:
            host, port = split_host(tango_host)
        except ValueError as exc:
            return Probe(False, str(exc))
        refused = tcp_connect(host, port, self.timeout)
        if refused:
            return Probe(False, refused)
        device = self.connections.database_device
        record = self.exported(tango_host, device)
        if record.error:
            return Probe(False, f"{device} at {tango_host} does not answer: {record.error}")
        if not record.exported:
            return Probe(False, f"{device} is not exported in the DB at {tango_host}")
        return Probe(True)

    def device_ready(self, tango_host: str, device: str) -> Probe:
        """Whether ``device`` is exported in its DB and answers a ping."""
        tango_host, device = _split_url(tango_host, device)
        record = self.exported(tango_host, device)
        if record.error:
            return Probe(False, f"TANGO DB {tango_host} does not answer: {record.error}")
        if record.refused:
            return Probe(False, f"the TANGO DB at {tango_host} refused {device}: {record.refused}")
        if not record.defined:
            return Probe(False, f"{device} is not defined in the TANGO DB at {tango_host}")
        if not record.exported:
            return Probe(False, f"{device} is not exported (server {record.server} not running)")

        def ping() -> Any:
            return self.connections.device_proxy(tango_host, device).ping()

        try:
            self.caller.call(f"{tango_host}/{device.lower()}", ping, self.deadline)
        except Exception as exc:
            # the server may come back elsewhere (new port, new IOR): re-import next time
            self.connections.forget(tango_host, device)
            return Probe(False, f"{device} is exported but does not answer: {describe(exc)}")
        return Probe(True)

    def read_state(self, tango_host: str, server_instance: str, device: str) -> DeviceHealth:
        """An exported device's State and Status (UNKNOWN with the reason when unread).

        The devices of one server instance live in one process: the calls go through the
        bounded caller under one key for the instance, so once one device hangs the others
        fail at once instead of each waiting for the deadline.
        """

        def read() -> Any:
            proxy = self.connections.device_proxy(tango_host, device)
            return proxy.read_attributes(["State", "Status"])

        caller_key = f"{tango_host}/{server_instance.lower()}"
        try:
            state, status = self.caller.call(caller_key, read, self.deadline)
        except Exception as exc:
            self.connections.forget(tango_host, device)
            return DeviceHealth(
                device, True, UNKNOWN, bounded_status(f"no answer: {describe(exc)}")
            )
        if state.has_failed or status.has_failed:
            failed = state if state.has_failed else status
            errors = "; ".join(str(e.desc).strip() for e in failed.get_err_stack()[:1])
            return DeviceHealth(device, True, UNKNOWN, bounded_status(f"read failed: {errors}"))
        return DeviceHealth(device, True, str(state.value), bounded_status(str(status.value)))

    def init_device(
        self, tango_host: str, server_instance: str, device: str, *, timeout: float
    ) -> str:
        """Run the device's ``Init`` command; "" when it did, else why not."""

        def init() -> Any:
            proxy = self.connections.command_proxy(tango_host, device)
            return proxy.command_inout("Init")

        try:
            self.caller.call(f"{tango_host}/{server_instance.lower()}", init, timeout + 0.5)
        except Exception as exc:
            self.connections.forget(tango_host, device)
            return bounded_status(describe(exc))
        return ""

    def endpoint_reachable(self, host: str, port: int) -> Probe:
        """Whether a TCP connection to ``host:port`` opens within the timeout."""
        refused = tcp_connect(host, port, self.timeout)
        return Probe(False, refused) if refused else Probe(True)


UNKNOWN = "UNKNOWN"
"""The State of a device that could not be read (TANGO clients show the same)."""
MAX_STATUS = 200
"""Characters of a device's Status kept in the CR (TANGO's are often many lines long)."""


def bounded_status(text: str) -> str:
    """``text`` with its whitespace folded into single spaces, at most MAX_STATUS long."""
    folded = " ".join(text.split())
    return folded if len(folded) <= MAX_STATUS else folded[: MAX_STATUS - 1] + "…"


def _split_url(tango_host: str, device: str) -> tuple[str, str]:
    """``tango://host:port/a/b/c`` names its own TANGO host; a bare name uses ``tango_host``."""
    if device.lower().startswith("tango://"):
        rest = device[len("tango://") :]
        address, _, name = rest.partition("/")
        return address, name.split("#", 1)[0]
    return tango_host, device
