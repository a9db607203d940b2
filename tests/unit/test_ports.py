"""devstack.ports: servers' ports are drawn where no outgoing connection can take them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack import ports


def test_ports_are_below_the_ephemeral_range_free_and_never_handed_out_twice() -> None:
    low = ports.ephemeral_low()
    drawn = [ports.free_port() for _ in range(100)]
    assert len(set(drawn)) == len(drawn)
    assert all(ports.LOWEST <= port < low for port in drawn)
    with socket.socket() as server:
        server.bind((ports.LOOPBACK, drawn[-1]))  # free: a server can bind it
        server.listen()


def test_a_busy_port_is_skipped() -> None:
    with socket.socket() as busy:
        busy.bind((ports.LOOPBACK, ports.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        ports._handed_out.discard(taken)  # as if another process had drawn it
        assert not ports._bindable(taken)


def test_without_room_below_the_ephemeral_range_the_kernel_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text(f"{ports.LOWEST + 10}\t60999\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", narrow)
    assert ports.ephemeral_low() == ports.LOWEST + 10
    port = ports.free_port()
    assert port >= ports.LOWEST + 10  # the kernel's own choice, from its range
