"""The two configuration modes on both DataBaseds: what each keeps, removes and writes.

``Update`` (the default, as the SKA charts' ``json2tango -w -a -u``) adds and changes and never
removes; ``Declarative`` also removes what the document no longer lists. A property written at
run time (``Database.put_device_property``, as Jive writes it) and a memorized attribute value
(``__value``, written by a real Echo server when its memorized ``level`` is written) are the
cases that matter. Every test runs on PyTango's DataBaseds (sqlite) and on the C++ DataBaseds
(MariaDB). Read back through PyTango's Database API, never through the code under test. The
stand-in's answers to the same sequence of applies are compared in ``test_port_contract.py``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
import tango
from dsconfig.json2tango import apply_config as json2tango_apply
from dsconfig.json2tango import prepare_config
from kubernetes import client

from tango_operator import crd
from tango_operator.crd import ConfigMode
from tests.support.crs import device_server
from tests.support.operator import Operator, ds_key
from tests.support.tango_db import TangoDatabase
from tests.support.tango_servers import TangoServers
from tests.support.tango_worlds import ConfigCase as Case
from workers.reconcile.ports import ConfigResult, Outcome
from workers.settings import Settings
from workers.tango import PyTangoPort
from workers.tango import config as tango_config

JsonDict = dict[str, Any]
UPDATE, DECLARATIVE = ConfigMode.UPDATE, ConfigMode.DECLARATIVE
IN_CLUSTER = "tango-databaseds.default.svc.cluster.local:10000"


@pytest.fixture(params=["pytango", pytest.param("cpp", marks=pytest.mark.slow)])
def db(request: pytest.FixtureRequest) -> TangoDatabase:
    """PyTango's DataBaseds, then the C++ one (``tango_db`` / ``cpp_db`` of conftest.py)."""
    found: TangoDatabase = request.getfixturevalue(
        "tango_db" if request.param == "pytango" else "cpp_db"
    )
    return found


@pytest.fixture
def case(db: TangoDatabase, unique: str) -> Case:
    return Case(db, unique)


def test_update_keeps_what_the_document_does_not_list_and_changes_what_it_does(
    case: Case, port: PyTangoPort
) -> None:
    assert port.apply_config(case.db.tango_host, case.target, case.first, mode=UPDATE).changed
    case.written_at_run_time()
    assert port.apply_config(case.db.tango_host, case.target, case.second, mode=UPDATE).changed
    assert case.properties() == {
        "greeting": ["hi"],  # no longer listed: kept
        "speed": ["2"],  # changed
        "obsolete": ["x"],  # [] removes nothing in Update (json2tango -u)
        "set_in_jive": ["42"],  # written at run time: kept
    }
    assert case.attribute_properties() == {
        "level": {"unit": ["m"], "note": ["first"], "__value": ["3.5"], "jive_note": ["tuned"]}
    }
    assert case.class_properties() == {"shared": ["b"], "class_in_jive": ["c"]}
    assert case.devices() == {case.device, case.other}, "a device no longer listed stays"
    before = case.db.snapshot()
    assert not port.apply_config(case.db.tango_host, case.target, case.second, mode=UPDATE).changed
    assert case.db.snapshot() == before


def test_declarative_removes_what_the_document_does_not_list_but_memorized_values(
    case: Case, port: PyTangoPort
) -> None:
    assert port.apply_config(case.db.tango_host, case.target, case.first, mode=UPDATE).changed
    case.written_at_run_time()
    second = port.apply_config(case.db.tango_host, case.target, case.second, mode=DECLARATIVE)
    assert second.changed
    assert case.properties() == {"speed": ["2"]}
    assert case.attribute_properties() == {"level": {"unit": ["m"], "__value": ["3.5"]}}
    assert case.class_properties() == {"shared": ["b"]}
    assert case.devices() == {case.device}
    before = case.db.snapshot()
    again = port.apply_config(case.db.tango_host, case.target, case.second, mode=DECLARATIVE)
    assert not again.changed
    assert case.db.snapshot() == before


def _comparable(calls: list[Any]) -> list[str]:
    """DB calls as sorted text; json2tango's NULL-alias quirk (docs/tango.md) left out.

    What a delete names is a set: its order is the DB's.
    """
    found = []
    for method, args, _ in calls:
        if method == "delete_device_alias" and args == ("",):
            continue
        plain = args
        if method == "add_device":
            plain = ((args[0].name, args[0]._class, args[0].server),)
        elif method.startswith("delete_") and len(args) == 2:
            plain = (args[0], {key: sorted(names) for key, names in args[1].items()})
        found.append(json.dumps([method, plain], sort_keys=True))
    return sorted(found)


