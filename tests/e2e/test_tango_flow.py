"""The operator and TANGO together, end to end.

Real DataBaseds, real device servers started by the local kubelet, real watcher and workers, the
PyTango side of the operator.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import tango
import yaml
from kubernetes import client

from devstack.runner import plan
from devstack.stack import cluster_tango_host
from tango_operator import crd
from tests.e2e.conftest import (
    DATABASEDS,
    E2E,
    SKA_DATABASEDS,
    SKA_NAMESPACE,
    database_ds,
    device_server,
)
from tests.support.probe_server import SERVER_SCRIPT

JsonDict = dict[str, Any]
CRS = Path(__file__).resolve().parents[1] / "data" / "crs"


def _exported(database: tango.Database, device: str) -> bool:
    try:
        return bool(database.get_device_info(device).exported)
    except tango.DevFailed:
        return False


def _replicas(e2e: E2E, namespace: str, name: str) -> int:
    try:
        found = client.AppsV1Api(e2e.api_client).read_namespaced_stateful_set(name, namespace)
    except client.ApiException:
        return 0
    return int(found.spec.replicas or 0)


@pytest.mark.slow
def test_a_chain_created_together_starts_in_dependency_order(e2e: E2E) -> None:
    namespace = "chain"
    e2e.create(namespace, database_ds())
    e2e.create(namespace, device_server("a", {"lab/a/1": {}}))
    e2e.create(namespace, device_server("b", {"lab/b/1": {}}, depends_on=["lab/a/1"]))
    e2e.create(namespace, device_server("c", {"lab/c/1": {}}, depends_on=["lab/b/1"]))
    database = e2e.tango_db(namespace)

    seen_waiting: dict[str, list[str]] = {}
    started_before_provider: list[str] = []

    def watch_the_order() -> bool:
        for name, provider in (("b", "lab/a/1"), ("c", "lab/b/1")):
            status = e2e.status(namespace, name)
            if status.get("state") == "Waiting" and status.get("waitingFor") == [provider]:
                seen_waiting[name] = status["waitingFor"]
            if _replicas(e2e, namespace, name) > 0 and not _exported(database, provider):
                started_before_provider.append(name)
        return all(e2e.state(namespace, n) == "Running" for n in ("a", "b", "c"))

    e2e.wait(watch_the_order, timeout=120, what="the chain a ← b ← c Running")
    assert seen_waiting == {"b": ["lab/a/1"], "c": ["lab/b/1"]}, "each waited, naming its need"
    assert started_before_provider == [], "no server started before its dependency was up"
    for device in ("lab/a/1", "lab/b/1", "lab/c/1"):
        assert _exported(database, device)
    status = e2e.status(namespace, "c")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "DependenciesReady": "True",
        "ConfigApplied": "True",
        "ContainerHealthy": "True",
        "DevicesHealthy": "True",
    }
    assert "waitingFor" not in status


def test_a_lost_tango_db_is_reported_and_recovered_without_intervention(e2e: E2E) -> None:
    namespace = "outage"
    e2e.create(namespace, database_ds())
    e2e.create(namespace, device_server("x", {"lab/x/1": {}}))
    e2e.wait_states(namespace, {"x": "Running"})

    e2e.stack.kubelet.suspend(namespace, f"{DATABASEDS}-0")  # type: ignore[union-attr]
    e2e.wait_states(namespace, {"x": "Waiting"}, timeout=60)
    status = e2e.status(namespace, "x")
    assert DATABASEDS in status["message"], status["message"]
    assert status["waitingFor"] == [f"{DATABASEDS}.{namespace}.svc.cluster.local:10000"]
    assert _replicas(e2e, namespace, "x") == 1, "a running server is not stopped"

    e2e.stack.kubelet.resume(namespace, f"{DATABASEDS}-0")  # type: ignore[union-attr]
    e2e.wait_states(namespace, {"x": "Running"}, timeout=90)


def test_deleting_the_databaseds_moves_its_servers_to_waiting_at_once(e2e: E2E) -> None:
    """Woken by the deletion itself, well before the stack's 60 s resync; warned both sides."""
    namespace = "deletion"
    e2e.create(namespace, database_ds())
    e2e.create(namespace, device_server("y", {"lab/y/1": {}}))
    e2e.wait_states(namespace, {"y": "Running"})

    e2e.custom.delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "databaseds", DATABASEDS
    )
    e2e.wait_states(namespace, {"y": "Waiting"}, timeout=20)
    message = e2e.status(namespace, "y")["message"]
    assert f"DatabaseDS {DATABASEDS}" in message, message

    # Events are posted by the worker's Event thread, after the status patch
    e2e.wait(
        lambda: (
            {(DATABASEDS, "DeletedWhileInUse"), ("y", "DatabaseDSDeleted")}
            <= e2e.warnings(namespace)
        ),
        timeout=30,
        what="the DeletedWhileInUse and DatabaseDSDeleted Warnings",
    )


