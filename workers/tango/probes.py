"""The readiness probes.

Is a TANGO DB answering, is a device exported and alive, is a TCP endpoint open. Uncached;
:mod:`workers.tango.port` puts its TTL cache in front.

Data in: ``host:port`` TANGO hosts (as reachable from the worker) and device names.
Data out: :class:`~workers.reconcile.ports.Probe` answers with a human reason, or for the
export check ``(exported, error)`` pairs. Nothing here raises for "down".

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

from workers.reconcile.ports import Probe
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

    def endpoint_reachable(self, host: str, port: int) -> Probe:
        """Whether a TCP connection to ``host:port`` opens within the timeout."""
        refused = tcp_connect(host, port, self.timeout)
        return Probe(False, refused) if refused else Probe(True)


def _split_url(tango_host: str, device: str) -> tuple[str, str]:
    """``tango://host:port/a/b/c`` names its own TANGO host; a bare name uses ``tango_host``."""
    if device.lower().startswith("tango://"):
        rest = device[len("tango://") :]
        address, _, name = rest.partition("/")
        return address, name.split("#", 1)[0]
    return tango_host, device