@pytest.mark.parametrize("mode", list(ConfigMode))
def test_each_mode_plans_the_calls_json2tango_plans(
    case: Case, port: PyTangoPort, mode: ConfigMode
) -> None:
    """Update is ``json2tango -a -u``, Declarative ``json2tango -a``, call for call."""
    port.apply_config(case.db.tango_host, case.target, case.first, mode=UPDATE)
    case.written_at_run_time()
    database = case.db.database()
    ours = tango_config.plan(database, case.target, case.second, mode=mode, timeout=5.0)
    _, _, theirs, *_ = json2tango_apply(
        prepare_config(copy.deepcopy(case.second)),
        database,
        update=mode == UPDATE,
        nostrictcheck=True,
    )
    assert _comparable(ours) == _comparable(theirs)
    assert ours, "the second document changes something in either mode"


class RecordingPort(PyTangoPort):
    """PyTangoPort that records each ``apply_config``: (mode, whether it wrote)."""

    def __init__(self) -> None:
        super().__init__()
        self.applies: list[tuple[ConfigMode, bool]] = []

    def apply_config(
        self, tango_host: str, server_instance: str, document: JsonDict, *, mode: ConfigMode
    ) -> ConfigResult:
        result = super().apply_config(tango_host, server_instance, document, mode=mode)
        self.applies.append((mode, result.changed))
        return result


def _until(operator: Operator, state: str, timeout: float = 20.0) -> Outcome:
    deadline = time.monotonic() + timeout
    while (outcome := operator.reconcile(ds_key("modes"))).state != state:
        assert time.monotonic() < deadline, outcome
        time.sleep(0.1)
    return outcome


def test_a_mode_switch_on_an_unchanged_document_applies_once(
    kube_client: client.ApiClient, db: TangoDatabase, unique: str, tmp_path: Path
) -> None:
    """A Running server, memorized value and all: each switch is one apply, then none."""
    port = RecordingPort()
    operator = Operator(
        kube_client, tango=cast(Any, port), settings=Settings(host_map={IN_CLUSTER: db.tango_host})
    )
    device = f"modes/{unique}/echo"
    body = {"properties": {}, "attribute_properties": {"level": {"unit": ["mm"]}}}
    config = {"servers": {"EchoServer": {unique: {"Echo": {device: body}}}}}
    custom = client.CustomObjectsApi(kube_client)
    resource = device_server(
        "modes",
        dsname="EchoServer",
        args=unique,
        databaseds="tango-databaseds",
        config=json.dumps(config),
    )
    custom.create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", resource
    )
    servers = TangoServers(db, tmp_path / "servers")
    try:
        _until(operator, "Pending")  # configured in TANGO: the server's "pod" can start
        servers.start_echo(unique)
        _until(operator, "Running")
        proxy = tango.DeviceProxy(f"tango://{db.tango_host}/{device}")
        proxy.write_attribute("level", 3.5)  # memorized: the server writes __value
        database = db.database()
        database.put_device_property(device, {"set_in_jive": ["42"]})
        assert {mode for mode, _ in port.applies} == {UPDATE}

        def switch(mode: ConfigMode) -> list[tuple[ConfigMode, bool]]:
            annotations = {crd.CONFIG_MODE_ANNOTATION: str(mode)}
            custom.patch_namespaced_custom_object(
                crd.GROUP,
                crd.VERSION,
                "default",
                "deviceservers",
                "modes",
                {"metadata": {"annotations": annotations}},
            )
            del port.applies[:]
            for _ in range(3):
                assert operator.reconcile(ds_key("modes")).state == "Running"
            return list(port.applies)

        del port.applies[:]
        assert operator.reconcile(ds_key("modes")).state == "Running"
        assert port.applies == [], "unchanged document and mode: no apply"
        assert switch(DECLARATIVE) == [(DECLARATIVE, True)]
        level = database.get_device_attribute_property(device, ["level"])["level"]
        assert list(level["__value"]) == ["3.5"]
        assert "set_in_jive" not in list(database.get_device_property_list(device, "*"))
        before = db.snapshot()
        assert switch(DECLARATIVE) == [], "the same annotation again: nothing"
        assert switch(UPDATE) == [(UPDATE, False)], "applied once, nothing to write"
        assert db.snapshot() == before
        status = custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", "modes"
        )["status"]
        assert status["configHash"].endswith("-Update")
        servers.stop_all()  # the memorized value is the server's again at its next start
        servers.start_echo(unique)
        assert proxy.read_attribute("level").value == 3.5
    finally:
        servers.stop_all()
