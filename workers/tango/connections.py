"""PyTango client objects, created lazily and kept per process.

``DeviceProxy`` and ``Database`` objects are expensive to create (a CORBA connection, a
DB lookup) and are reused for every call to the same TANGO host or device. They are
never created at import time, and a process that finds objects made by another process
(a Celery prefork child inherits its parent's memory) drops them unused: CORBA state does
not survive ``fork``. Dropped objects are kept referenced, not destroyed, so that their
destructors never run against the parent's connections.

Data in: ``host:port`` TANGO hosts and device names. Data out: PyTango objects with their
timeouts set (``probe_timeout`` for probes, ``config_timeout`` for dsconfig's DB calls).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import tango

DATABASE_DEVICE = "sys/database/2"
MAX_PROXIES = 2048


def split_host(tango_host: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ValueError for anything else."""
    host, sep, port = tango_host.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{tango_host!r} is not a TANGO host of the form host:port")
    return host, int(port)


def tcp_connect(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to host:port opens within ``timeout``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"TCP connect to {host}:{port} timed out after {timeout:g} s"
    except OSError as exc:
        return f"TCP connect to {host}:{port} failed: {exc.strerror or exc}"


class Connections:
    """Per-process cache of the PyTango objects for each TANGO host and device."""

    def __init__(
        self,
        *,
        probe_timeout: float,
        config_timeout: float,
        database_device: str = DATABASE_DEVICE,
    ) -> None:
        self.probe_timeout_ms = max(1, int(probe_timeout * 1000))
        self.config_timeout_ms = max(1, int(config_timeout * 1000))
        self.database_device = database_device
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._objects: dict[tuple[str, str, str], Any] = {}
        self._abandoned: list[Any] = []

    def _get(self, key: tuple[str, str, str], create: Any) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._abandoned.append(self._objects)
                self._objects = {}
                self._pid = os.getpid()
            found = self._objects.get(key)
        if found is not None:
            return found
        created = create()  # outside the lock: may take up to a timeout
        with self._lock:
            if len(self._objects) >= MAX_PROXIES:
                self._objects.clear()  # made in this process: safe to destroy
            return self._objects.setdefault(key, created)

    def database_proxy(self, tango_host: str) -> Any:
        """A DeviceProxy to the DB device (probes: its commands honour the timeout)."""

        def create() -> Any:
            host, port = split_host(tango_host)
            proxy = tango.DeviceProxy(f"tango://{host}:{port}/{self.database_device}")
            proxy.set_timeout_millis(self.probe_timeout_ms)
            return proxy

        return self._get(("dbproxy", tango_host, self.database_device), create)

    def device_proxy(self, tango_host: str, device: str) -> Any:
        """A DeviceProxy to ``device`` through the DB at ``tango_host`` (made once, then reused)."""
        return self._device("device", tango_host, device, self.probe_timeout_ms)

    def command_proxy(self, tango_host: str, device: str) -> Any:
        """A DeviceProxy to ``device`` with the config timeout, for commands such as ``Init``.

        They may take longer than a probe; a proxy of its own, since timeouts are per proxy.
        """
        return self._device("command", tango_host, device, self.config_timeout_ms)

    def _device(self, role: str, tango_host: str, device: str, timeout_ms: int) -> Any:
        def create() -> Any:
            host, port = split_host(tango_host)
            proxy = tango.DeviceProxy(f"tango://{host}:{port}/{device}")
            proxy.set_timeout_millis(timeout_ms)
            return proxy

        return self._get((role, tango_host, device.lower()), create)

    def database(self, tango_host: str) -> Any:
        """A ``tango.Database`` for dsconfig (the API it is written against)."""

        def create() -> Any:
            host, port = split_host(tango_host)
            database = tango.Database(host, port)
            database.set_timeout_millis(self.config_timeout_ms)
            return database

        return self._get(("database", tango_host, ""), create)

    def forget(self, tango_host: str, device: str | None = None) -> None:
        """Drop the objects of a host (or one device of it); the next call makes new ones."""
        with self._lock:
            for key in list(self._objects):
                if key[1] == tango_host and (device is None or key[2] == device.lower()):
                    del self._objects[key]
