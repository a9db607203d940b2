"""PyTangoPort's probes against a real PyTango DataBaseds and real PyTango device servers.

What the stand-in must answer alike (up, not defined, not exported, endpoints) is in
``test_port_contract.py``; here what only the real port does: timing, restarts, URLs, case.
"""

from __future__ import annotations

import time

import pytest

from devstack.ports import free_port
from tests.support.tango_db import PyTangoDatabase
from tests.support.tango_servers import TangoServers
from workers.reconcile.ports import TangoUnavailableError
from workers.tango import PyTangoPort

MARGIN = 2.0
"""Seconds a loaded machine may add to a call bounded by the port's deadline."""


def within_deadline(port: PyTangoPort) -> float:
    """How long a bounded probe may take: its timeout, the wall-clock deadline's 0.5 s, slack."""
    return port.timeout + 0.5 + MARGIN


def _echo(servers: TangoServers, unique: str, count: int = 1) -> tuple[str, list[str]]:
    """Register EchoServer/<unique> with ``count`` devices; returns (instance, devices)."""
    devices = [f"test/{unique}/{i}" for i in range(count)]
    servers.register(f"EchoServer/{unique}", "Echo", devices)
    return unique, devices


# --- database_alive ------------------------------------------------------------------------------
def test_database_alive_false_with_reason_within_the_deadline_when_stopped(
    own_tango_db: PyTangoDatabase, port: PyTangoPort
) -> None:
    assert port.database_alive(own_tango_db.tango_host).ok
    own_tango_db.stop()
    started = time.monotonic()
    probe = port.database_alive(own_tango_db.tango_host)
    assert time.monotonic() - started < within_deadline(port)
    assert not probe.ok
    assert "refused" in probe.reason.lower()
    assert own_tango_db.tango_host.split(":")[1] in probe.reason


def test_database_alive_false_within_deadline_when_frozen(
    own_tango_db: PyTangoDatabase, port: PyTangoPort
) -> None:
    """A stopped process keeps its port open: the wall-clock deadline must answer."""
    assert port.database_alive(own_tango_db.tango_host).ok
    own_tango_db.freeze()
    try:
        started = time.monotonic()
        first = port.database_alive(own_tango_db.tango_host)
        first_took = time.monotonic() - started
        started = time.monotonic()
        second = port.database_alive(own_tango_db.tango_host)
        second_took = time.monotonic() - started
    finally:
        own_tango_db.thaw()
    assert not first.ok
    assert "no answer within" in first.reason
    assert first_took < within_deadline(port)
    # the first call is still pending inside PyTango: the next one does not queue behind it
    # (queued, it would wait out the first one's timeout)
    assert not second.ok
    assert second_took < port.timeout
    deadline = time.monotonic() + 15
    while not port.database_alive(own_tango_db.tango_host).ok:
        assert time.monotonic() < deadline, "DB did not come back after SIGCONT"
        time.sleep(0.2)


def test_database_alive_again_after_restart_with_its_data(
    own_tango_db: PyTangoDatabase, port: PyTangoPort
) -> None:
    database = own_tango_db.database()
    database.put_device_property("sys/database/2", {"marker": ["kept"]})
    assert port.database_alive(own_tango_db.tango_host).ok
    own_tango_db.stop()
    assert not port.database_alive(own_tango_db.tango_host).ok
    own_tango_db.restart()
    assert port.database_alive(own_tango_db.tango_host).ok
    values = own_tango_db.database().get_device_property("sys/database/2", ["marker"])
    assert list(values["marker"]) == ["kept"]


def test_database_alive_rejects_a_malformed_host(port: PyTangoPort) -> None:
    probe = port.database_alive("no-port-here")
    assert not probe.ok
    assert "host:port" in probe.reason


# --- device_ready --------------------------------------------------------------------------------
def test_running_device_is_ready_and_exported(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique, count=2)
    assert port.unexported_devices(tango_db.tango_host, tuple(devices)) == devices
    servers.start_echo(instance)
    for device in devices:
        assert port.device_ready(tango_db.tango_host, device) == port.device_ready(
            tango_db.tango_host, device.upper()
        )
        assert port.device_ready(tango_db.tango_host, device).ok
    assert port.unexported_devices(tango_db.tango_host, tuple(devices)) == []


def test_device_given_as_tango_url_uses_its_own_host(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique)
    servers.start_echo(instance)
    url = f"tango://{tango_db.tango_host}/{devices[0]}"
    assert port.device_ready(f"127.0.0.1:{free_port()}", url).ok


def test_killed_server_keeps_exported_flag_but_is_not_ready(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique)
    running = servers.start_echo(instance)
    assert port.device_ready(tango_db.tango_host, devices[0]).ok
    running.kill()
    assert tango_db.database().import_device(devices[0]).exported  # the DB still believes it
    started = time.monotonic()
    probe = port.device_ready(tango_db.tango_host, devices[0])
    assert time.monotonic() - started < within_deadline(port)
    assert not probe.ok
    assert "does not answer" in probe.reason
    # the export check alone cannot tell (that is why device_ready pings)
    assert port.unexported_devices(tango_db.tango_host, tuple(devices)) == []


def test_cleanly_stopped_server_is_unexported(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique)
    running = servers.start_echo(instance)
    running.stop()
    assert port.unexported_devices(tango_db.tango_host, tuple(devices)) == devices
    assert "not exported" in port.device_ready(tango_db.tango_host, devices[0]).reason


def test_restarted_server_is_ready_again_through_the_same_port_object(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique)
    servers.start_echo(instance).kill()
    assert not port.device_ready(tango_db.tango_host, devices[0]).ok
    servers.start_echo(instance)  # a new process on a new port: the proxy must re-import
    assert port.device_ready(tango_db.tango_host, devices[0]).ok


def test_frozen_device_is_not_ready_within_deadline(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    instance, devices = _echo(servers, unique)
    running = servers.start_echo(instance)
    assert port.device_ready(tango_db.tango_host, devices[0]).ok
    running.freeze()
    try:
        started = time.monotonic()
        probe = port.device_ready(tango_db.tango_host, devices[0])
        took = time.monotonic() - started
    finally:
        running.thaw()
    assert not probe.ok
    assert took < within_deadline(port)


def test_unexported_devices_raises_when_the_db_is_down(
    own_tango_db: PyTangoDatabase, port: PyTangoPort
) -> None:
    assert port.unexported_devices(own_tango_db.tango_host, ("sys/database/2",)) == []
    own_tango_db.stop()
    started = time.monotonic()
    with pytest.raises(TangoUnavailableError, match=own_tango_db.tango_host):
        port.unexported_devices(own_tango_db.tango_host, ("sys/database/2",))
    assert time.monotonic() - started < within_deadline(port)


def test_device_ready_when_the_db_is_down(own_tango_db: PyTangoDatabase, port: PyTangoPort) -> None:
    own_tango_db.stop()
    probe = port.device_ready(own_tango_db.tango_host, "sys/database/2")
    assert not probe.ok
    assert "does not answer" in probe.reason
