"""The device server the end-to-end tests and the real-TANGO soak run: ``Probe``.

It serves its ``label`` property as an attribute, so a test sees what the TANGO DB gave it at start.
"""

from __future__ import annotations

SERVER_SCRIPT = '''\
from tango import AttrWriteType
from tango.server import Device, attribute, device_property, run


class Probe(Device):
    """Serves its ``label`` property, so a test sees what the DB gave it at start."""

    label = device_property(dtype=str, default_value="unset")

    @attribute(dtype=str)
    def label_value(self):
        return self.label


if __name__ == "__main__":
    run((Probe,))
'''
