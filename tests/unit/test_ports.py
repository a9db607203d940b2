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


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind((ports.LOOPBACK, ports.free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        free = ports.free_port()
        ports._handed_out.difference_update({taken, free})  # as if another process drew them
        draws = iter([taken, free])
        monkeypatch.setattr(ports._random, "randrange", lambda *_: next(draws))
        assert ports.free_port() == free


def test_without_room_below_the_ephemeral_range_the_kernel_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text(f"{ports.LOWEST + 10}\t60999\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", narrow)
    ports.ephemeral_low.cache_clear()
    request.addfinalizer(ports.ephemeral_low.cache_clear)
    assert ports.ephemeral_low() == ports.LOWEST + 10
    port = ports.free_port()
    assert port >= ports.LOWEST + 10  # the kernel's own choice, from its range
