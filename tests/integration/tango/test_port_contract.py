"""The TangoPort contract: PyTangoPort on real TANGO and the stand-in give the same answers.

Each scenario is written once as a ``tests.support.tango_worlds.World`` and played twice:
made real — PyTango's DataBaseds (sqlite) and, in the slow tier, Debian's C++ DataBaseds on
MariaDB, with real EchoServer processes registered, started, killed, and the DB killed or
SIGSTOPped — and asked through ``workers.tango.PyTangoPort`` (cache off); and told to
``tests.support.standin_tango.StandInTango``, which the reconcile, flow, soak and benchmark
tests use in TANGO's place. The same calls go to both, and what the reconcilers use of each
answer (``tango_worlds.ask``: ok and the kind of reason, whole reasons where they are the
operator's words, exported/State/Status, changed, the exception raised) must be equal — and
equal to what the scenario expects, so two wrong answers do not agree their way through.

Every TangoPort method is covered: ``database_alive`` (up, killed, hung), ``device_ready``
(running, not defined, never started, killed server, DB killed or hung),
``endpoint_reachable``, ``unexported_devices``, ``device_health`` (ON, FAULT, ALARM, never
started, killed, not defined; DB down), ``apply_config`` (the Update/Declarative sequence
with the DB's content, a device of another server instance, DB down), ``init_devices`` and
``remove_server``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.ports import free_port
from tango_operator.crd import ConfigMode
from tests.support.mariadb_server import MariaDBServer
from tests.support.standin_tango import PROBE_DEADLINE, StandInTango
from tests.support.tango_db import CppDatabase, PyTangoDatabase, TangoDatabase
from tests.support.tango_servers import TangoServers
from tests.support.tango_worlds import (
    UNKNOWN,
    ConfigCase,
    DatabaseState,
    Device,
    Run,
    Server,
    World,
    ask,
    realize,
    stand_in,
    take_down,
)
from workers.reconcile.ports import TangoPort
from workers.tango import PyTangoPort

JsonDict = dict[str, object]
UPDATE, DECLARATIVE = ConfigMode.UPDATE, ConfigMode.DECLARATIVE
FLAVOURS = ["pytango", pytest.param("cpp", marks=pytest.mark.slow)]
DOWN = "TangoUnavailableError", "names the host: True"

LOADED_MACHINE_MARGIN = 2.0
"""Seconds a loaded machine may add to a call the port bounds by its deadline."""


@pytest.fixture(scope="module", params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """Which DataBaseds: PyTango's (sqlite), then the C++ one (MariaDB)."""
    found: str = request.param
    return found


@pytest.fixture(scope="module")
def db(flavour: str, request: pytest.FixtureRequest) -> TangoDatabase:
    """The module's DataBaseds of that flavour (``tango_db`` / ``cpp_db`` of conftest.py)."""
    found: TangoDatabase = request.getfixturevalue("tango_db" if flavour == "pytango" else "cpp_db")
    return found


@pytest.fixture
def own_db(flavour: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TangoDatabase]:
    """A DataBaseds of the test's own, to kill or freeze."""
    if flavour == "pytango":
        with PyTangoDatabase(tmp_path / "own-db") as db:
            yield db
        return
    mariadb: MariaDBServer = request.getfixturevalue("mariadb")
    with CppDatabase(mariadb, tmp_path / "own-cpp-db") as cpp:
        yield cpp


class Both:
    """One world on real TANGO (through PyTangoPort) and on the stand-in."""

    def __init__(self, world: World, tango_host: str, real: PyTangoPort) -> None:
        self.world = world
        self.tango_host = tango_host
        self.real = real
        self.standin: StandInTango = stand_in(world, tango_host)
        self.seconds = 0.0

    def same(self, method: str, *args: object, **kwargs: object) -> Any:
        """Ask both; assert their answers are equal; the answer (and the real call's time)."""
        real = ask(self.real, method, *args, **kwargs)
        standin = ask(self.standin, method, *args, **kwargs)
        assert real.answer == standin.answer, (
            f"{method}{args}: PyTangoPort answered {real.answer!r}, the stand-in {standin.answer!r}"
        )
        self.seconds = real.seconds
        return real.answer

    def expect(self, expected: object, method: str, *args: object, **kwargs: object) -> None:
        """Ask both; both must answer ``expected``."""
        assert self.same(method, *args, **kwargs) == expected, f"{method}{args}"