CRASHING_SCRIPT = """\
print("probe: reading its calibration", flush=True)
raise RuntimeError("calibration file /etc/probe.cal missing")
"""


def test_a_crashing_server_and_a_missing_executable_say_why_in_their_status(e2e: E2E) -> None:
    """The container's exit code, restarts and last output reach the CR and a Warning Event."""
    namespace = "crash"
    e2e.create(namespace, database_ds())
    crashing = device_server("crashes", {"lab/crash/1": {}})
    crashing["spec"]["script"] = CRASHING_SCRIPT
    missing = device_server("missing", {"lab/missing/1": {}})
    del missing["spec"]["script"]
    missing["spec"]["command"] = "/opt/nowhere/ProbeDS"
    e2e.create(namespace, crashing)
    e2e.create(namespace, missing)

    def container(name: str) -> JsonDict:
        found: JsonDict = e2e.status(namespace, name).get("container") or {}
        return found

    e2e.wait(
        lambda: container("crashes").get("reason") == "CrashLoopBackOff",
        what="the crash loop in the status",
    )
    status = e2e.status(namespace, "crashes")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["state"] == "Pending"
    assert conditions["Ready"]["reason"] == "CrashLoopBackOff"
    assert conditions["ContainerHealthy"]["status"] == "False"
    assert status["container"]["lastExitCode"] == 1
    assert status["container"]["restartCount"] >= 1
    assert "calibration file /etc/probe.cal missing" in status["container"]["lastOutput"]
    assert "exited with code 1" in status["message"], status["message"]
    assert "calibration file /etc/probe.cal missing" in status["message"]

    e2e.wait(
        lambda: container("missing").get("reason") == "CannotStart", what="the missing executable"
    )
    status = e2e.status(namespace, "missing")
    assert "executable file not found" in status["message"], status["message"]
    assert "/opt/nowhere/ProbeDS" in status["message"]

    # Events are posted by the worker's Event thread, after the status patch
    e2e.wait(
        lambda: ("crashes", "CrashLoopBackOff") in e2e.warnings(namespace),
        what="the crash loop's Warning",
    )
    e2e.wait(
        lambda: ("missing", "CannotStart") in e2e.warnings(namespace),
        what="the CannotStart Warning",
    )

    # fixed: the same server starts, and the crash leaves the status
    e2e.patch(namespace, "crashes", {"script": SERVER_SCRIPT})
    e2e.wait_states(namespace, {"crashes": "Running"})
    status = e2e.status(namespace, "crashes")
    assert "container" not in status
    assert {c["type"]: c["status"] for c in status["conditions"]}["ContainerHealthy"] == "True"

    # the missing executable is never fixed: deleted, or its pod restarts every 10 s, and the
    # operator reconciles each restart, for the rest of the session (the stack is shared)
    e2e.custom.delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers", "missing"
    )
    e2e.wait(lambda: e2e.gone(namespace, "missing"), what="'missing' deleted")


