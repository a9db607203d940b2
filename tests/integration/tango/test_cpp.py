"""The slower tier: Debian's C++ DataBaseds on MariaDB and the C++ TangoTest server.

MariaDB is the session's own (fixture ``mariadb`` in conftest.py: ``mariadbd`` on a temporary
data directory and a free loopback port); each module run gets a database of its own in it
(``tango_test_<random>``, the tango-db package's schema: fixture ``cpp_db``), and so does the
test that stops its DataBaseds. Where ``mariadb-server``, ``tango-db`` or ``tango-test`` are
missing the tests skip with the reason, and fail under ``CI=true`` (``make test`` installs the
packages when it runs as root with apt; see scripts/system-deps.sh).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dsconfig.json2tango import apply_config as json2tango_apply
from dsconfig.json2tango import prepare_config

from tango_operator import crd, tango_names
from tango_operator.crd import ConfigMode
from tests.support.mariadb_server import MariaDBServer
from tests.support.tango_db import CppDatabase
from tests.support.tango_servers import TANGO_TEST, TangoServers
from workers.reconcile.ports import ConfigConflictError
from workers.tango import PyTangoPort

pytestmark = pytest.mark.slow
JsonDict = dict[str, Any]

AWKWARD = {
    "quotes": ['he said "hi"', "it's"],
    "newlines": ["one\ntwo"],
    "unicode": ["héllo", "€ → 日本"],
    "many": [str(i) for i in range(12)],
}


@pytest.fixture
def cpp_servers(cpp_db: CppDatabase, tmp_path: Path) -> Iterator[TangoServers]:
    running = TangoServers(cpp_db, tmp_path / "servers")
    yield running
    running.stop_all()


def tangotest_document(instance: str, device: str, **properties: list[str]) -> JsonDict:
    return {
        "servers": {"TangoTest": {instance: {"TangoTest": {device: {"properties": properties}}}}},
        "classes": {"TangoTest": {"properties": {"cpp_tier": ["yes"]}}},
    }


def test_apply_is_idempotent_and_tangotest_becomes_ready(
    cpp_db: CppDatabase, cpp_servers: TangoServers, port: PyTangoPort, unique: str
) -> None:
    device = f"test/tg/{unique}"
    target = f"TangoTest/{unique}"
    doc = tangotest_document(unique, device, **AWKWARD)
    assert port.apply_config(cpp_db.tango_host, target, doc, mode=ConfigMode.UPDATE).changed
    before = cpp_db.snapshot()
    assert not port.apply_config(cpp_db.tango_host, target, doc, mode=ConfigMode.UPDATE).changed
    assert cpp_db.snapshot() == before
    database = cpp_db.database()
    for name, values in AWKWARD.items():
        assert list(database.get_device_property(device, [name])[name]) == values, name

    assert port.database_alive(cpp_db.tango_host).ok
    assert "not exported" in port.device_ready(cpp_db.tango_host, device).reason
    cpp_servers.start([str(TANGO_TEST), unique], target, [device], wait=False)
    deadline = time.monotonic() + 30
    while not (probe := port.device_ready(cpp_db.tango_host, device)).ok:
        assert time.monotonic() < deadline, probe.reason
        time.sleep(0.2)
    assert port.unexported_devices(cpp_db.tango_host, (device,)) == []

    cpp_servers.running[0].kill()
    assert not port.device_ready(cpp_db.tango_host, device).ok
    port.remove_server(cpp_db.tango_host, target)
    assert list(cpp_db.database().get_device_class_list(target)) == []
    port.remove_server(cpp_db.tango_host, target)


def test_claims_are_checked_on_the_cpp_db_too(
    cpp_db: CppDatabase, port: PyTangoPort, unique: str
) -> None:
    device = f"test/claimed/{unique}"
    port.apply_config(
        cpp_db.tango_host,
        f"TangoTest/{unique}-a",
        tangotest_document(f"{unique}-a", device),
        mode=ConfigMode.UPDATE,
    )
    before = cpp_db.snapshot()
    with pytest.raises(ConfigConflictError, match=f"TangoTest/{unique}-a"):
        port.apply_config(
            cpp_db.tango_host,
            f"TangoTest/{unique}-b",
            tangotest_document(f"{unique}-b", device),
            mode=ConfigMode.UPDATE,
        )
    assert cpp_db.snapshot() == before


def test_device_added_to_a_running_config_is_idempotent_here_where_json2tango_is_not(
    cpp_db: CppDatabase, port: PyTangoPort, unique: str
) -> None:
    """The alias quirk is not sqlite's.

    The C++ DB returns device rows in insertion order and adds a server's dserver row after its
    first device, so json2tango is idempotent at first -- until a device is added to an
    existing server instance: that device is then the last row, and json2tango rewrites the DB on
    every apply. Declarative, as json2tango without ``-u``: the class properties a TangoTest
    server wrote at its start (an earlier test) are gone, as json2tango would have them.
    """
    target = f"TangoTest/{unique}"
    one = tangotest_document(unique, f"test/grow/{unique}-1")
    two = copy.deepcopy(one)
    two["servers"]["TangoTest"][unique]["TangoTest"][f"test/grow/{unique}-2"] = {}
    assert port.apply_config(cpp_db.tango_host, target, one, mode=ConfigMode.DECLARATIVE).changed
    assert port.apply_config(cpp_db.tango_host, target, two, mode=ConfigMode.DECLARATIVE).changed
    before = cpp_db.snapshot()
    assert not port.apply_config(
        cpp_db.tango_host, target, two, mode=ConfigMode.DECLARATIVE
    ).changed
    assert cpp_db.snapshot() == before
    _, _, calls, *_ = json2tango_apply(prepare_config(copy.deepcopy(two)), cpp_db.database())
    assert [(method, args) for method, args, _ in calls] == [("delete_device_alias", ("",))]


def test_database_alive_false_when_the_cpp_db_stops(
    mariadb: MariaDBServer, tmp_path: Path, port: PyTangoPort
) -> None:
    with CppDatabase(mariadb, tmp_path / "own-cpp") as db:
        assert port.database_alive(db.tango_host).ok
        db.stop()
        started = time.monotonic()
        probe = port.database_alive(db.tango_host)
        assert time.monotonic() - started < port.timeout + 0.5 + 2.0  # deadline + load slack
        assert not probe.ok


def test_the_longest_names_round_trip_on_the_cpp_db(cpp_db: CppDatabase, unique: str) -> None:
    """85-character dsname, args and device parts, 255-character names: MariaDB keeps them."""
    part = tango_names.PART_MAX
    long_name = "p" * (tango_names.NAME_MAX - len(unique)) + unique
    dsname = ("S" * part)[: part - len(unique)] + unique
    instance = "i" * part
    device = f"{'d' * (part - len(unique))}{unique}/{'f' * part}/{'m' * 83}"
    config = {
        "servers": {
            dsname: {
                instance: {
                    "LongClass": {
                        device: {
                            "alias": long_name,
                            "properties": {long_name: ["v" * 1000, "ü € 日本"]},
                            "attribute_properties": {long_name: {long_name: ["x"]}},
                        }
                    }
                }
            }
        }
    }
    resource = {
        "metadata": {"name": "long", "namespace": "default"},
        "spec": {
            "dsname": dsname,
            "args": instance,
            "command": "/bin/true",
            "databaseds": "db",
            "image": "x",
            "config": json.dumps(config),
        },
    }
    spec = crd.parse_device_server(resource)
    assert spec.config is not None
    cpp = PyTangoPort(cache_ttl=0)
    assert cpp.apply_config(
        cpp_db.tango_host, spec.server_instance, spec.config.document, mode=ConfigMode.UPDATE
    ).changed
    database = cpp_db.database()
    assert [d.lower() for d in database.get_device_name(spec.server_instance, "LongClass")] == [
        device.lower()
    ]
    assert list(database.get_server_list(f"{dsname}/*")) == [spec.server_instance]
    properties = database.get_device_property(device, [long_name])[long_name]
    assert list(properties) == ["v" * 1000, "ü € 日本"]
    before = cpp_db.snapshot()
    second = cpp.apply_config(
        cpp_db.tango_host, spec.server_instance, spec.config.document, mode=ConfigMode.UPDATE
    )
    assert not second.changed
    assert cpp_db.snapshot() == before
    cpp.remove_server(cpp_db.tango_host, spec.server_instance)
