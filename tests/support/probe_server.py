"""The device server the end-to-end tests and the real-TANGO soak run: ``Probe``.

It serves its ``label`` property as an attribute, so a test sees what the TANGO DB gave it at
start. Its State starts as the property ``state_at_start`` (ON unless set), with the Status
``<state>: <label>``; the command ``SetStateTo`` (a state name and a status) changes both
while it runs, as a device that finds a fault would.
"""

from __future__ import annotations

SERVER_SCRIPT = '''\
from tango import AttrWriteType, DevState
from tango.server import Device, attribute, command, device_property, run


class Probe(Device):
    """Serves its ``label`` property, so a test sees what the DB gave it at start."""

    label = device_property(dtype=str, default_value="unset")
    state_at_start = device_property(dtype=str, default_value="ON")

    def init_device(self):
        super().init_device()
        self.set_state(DevState.names[self.state_at_start])
        self.set_status(f"{self.state_at_start}: {self.label}")

    @attribute(dtype=str)
    def label_value(self):
        return self.label

    @command(dtype_in=(str,))
    def SetStateTo(self, state_and_status):
        state, status = state_and_status
        self.set_state(DevState.names[state])
        self.set_status(status)


if __name__ == "__main__":
    run((Probe,))
'''
