"""A tiny PyTango device server for the TANGO integration tests (class ``Echo``).

Started by ``tests.support.tango_servers`` as ``python echo_server.py <instance>`` with
``TANGO_HOST`` pointing at a test DataBaseds: it serves every ``Echo`` device registered
for ``EchoServer/<instance>`` in that DB. Each device reads its device property
``greeting`` at start and shows it as the attribute ``greeting_value`` (so a test can see
what the DB gave the device), and has a writable, memorized ``level`` attribute (a write is kept
in the DB as its attribute property ``__value`` and written again at start). Its State at start is
the device property ``state_at_start`` (ON unless set; a test sets FAULT), its Status
``<state>: <greeting>``.
"""

from __future__ import annotations

import sys

from tango import AttrWriteType, DevState
from tango.server import Device, attribute, device_property, run


class Echo(Device):  # type: ignore[misc]
    greeting = device_property(dtype=str, default_value="hello")
    state_at_start = device_property(dtype=str, default_value="ON")
    greeting_value = attribute(dtype=str)
    level = attribute(
        dtype=float, access=AttrWriteType.READ_WRITE, memorized=True, hw_memorized=True
    )

    def init_device(self) -> None:
        super().init_device()
        self._level = 0.0
        self.set_state(DevState.names[self.state_at_start])
        self.set_status(f"{self.state_at_start}: {self.greeting}")

    def read_greeting_value(self) -> str:
        return str(self.greeting)

    def read_level(self) -> float:
        return self._level

    def write_level(self, value: float) -> None:
        self._level = value


if __name__ == "__main__":
    # the server name is argv[0]: EchoServer, whatever this file is called
    run((Echo,), args=["EchoServer", *sys.argv[1:]])
