"""The DeviceServer reconciler with PyTangoPort: kubeemu on one side, real TANGO on the other.

The reconcilers run in-process (``tests.support.operator.Operator``), the TANGO host is a
real PyTango DataBaseds, and the "pods" are real device servers this test starts when the
operator has scaled their StatefulSet up (kubeemu has no kubelet that would run them).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import tango
from kubernetes import client

from devstack.ports import free_port
from tango_operator import crd
from tests.support.operator import Operator, ds_key
from tests.support.tango_db import PyTangoDatabase
from tests.support.tango_servers import TangoServers
from workers.reconcile.ports import Outcome
from workers.settings import Settings
from workers.tango import PyTangoPort

JsonDict = dict[str, Any]
IN_CLUSTER = "tango-databaseds.default.svc.cluster.local:10000"


def _device_server(name: str, instance: str, devices: dict[str, JsonDict], **spec: Any) -> JsonDict:
    config = {"servers": {"EchoServer": {instance: {"Echo": devices}}}}
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "dsname": "EchoServer",
            "args": instance,
            "command": "/usr/local/bin/EchoServer",
            "databaseds": "tango-databaseds",
            "image": "registry.example/echo:1.0",
            "config": json.dumps(config),
            **spec,
        },
    }


def _until(operator: Operator, name: str, state: str, timeout: float = 20.0) -> Outcome:
    deadline = time.monotonic() + timeout
    while True:
        outcome = operator.reconcile(ds_key(name))
        if outcome.state == state:
            return outcome
        assert time.monotonic() < deadline, f"{name}: {outcome}"
        time.sleep(0.1)


def test_config_dependency_and_export_through_real_tango(
    kube_client: client.ApiClient, tango_db: PyTangoDatabase, servers: TangoServers, unique: str
) -> None:
    port = PyTangoPort()
    # Operator is typed for the stand-in; any TangoPort plugs in the same way
    operator = Operator(
        kube_client,
        tango=cast(Any, port),
        settings=Settings(host_map={IN_CLUSTER: tango_db.tango_host}),
    )
    custom = client.CustomObjectsApi(kube_client)
    provider_device, dependent_device = f"test/{unique}/provider", f"test/{unique}/dependent"
    provider = _device_server(
        "provider", f"{unique}-p", {provider_device: {"properties": {"greeting": ["from the CR"]}}}
    )
    dependent = _device_server(
        "dependent", f"{unique}-d", {dependent_device: {}}, dependsOn=[provider_device]
    )
    for body in (provider, dependent):
        custom.create_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", body
        )

    waiting = operator.reconcile(ds_key("dependent"))
    assert waiting.state == "Waiting"
    assert operator.index.waiters_of((provider_device,)) == [ds_key("dependent")]

    _until(operator, "provider", "Pending")  # configured in TANGO, pod up, device not exported
    database = tango_db.database()
    assert database.get_device_info(provider_device).ds_full_name == f"EchoServer/{unique}-p"
    servers.start_echo(f"{unique}-p")  # the provider's pod
    running = _until(operator, "provider", "Running")
    assert ds_key("dependent") in running.wake

    before = tango_db.snapshot()
    assert operator.reconcile(ds_key("provider")).state == "Running"
    assert tango_db.snapshot() == before, "an unchanged config is not rewritten"

    _until(operator, "dependent", "Pending")  # its dependency answers a real ping now
    servers.start_echo(f"{unique}-d")
    _until(operator, "dependent", "Running")
    # the running provider read the property the operator wrote from the CR's config
    proxy = tango.DeviceProxy(f"tango://{tango_db.tango_host}/{provider_device}")
    assert proxy.read_attribute("greeting_value").value == "from the CR"

    custom.delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "provider"
    )
    operator.reconcile(ds_key("provider"))  # the finalizer takes the instance out of TANGO
    assert list(database.get_device_class_list(f"EchoServer/{unique}-p")) == []


def test_each_unmet_dependency_keeps_its_full_name_and_says_why(
    kube_client: client.ApiClient, tango_db: PyTangoDatabase, unique: str
) -> None:
    """The issue-15 example, on real TANGO: what each probe found goes into the status."""
    dead_db = f"127.0.0.1:{free_port()}"  # nothing listens there
    closed = f"127.0.0.1:{free_port()}"
    operator = Operator(
        kube_client,
        tango=cast(Any, PyTangoPort()),
        settings=Settings(host_map={IN_CLUSTER: tango_db.tango_host}),
    )
    missing = f"sys/{unique}/doesnotexist"
    depends_on = [missing, f"tango://{dead_db}/a/b/c", closed, "nohost.invalid:1234"]
    body = _device_server("waiter", f"{unique}-w", {f"test/{unique}/w": {}}, dependsOn=depends_on)
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", body
    )
    assert operator.reconcile(ds_key("waiter")).state == "Waiting"
    status = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "waiter"
    )["status"]
    assert status["waitingFor"] == depends_on, "each in full, the TANGO host of the URL kept"
    reasons = {entry["name"]: entry["reason"] for entry in status["unmetDependencies"]}
    assert "not defined in the TANGO DB" in reasons[missing], reasons
    assert dead_db in reasons[f"tango://{dead_db}/a/b/c"], reasons
    assert reasons[closed] != reasons["nohost.invalid:1234"], "refused is not a DNS failure"
    for name, reason in reasons.items():
        assert f"{name} ({reason})" in status["message"]


def test_each_devices_state_and_status_from_a_real_server_and_a_hung_one(
    kube_client: client.ApiClient, tango_db: PyTangoDatabase, servers: TangoServers, unique: str
) -> None:
    """Issue 15: TANGO's own view in the CR, read from real devices with PyTangoPort."""
    operator = Operator(
        kube_client,
        tango=cast(Any, PyTangoPort()),
        settings=Settings(host_map={IN_CLUSTER: tango_db.tango_host}),
    )
    healthy, faulty = f"test/{unique}/healthy", f"test/{unique}/faulty"
    fault_properties = {"state_at_start": ["FAULT"], "greeting": ["no   power\nat all"]}
    body = _device_server(
        "health", f"{unique}-h", {healthy: {}, faulty: {"properties": fault_properties}}
    )
    custom = client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object(crd.GROUP, crd.VERSION, "default", "deviceservers", body)
    _until(operator, "health", "Pending")
    server = servers.start_echo(f"{unique}-h")
    _until(operator, "health", "Running")

    def status() -> JsonDict:
        found = custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", "health"
        )
        return cast(JsonDict, found["status"])

    seen = status()
    assert seen["deviceSummary"] == "1/2 FAULT, 1 ON"
    health = {entry["name"]: entry for entry in seen["deviceHealth"]}
    assert health[faulty] == {
        "name": faulty,
        "exported": True,
        "state": "FAULT",
        "status": "FAULT: no power at all",
    }, "the device's own Status, whitespace folded"
    assert (health[healthy]["state"], health[healthy]["status"]) == ("ON", "ON: hello")
    condition = next(c for c in seen["conditions"] if c["type"] == "DevicesHealthy")
    assert (condition["status"], condition["reason"]) == ("False", "DeviceFault")

    # the server hangs: the DB still says exported, the devices do not answer; once the
    # first has run into its deadline the second is not waited for
    server.freeze()
    try:
        assert operator.reconcile(ds_key("health")).state == "Running"
        hung = {entry["name"]: entry for entry in status()["deviceHealth"]}
    finally:
        server.thaw()
    assert {entry["state"] for entry in hung.values()} == {"UNKNOWN"}
    reasons = sorted(entry["status"] for entry in hung.values())
    assert all(reason.startswith("no answer: ") for reason in reasons), reasons
    assert any("an earlier call has been waiting" in reason for reason in reasons), reasons
    assert status()["deviceSummary"] == "2/2 UNKNOWN"
