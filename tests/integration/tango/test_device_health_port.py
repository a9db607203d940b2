"""``TangoPort.device_health`` on real TANGO and on the stand-in: one scenario, one answer.

Real: PyTango's DataBaseds and EchoServer processes, read through PyTangoPort. Stand-in:
``tests.support.standin_tango.StandInTango`` told the same facts. Both must give the same
list for a device ON, one in FAULT and one whose server is not running, and both must raise
``TangoUnavailableError`` for a TANGO DB that does not answer — so the reconcile tests that
use the stand-in stand for what real TANGO does.
"""

from __future__ import annotations

import pytest

from devstack.runner.plan import free_port
from tests.support.standin_tango import StandInTango
from tests.support.tango_db import PyTangoDatabase
from tests.support.tango_servers import TangoServers
from workers.reconcile.ports import DeviceHealth, TangoUnavailableError
from workers.tango import PyTangoPort


def _expected(on: str, fault: str, stopped: str) -> list[DeviceHealth]:
    return [
        DeviceHealth(on, True, "ON", "ON: hello"),
        DeviceHealth(fault, True, "FAULT", "FAULT: no power"),
        DeviceHealth(stopped, False, "UNKNOWN", "not exported"),
    ]


def test_real_tango_and_the_stand_in_read_the_same_device_health(
    tango_db: PyTangoDatabase, servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    on, fault, stopped = (f"test/{unique}/{part}" for part in ("on", "fault", "stopped"))
    instance, other = f"EchoServer/{unique}", f"EchoServer/{unique}-off"
    servers.register(
        instance,
        "Echo",
        [on, fault],
        {fault: {"state_at_start": ["FAULT"], "greeting": ["no power"]}},
    )
    servers.register(other, "Echo", [stopped])  # defined, its server never started
    servers.start_echo(unique)
    devices = (on, fault, stopped)

    real = port.device_health(tango_db.tango_host, instance, devices)
    standin = StandInTango(
        unexported={stopped},
        device_states={on: ("ON", "ON: hello"), fault: ("FAULT", "FAULT: no power")},
    ).device_health(tango_db.tango_host, instance, devices)
    assert real == standin == _expected(on, fault, stopped)


def test_a_tango_db_that_does_not_answer_is_unavailable_on_both(port: PyTangoPort) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(TangoUnavailableError):
        port.device_health(dead, "EchoServer/x", ("a/b/c",))
    with pytest.raises(TangoUnavailableError):
        StandInTango(down_hosts={dead}).device_health(dead, "EchoServer/x", ("a/b/c",))