@pytest.mark.slow
def test_each_devices_tango_state_follows_the_device_in_the_cr(e2e: E2E) -> None:
    """TANGO's own view in the CR: State and Status of each device, read at a low rate."""
    namespace = "health"
    e2e.create(namespace, database_ds())
    faulty = {"properties": {"state_at_start": ["FAULT"], "label": ["no power"]}}
    e2e.create(namespace, device_server("motors", {"lab/motor/1": {}, "lab/motor/2": faulty}))
    e2e.wait_states(namespace, {"motors": "Running"})
    e2e.wait(
        lambda: e2e.status(namespace, "motors").get("deviceSummary") == "1/2 FAULT, 1 ON",
        what="the devices' states in the status",
    )
    status = e2e.status(namespace, "motors")
    health = {entry["name"]: entry for entry in status["deviceHealth"]}
    assert (health["lab/motor/2"]["state"], health["lab/motor/2"]["status"]) == (
        "FAULT",
        "FAULT: no power",
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["DevicesHealthy"]["reason"] == "DeviceFault"
    assert conditions["Ready"]["status"] == "True", "the server itself runs"

    # the device recovers and its neighbour raises an alarm, while the server runs on
    local = e2e.stack.host_map[cluster_tango_host(DATABASEDS, namespace)]
    changes = (("lab/motor/2", "ON", "power back"), ("lab/motor/1", "ALARM", "hot"))
    for device, state, text in changes:
        tango.DeviceProxy(f"tango://{local}/{device}").command_inout("SetStateTo", [state, text])
    e2e.wait(
        lambda: e2e.status(namespace, "motors").get("deviceSummary") == "1/2 ALARM, 1 ON",
        what="the new states read by the workers",
        timeout=30,
    )
    status = e2e.status(namespace, "motors")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["DevicesHealthy"]["reason"] == "DeviceAlarm"
    assert conditions["DevicesHealthy"]["message"] == "lab/motor/1 ALARM: hot"

    def warnings() -> list[str]:
        return sorted(
            event.reason
            for event in client.CoreV1Api(e2e.api_client).list_namespaced_event(namespace).items
            if event.type == "Warning"
            and (event.involved_object.kind, event.involved_object.name)
            == ("DeviceServer", "motors")
        )

    # Events are posted by a background thread of the worker, after the status patch
    e2e.wait(lambda: warnings() == ["DeviceAlarm", "DeviceFault"], what="both Warning Events")


PROPERTY_VALUES = ['say "hi"', "two\nlines", "ünïcødé ✓", "colon: and {{ braces }}"]


def test_config_changes_reach_the_tango_db_and_the_server(e2e: E2E) -> None:
    namespace = "config"
    e2e.create(namespace, database_ds())
    devices: dict[str, JsonDict] = {
        "lab/cfg/1": {
            "properties": {"label": ["first"], "values": PROPERTY_VALUES},
            "attribute_properties": {"label_value": {"description": ["what it was told"]}},
        },
        "lab/cfg/2": {"properties": {"label": ["second"]}},
    }
    classes = {"Probe": {"properties": {"site": ["lab A"]}}}
    server = device_server("cfg", devices, classes=classes)
    # the TANGO DB follows the document: what it no longer lists goes (the default, Update,
    # never removes; tests/integration/tango/test_config_modes.py has both modes)
    server["metadata"]["annotations"] = {crd.CONFIG_MODE_ANNOTATION: "Declarative"}
    e2e.create(namespace, server)
    e2e.wait_states(namespace, {"cfg": "Running"})
    database = e2e.tango_db(namespace)
    proxy = tango.DeviceProxy(
        f"tango://{database.get_db_host()}:{database.get_db_port()}/lab/cfg/1"
    )
    assert proxy.read_attribute("label_value").value == "first"
    values = database.get_device_property("lab/cfg/1", ["values"])["values"]
    assert list(values) == PROPERTY_VALUES, "quotes, newlines and unicode round-trip exactly"
    attribute = database.get_device_attribute_property("lab/cfg/1", ["label_value"])
    assert list(attribute["label_value"]["description"]) == ["what it was told"]
    assert list(database.get_class_property("Probe", ["site"])["site"]) == ["lab A"]
    first_hash = e2e.status(namespace, "cfg")["configHash"]

    # change a property, an attribute property and a class property; drop lab/cfg/2
    changed = {
        "lab/cfg/1": {
            "properties": {"label": ["changed"], "values": PROPERTY_VALUES[:2]},
            "attribute_properties": {"label_value": {"description": ["told again"]}},
        }
    }
    new_classes = {"Probe": {"properties": {"site": ["lab B"]}}}
    config = {"servers": {"Probe": {"cfg": {"Probe": changed}}}, "classes": new_classes}
    e2e.patch(namespace, "cfg", {"config": json.dumps(config)})

    def applied() -> bool:
        status = e2e.status(namespace, "cfg")
        return status.get("configHash") != first_hash and status.get("state") == "Running"

    e2e.wait(applied, timeout=90, what="the new config applied and the server Running")
    assert list(database.get_device_property("lab/cfg/1", ["label"])["label"]) == ["changed"]
    assert (
        list(database.get_device_property("lab/cfg/1", ["values"])["values"])
        == (PROPERTY_VALUES[:2])
    )
    attribute = database.get_device_attribute_property("lab/cfg/1", ["label_value"])
    assert list(attribute["label_value"]["description"]) == ["told again"]
    assert list(database.get_class_property("Probe", ["site"])["site"]) == ["lab B"]
    assert "lab/cfg/2" not in list(database.get_device_name("Probe/cfg", "Probe"))
    # the pod was rolled, so the server runs with what the DB now says
    e2e.wait(
        lambda: _label(e2e, namespace) == "changed",
        timeout=60,
        what="the restarted server serving the new property",
    )


def test_a_config_change_reaches_a_running_server_by_init_without_a_restart(e2e: E2E) -> None:
    """``config-reload: Init``: the DB is written, the devices re-read it, the pod stays."""
    namespace = "reload"
    e2e.create(namespace, database_ds())
    server = device_server("live", {"lab/live/1": {"properties": {"label": ["before"]}}})
    server["metadata"]["annotations"] = {crd.CONFIG_RELOAD_ANNOTATION: "Init"}
    e2e.create(namespace, server)
    e2e.wait_states(namespace, {"live": "Running"})
    e2e.wait(lambda: _label(e2e, namespace, "lab/live/1") == "before", what="the server's label")
    core = client.CoreV1Api(e2e.api_client)
    pod = core.read_namespaced_pod("live-0", namespace)
    template = client.AppsV1Api(e2e.api_client).read_namespaced_stateful_set("live", namespace)
    assert crd.GROUP + "/config-hash" not in (template.spec.template.metadata.annotations or {})

    config = {"servers": {"Probe": {"live": {"Probe": {"lab/live/1": {"properties": {
        "label": ["after"]}}}}}}}  # fmt: skip
    e2e.patch(namespace, "live", {"config": json.dumps(config)})
    e2e.wait(
        lambda: _label(e2e, namespace, "lab/live/1") == "after",
        timeout=60,
        what="the running device serving the new property after Init",
    )
    again = core.read_namespaced_pod("live-0", namespace)
    assert again.metadata.uid == pod.metadata.uid, "the same pod"
    assert (again.status.container_statuses[0].restart_count or 0) == 0, "not restarted"

    def reasons() -> set[str]:
        return {
            event.reason
            for event in core.list_namespaced_event(namespace).items
            if (event.involved_object.kind, event.involved_object.name) == ("DeviceServer", "live")
        }

    # posted by the worker's Event thread, which may come after the devices re-read the DB
    e2e.wait(lambda: "ConfigReloaded" in reasons(), timeout=30, what="the ConfigReloaded Event")


def _label(e2e: E2E, namespace: str, device: str = "lab/cfg/1") -> str | None:
    database = e2e.tango_db(namespace)
    try:
        proxy = tango.DeviceProxy(
            f"tango://{database.get_db_host()}:{database.get_db_port()}/{device}"
        )
        proxy.set_timeout_millis(1000)
        value: str = proxy.read_attribute("label_value").value
        return value
    except tango.DevFailed:
        return None


def test_a_device_claimed_twice_is_an_error_for_the_second_only(e2e: E2E) -> None:
    namespace = "claims"
    e2e.create(namespace, database_ds())
    e2e.create(namespace, device_server("first", {"lab/shared/1": {}}))
    e2e.wait_states(namespace, {"first": "Running"})
    e2e.create(namespace, device_server("second", {"lab/shared/1": {}}))
    e2e.wait_states(namespace, {"second": "Error"}, timeout=60)
    message = e2e.status(namespace, "second")["message"]
    assert "lab/shared/1" in message
    assert "Probe/first" in message, message
    assert "Probe/second" in message, message
    time.sleep(1)
    assert e2e.state(namespace, "first") == "Running"
    database = e2e.tango_db(namespace)
    assert database.get_device_info("lab/shared/1").ds_full_name == "Probe/first"
    assert _exported(database, "lab/shared/1")


@pytest.mark.slow
def test_deleting_a_device_server_removes_it_from_the_tango_db(e2e: E2E) -> None:
    namespace = "cleanup"
    e2e.create(namespace, database_ds())
    e2e.create(namespace, device_server("gone", {"lab/gone/1": {}}))
    e2e.wait_states(namespace, {"gone": "Running"})
    database = e2e.tango_db(namespace)
    assert "Probe/gone" in list(database.get_server_list("Probe/*"))
    e2e.custom.delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, "deviceservers", "gone"
    )

    e2e.wait(lambda: e2e.gone(namespace, "gone"), timeout=60, what="the finalizer run")
    assert "Probe/gone" not in list(database.get_server_list("Probe/*"))


@pytest.mark.skipif(
    not os.path.exists(plan.DEBIAN_TANGO_TEST),
    reason="Debian's TangoTest is not installed: apt-get install tango-test",
)
@pytest.mark.slow
def test_the_ska_tangotest_example_runs_unchanged_with_the_cpp_tangotest(e2e: E2E) -> None:
    """The DatabaseDS and the TangoTest DeviceServer exactly as the SKA charts render them.

    The TangoTest (`command: /usr/local/bin/TangoTest`) is run by Debian's C++ TangoTest.
    """
    for sample in ("ska-databaseds.yaml", "ska-tangotest.yaml"):
        e2e.create(SKA_NAMESPACE, yaml.safe_load((CRS / sample).read_text()))
    e2e.wait_states(SKA_NAMESPACE, {"tangotest-test": "Running"}, timeout=120)
    database = e2e.tango_db(SKA_NAMESPACE, SKA_DATABASEDS)
    assert _exported(database, "sys/tg_test/1")
    host = f"{database.get_db_host()}:{database.get_db_port()}"
    proxy = tango.DeviceProxy(f"tango://{host}/sys/tg_test/1")
    assert proxy.read_attribute("double_scalar").value is not None
    assert proxy.command_inout("DevString", "echo") == "echo"