# --- one world, DB up: servers running, never started, killed; names not defined ------------
class Live:
    """The module's shared world and its names."""

    def __init__(self, token: str) -> None:
        self.on, self.fault, self.alarm = (
            f"contract/{token}/{n}" for n in ("on", "fault", "alarm")
        )
        self.off, self.dead = f"contract/{token}/off", f"contract/{token}/dead"
        self.none = f"contract/{token}/none"
        self.running = Server(
            f"{token}-run",
            (Device(self.on), Device(self.fault, "FAULT", "no power"), Device(self.alarm, "ALARM")),
        )
        self.never = Server(f"{token}-off", (Device(self.off),), Run.NEVER)
        self.killed = Server(f"{token}-dead", (Device(self.dead),), Run.KILLED)
        self.closed = f"127.0.0.1:{free_port()}"
        self.world = World(
            servers=(self.running, self.never, self.killed),
            undefined=(self.none,),
            closed_endpoints=(self.closed,),
        )


@pytest.fixture(scope="module")
def live(db: TangoDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    world = Live(f"c{os.getpid()}x{db.port}")
    servers = TangoServers(db, tmp_path_factory.mktemp("contract-servers"))
    try:
        realize(world.world, servers)
        yield world
    finally:
        servers.stop_all()


@pytest.fixture
def both(live: Live, db: TangoDatabase, port: PyTangoPort) -> Both:
    return Both(live.world, db.tango_host, port)


def test_database_alive_when_the_db_answers(both: Both) -> None:
    both.expect((True, "", ""), "database_alive", both.tango_host)


@pytest.mark.parametrize(
    ("role", "expected_kind"),
    [
        ("on", ""),
        ("none", "not defined"),
        ("off", "not exported"),
        ("dead", "no answer"),
    ],
)
def test_device_ready(both: Both, live: Live, role: str, expected_kind: str) -> None:
    """Running; not defined; defined but never started; started, then killed (still exported)."""
    device = getattr(live, role)
    ok, kind, _ = both.same("device_ready", both.tango_host, device)
    assert (ok, kind) == (expected_kind == "", expected_kind)


def test_reasons_the_cr_status_shows_word_for_word(both: Both, live: Live) -> None:
    host = both.tango_host
    both.expect(
        (False, "not defined", f"{live.none} is not defined in the TANGO DB at {host}"),
        "device_ready",
        host,
        live.none,
    )
    server = live.never.server_instance
    both.expect(
        (False, "not exported", f"{live.off} is not exported (server {server} not running)"),
        "device_ready",
        host,
        live.off,
    )


def test_endpoint_reachable_listening_and_refused(both: Both, live: Live) -> None:
    listening_host, _, listening_port = both.tango_host.rpartition(":")
    both.expect((True, "", ""), "endpoint_reachable", listening_host, int(listening_port))
    host, _, closed = live.closed.rpartition(":")
    refused = f"TCP connect to {live.closed} failed: Connection refused"
    both.expect((False, "refused", refused), "endpoint_reachable", host, int(closed))


def test_unexported_devices_of_a_mixed_list(both: Both, live: Live) -> None:
    """Not defined and never started are listed; a killed server's devices still look exported."""
    devices = (live.on, live.none, live.off, live.dead, live.fault)
    both.expect([live.none, live.off], "unexported_devices", both.tango_host, devices)


def test_device_health_states_statuses_and_unread_devices(both: Both, live: Live) -> None:
    devices = (live.on, live.fault, live.alarm, live.off, live.dead, live.none)
    both.expect(
        [
            (live.on, True, "ON", "ON: hello"),
            (live.fault, True, "FAULT", "FAULT: no power"),
            (live.alarm, True, "ALARM", "ALARM: hello"),
            (live.off, False, UNKNOWN, "not exported"),
            (live.dead, True, UNKNOWN, "no answer"),
            (live.none, False, UNKNOWN, "not defined"),
        ],
        "device_health",
        both.tango_host,
        live.running.server_instance,
        devices,
    )


def test_init_devices(both: Both, live: Live) -> None:
    """Every device of a running server takes Init; each other device is named with why not."""
    host = both.tango_host
    running = live.running
    both.expect([], "init_devices", host, running.server_instance, running.names)
    both.expect(
        [(live.off, "failed")], "init_devices", host, live.never.server_instance, (live.off,)
    )
    both.expect(
        [(live.dead, "failed")], "init_devices", host, live.killed.server_instance, (live.dead,)
    )
    both.expect([(live.none, "not defined")], "init_devices", host, "EchoServer/x", (live.none,))


# --- apply_config and remove_server (their own server instances) -------------------------------
def test_apply_config_in_both_modes_answers_and_writes_as_real_tango(
    db: TangoDatabase, port: PyTangoPort, unique: str
) -> None:
    """One sequence of applies and run-time writes: the same changed answers, the same DB.

    First apply, identical re-apply, a changed document, a mode switch; the DB is read back
    through PyTango's Database API and compared with what the stand-in holds.
    """
    case = ConfigCase(db, unique)
    both = Both(World(), db.tango_host, port)
    standin = both.standin
    steps: list[tuple[JsonDict | None, ConfigMode | None, bool]] = [
        (case.first, UPDATE, True),
        (case.first, UPDATE, False),
        (None, None, False),  # Jive and a memorized value write
        (case.first, UPDATE, False),
        (case.second, UPDATE, True),
        (case.second, UPDATE, False),
        (case.second, DECLARATIVE, True),
        (case.second, DECLARATIVE, False),
        (case.second, UPDATE, False),
        (case.first, DECLARATIVE, True),
        (case.first, UPDATE, False),
    ]
    for index, (document, mode, changed) in enumerate(steps):
        if document is None or mode is None:
            case.written_at_run_time()
            standin.put_device_property(case.device, {"set_in_jive": ["42"]})
            standin.put_device_attribute_property(
                case.device, {"level": {"__value": ["3.5"], "jive_note": ["tuned"]}}
            )
            continue  # the class property: the stand-in keeps none written at run time
        both.expect(
            ("changed", changed), "apply_config", db.tango_host, case.target, document, mode=mode
        )
        held = standin.servers[case.target]
        assert set(held) == case.devices(), f"step {index}"
        assert held[case.device]["properties"] == case.properties(), f"step {index}"
        assert held[case.device]["attribute_properties"] == case.attribute_properties(), index


def test_a_device_of_another_server_instance_is_a_conflict(
    both: Both, live: Live, db: TangoDatabase, unique: str
) -> None:
    claimed: JsonDict = {"servers": {"EchoServer": {unique: {"Echo": {live.on: {}}}}}}
    owner, claimant = live.running.server_instance, f"EchoServer/{unique}"
    message = (
        f"device {live.on} is registered to server {owner}, not to {claimant} "
        "(remove it there first)"
    )
    before = db.snapshot()
    for mode in ConfigMode:
        both.expect(
            ("ConfigConflictError", message),
            "apply_config",
            both.tango_host,
            claimant,
            claimed,
            mode=mode,
        )
    assert db.snapshot() == before, "nothing written"
    both.expect((True, "", ""), "device_ready", both.tango_host, live.on)


def test_remove_server_then_its_devices_are_not_defined(
    db: TangoDatabase, port: PyTangoPort, unique: str
) -> None:
    host, instance, device = db.tango_host, f"EchoServer/{unique}", f"contract/{unique}/gone"
    # configured by the first apply below; its server never runs
    both = Both(World(servers=(Server(unique, (Device(device),), Run.NEVER),)), host, port)
    document = {
        "servers": {"EchoServer": {unique: {"Echo": {device: {"properties": {"a": ["1"]}}}}}}
    }
    both.expect(("changed", True), "apply_config", host, instance, document, mode=UPDATE)
    both.expect(
        (False, "not exported", f"{device} is not exported (server {instance} not running)"),
        "device_ready",
        host,
        device,
    )
    both.expect(("removed", None), "remove_server", host, instance)
    not_defined = f"{device} is not defined in the TANGO DB at {host}"
    both.expect((False, "not defined", not_defined), "device_ready", host, device)
    both.expect([device], "unexported_devices", host, (device,))
    both.expect(("removed", None), "remove_server", host, instance)  # idempotent
    both.expect(("removed", None), "remove_server", host, f"EchoServer/{unique}-never")
    both.expect(("changed", True), "apply_config", host, instance, document, mode=UPDATE)


# --- the DB down: killed (refusing), hung (SIGSTOP) -------------------------------------------
def _down_world(token: str, database: DatabaseState) -> World:
    return World(
        servers=(Server(f"{token}-run", (Device(f"contract/{token}/run"),)),),
        database=database,
    )


def test_a_killed_db(own_db: TangoDatabase, port: PyTangoPort, unique: str, tmp_path: Path) -> None:
    """A worker that talked to the DB (its proxies made) finds it killed: every call says so.

    ``init_devices`` makes no DB check of its own: each device's Init fails, named.
    """
    world = _down_world(unique, DatabaseState.REFUSING)
    servers = TangoServers(own_db, tmp_path / "servers")
    try:
        realize(world, servers)
        _warm(port, own_db.tango_host, world)
        take_down(world, own_db)
        both = Both(world, own_db.tango_host, port)
        host = own_db.tango_host
        (server,) = world.servers
        (device,) = server.names
        refused = f"TCP connect to {host} failed: Connection refused"
        both.expect((False, "refused", refused), "database_alive", host)
        _quick(both)
        both.expect((False, "TANGO DB does not answer", ""), "device_ready", host, device)
        _quick(both)
        both.expect(DOWN, "unexported_devices", host, server.names)
        _quick(both)
        both.expect(DOWN, "device_health", host, server.server_instance, server.names)
        _quick(both)
        document: JsonDict = {"servers": {"EchoServer": {unique: {"Echo": {device: {}}}}}}
        both.expect(DOWN, "apply_config", host, server.server_instance, document, mode=UPDATE)
        _quick(both)
        both.expect(
            [(device, "failed")], "init_devices", host, server.server_instance, server.names
        )
        both.expect(DOWN, "remove_server", host, server.server_instance)
        _quick(both)
    finally:
        for running in servers.running:
            running.kill()  # no DB to unexport from


def test_a_hung_db(own_db: TangoDatabase, port: PyTangoPort, unique: str) -> None:
    """A DB that accepts connections and never answers: not ok within the port's deadline."""
    world = World(database=DatabaseState.HUNG)
    host = own_db.tango_host
    _warm(port, host, world)
    take_down(world, own_db)
    try:
        both = Both(world, host, port)
        device = f"contract/{unique}/any"
        both.expect((False, "no answer", ""), "database_alive", host)
        assert both.seconds < PROBE_DEADLINE + LOADED_MACHINE_MARGIN
        both.expect((False, "TANGO DB does not answer", ""), "device_ready", host, device)
        _quick(both)
        both.expect(DOWN, "unexported_devices", host, (device,))
        _quick(both)
        both.expect(DOWN, "device_health", host, "EchoServer/x", (device,))
        _quick(both)
    finally:
        own_db.thaw()


def _warm(port: TangoPort, tango_host: str, world: World) -> None:
    """What a worker's port has done before the DB went down (its proxies made)."""
    assert port.database_alive(tango_host).ok
    for server in world.servers:
        for device in server.names:
            assert port.device_ready(tango_host, device).ok


def _quick(both: Both) -> None:
    """The real call returned within the port's deadline (a DB down never makes a worker wait)."""
    assert both.seconds < PROBE_DEADLINE + LOADED_MACHINE_MARGIN, f"took {both.seconds:.1f} s"
