"""TANGO's view of a Running DeviceServer in its CR: each device's State, a summary, a condition.

The reconcilers run in-process against kubeemu (``tests.support.operator.Operator``) with the
TANGO stand-in, whose ``device_states`` play what each device answers; the same read through
real PyTango servers is in ``tests/integration/tango/test_reconcile_real.py``. Checked: the
status fields, the ``DevicesHealthy`` condition and its Events, the printer column, no patch
while nothing changes, the low read rate, and the fields gone when the server stops running.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from kubernetes import client

from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.conftest import Cli
from tests.support.operator import Operator, ds_key
from workers.reconcile import by_kind
from workers.reconcile.ports import InMemoryDatabaseStates

JsonDict = dict[str, Any]
DEVICES = ("lab/motor/1", "lab/motor/2", "lab/motor/3")


def _create_server(kube_client: client.ApiClient, name: str = "motors") -> None:
    config: JsonDict = {"servers": {"Motor": {name: {"Motor": {d: {} for d in DEVICES}}}}}
    body = {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "dsname": "Motor",
            "args": name,
            "command": "/usr/local/bin/Motor",
            "databaseds": "tango-databaseds",
            "image": "registry.example/motor:1.0",
            "config": json.dumps(config),
        },
    }
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", body
    )


def _status(kube_client: client.ApiClient, name: str = "motors") -> JsonDict:
    found: JsonDict = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", name
    )
    return dict(found.get("status") or {})


def _condition(status: JsonDict) -> JsonDict:
    return next(c for c in status["conditions"] if c["type"] == "DevicesHealthy")


def _events(kube_client: client.ApiClient, name: str = "motors") -> list[tuple[str, str, str]]:
    events = client.CoreV1Api(kube_client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    )
    return [(e.type, e.reason, e.message) for e in events.items]


def test_a_running_server_shows_each_devices_state_and_a_summary(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient, kubectl: Cli
) -> None:
    _create_server(kube_client)
    outcome = operator.settle(ds_key("motors"))[ds_key("motors")]
    assert outcome.state == "Running"
    interval = operator.settings.device_health_seconds
    assert outcome.requeue_after is not None, "read again at the health rate"
    assert 0.9 * interval <= outcome.requeue_after <= 1.1 * interval

    status = _status(kube_client)
    assert status["deviceSummary"] == "3/3 ON"
    assert status["deviceHealth"] == [
        {"name": d, "exported": True, "state": "ON", "status": "The device is in ON state."}
        for d in DEVICES
    ]
    healthy = _condition(status)
    assert (healthy["status"], healthy["reason"], healthy["message"]) == (
        "True",
        "Healthy",
        "3/3 ON",
    )
    row = kubectl.run("get", "deviceservers", "motors", "--no-headers").stdout.split()
    assert row[:6] == ["motors", "Running", "True", "Running", "3/3", "ON"]
    assert not any(reason == "DeviceFault" for _, reason, _ in _events(kube_client))

    # read again with nothing changed: no write, and not even a read of the API — the CR
    # and its DatabaseDS's state come from the watcher's records (here: the harness's), the
    # devices' states from TANGO
    operator.databases = InMemoryDatabaseStates()
    operator.databases.record("default", "tango-databaseds", "Running")
    operator.observe(ds_key("motors"))
    mark = kubeemu.mark()
    assert by_kind.reconcile(ds_key("motors"), operator.ports).state == "Running"
    assert [(r["verb"], r["path"]) for r in kubeemu.audit(mark)] == []
    assert operator.tango.health_reads[-1] == "Motor/motors"


def test_a_faulty_device_turns_devices_healthy_false_and_warns_once(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create_server(kube_client)
    operator.settle(ds_key("motors"))
    operator.tango.device_states["lab/motor/2"] = ("FAULT", "Motor 2: no power")

    assert operator.reconcile(ds_key("motors")).state == "Running", "the server still runs"
    status = _status(kube_client)
    assert status["state"] == "Running"
    assert status["deviceSummary"] == "2/3 ON, 1 FAULT"
    assert status["deviceHealth"][0] == {
        "name": "lab/motor/2",
        "exported": True,
        "state": "FAULT",
        "status": "Motor 2: no power",
    }, "the unhealthy device first"
    fault = _condition(status)
    assert (fault["status"], fault["reason"]) == ("False", "DeviceFault")
    assert fault["message"] == "lab/motor/2 FAULT: Motor 2: no power"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", "Ready is the server's: it runs and its devices are exported"
    warnings = [e for e in _events(kube_client) if e[0] == "Warning"]
    assert warnings == [("Warning", "DeviceFault", "lab/motor/2 FAULT: Motor 2: no power")]

    # the same fault read again: no patch, no second Event
    mark = kubeemu.mark()
    operator.reconcile(ds_key("motors"))
    assert kubeemu.mutations(mark) == []

    # a worse and a milder state at once: the condition names the worst (FAULT before ALARM)
    operator.tango.device_states["lab/motor/3"] = ("ALARM", "temperature high")
    operator.reconcile(ds_key("motors"))
    status = _status(kube_client)
    assert status["deviceSummary"] == "1/3 FAULT, 1 ALARM, 1 ON"
    assert _condition(status)["reason"] == "DeviceFault"

    # every device healthy again: the condition turns True, with a Normal Event
    operator.tango.device_states.clear()
    operator.reconcile(ds_key("motors"))
    status = _status(kube_client)
    assert status["deviceSummary"] == "3/3 ON"
    assert _condition(status)["status"] == "True"
    assert ("Normal", "DevicesHealthy", "3/3 ON") in _events(kube_client)


def test_a_device_that_does_not_answer_is_unknown(
    operator: Operator, kube_client: client.ApiClient
) -> None:
    _create_server(kube_client)
    operator.settle(ds_key("motors"))
    operator.tango.device_states["lab/motor/1"] = ("UNKNOWN", "no answer: timed out")
    operator.reconcile(ds_key("motors"))
    status = _status(kube_client)
    assert status["deviceSummary"] == "2/3 ON, 1 UNKNOWN"
    assert _condition(status)["reason"] == "DeviceUnknown"


def test_the_health_read_can_be_turned_off(
    operator: Operator, kube_client: client.ApiClient
) -> None:
    operator.settings = dataclasses.replace(operator.settings, device_health_seconds=0)
    _create_server(kube_client)
    outcome = operator.settle(ds_key("motors"))[ds_key("motors")]
    assert outcome.state == "Running"
    assert outcome.requeue_after is None, "nothing to read again"
    status = _status(kube_client)
    assert "deviceHealth" not in status
    assert "deviceSummary" not in status
    assert "DevicesHealthy" not in {c["type"] for c in status["conditions"]}
    assert operator.tango.health_reads == []


def test_a_server_that_stops_running_drops_its_device_states(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create_server(kube_client)
    operator.settle(ds_key("motors"))
    assert _status(kube_client)["deviceSummary"] == "3/3 ON"

    # the server stops: its devices are no longer exported
    operator.tango.unexported.update(DEVICES)
    assert operator.reconcile(ds_key("motors")).state == "Pending"
    status = _status(kube_client)
    assert "deviceHealth" not in status, "no stale states"
    assert "deviceSummary" not in status
    assert "DevicesHealthy" not in {c["type"] for c in status["conditions"]}
