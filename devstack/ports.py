"""Free local ports for the servers the local stack and the tests start.

Callers: every part of ``devstack`` and ``tests`` that starts a listening process on a port
it chooses itself (redis-server, DataBaseds, the control plane, the local kubelet's pods).
Out: a loopback port number that was free when asked and that no outgoing connection on the
machine will take before the server binds it.

Why not ``bind(("127.0.0.1", 0))`` alone: the kernel draws the port of such a bind from its
ephemeral range (``net.ipv4.ip_local_port_range``, 32768-60999 by default), the same range
it draws the local port of every outgoing connection from. Between the probe's close and the
server's bind any client socket on the machine can take the port; with a suite of thousands
of connections on a loaded machine it happened (a DataBaseds pod of the local stack failed
with "Address in use" at every restart). So ports are drawn at random from below that range,
where the kernel never puts a connection, each checked by a bind, and a process never hands
out the same port twice. Two processes can still draw the same free port and race for it;
with some ten thousand ports to draw from that is rare, and the server's own bind reports it.
"""

from __future__ import annotations

import functools
import random
import socket
import threading
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST = 20000
"""The lowest port handed out (below it: well-known services and common development ports)."""
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
MIN_CHOICE = 1000
"""Fewer ports than this below the ephemeral range: fall back to the kernel's choice."""

_lock = threading.Lock()
_handed_out: set[int] = set()
_random = random.SystemRandom()


@functools.cache
def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read; read once)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _kernel_choice() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


def free_port() -> int:
    """A TCP port on the loopback address, free now and outside the ephemeral range."""
    high = ephemeral_low()
    if high - LOWEST < MIN_CHOICE:
        return _kernel_choice()
    with _lock:
        for _ in range(200):
            port = _random.randrange(LOWEST, high)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    return _kernel_choice()
