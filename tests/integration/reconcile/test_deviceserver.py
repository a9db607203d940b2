"""DeviceServer and DatabaseDS reconciliation against the API, with a stand-in TANGO side.

The CRs are the ones the SKA charts render, applied with the real kubectl; the reconcilers
run in-process (no queue) through ``tests.support.operator.Operator``. The tests that take
``kube_api`` run on kubeemu and on the real control plane (its StatefulSet controller, garbage
collector and scheduler, the local node reporting pods ready); the others use kubeemu's admin
API (its audit log, pod states set by hand).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubeemu.testing import KubeEmu
from tango_operator import crd, names
from tests.conftest import Cli
from tests.support.kube_api import KubeApi
from tests.support.operator import Operator, db_key, ds_key
from tests.support.workers import EVENTUALLY
from workers.reconcile.ports import InMemoryChildLedger, InMemoryDatabaseStates

JsonDict = dict[str, Any]
DATA = Path(__file__).resolve().parents[2] / "data" / "crs"
OURS = {"label_selector": "app.kubernetes.io/managed-by=tango-operator"}


def _load(name: str) -> JsonDict:
    loaded: JsonDict = yaml.safe_load((DATA / name).read_text())
    return loaded


def _custom(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


def _get_ds(kube_client: client.ApiClient, name: str) -> JsonDict:
    found: JsonDict = _custom(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", name
    )
    return found


def _create(kube_client: client.ApiClient, resource: JsonDict) -> None:
    plural = crd.Kind(resource["kind"]).plural
    _custom(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", plural, resource
    )


def _device_server(name: str, **spec: Any) -> JsonDict:
    body: JsonDict = {
        "dsname": "Motor",
        "args": name,
        "command": "/usr/local/bin/Motor",
        "databaseds": "tango-databaseds",
        "image": "registry.example/motor:1.0",
    }
    body.update(spec)
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


def _database_ds(name: str) -> JsonDict:
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DatabaseDS",
        "metadata": {"name": name},
        "spec": {},
    }


def _config(dsname: str, instance: str, *devices: str) -> str:
    return json.dumps(
        {"servers": {dsname: {instance: {dsname: {device: {} for device in devices}}}}}
    )


def _events_for(kube_client: client.ApiClient, name: str) -> list[client.CoreV1Event]:
    events = client.CoreV1Api(kube_client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    )
    return list(events.items)


# --- the SKA examples, end to end ---------------------------------------------------------------
def test_ska_examples_are_accepted_unchanged_and_reach_running(
    kubectl: Cli, kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    for sample in ("ska-databaseds.yaml", "ska-tangotest.yaml", "python-server.yaml"):
        result = kubectl.run("apply", "-f", str(DATA / sample))
        assert "unknown field" not in result.stderr
    tangotest = _load("ska-tangotest.yaml")["metadata"]["name"]
    python_server = _load("python-server.yaml")["metadata"]["name"]
    databaseds = _load("ska-databaseds.yaml")["metadata"]["name"]

    outcomes = operator.settle(db_key(databaseds), ds_key(tangotest), ds_key(python_server))
    assert {o.state for o in outcomes.values()} == {"Running"}

    kubectl.run("wait", "--for=condition=Ready", f"deviceserver/{tangotest}", "--timeout=10s")
    row = kubectl.run("get", "deviceservers", tangotest, "--no-headers").stdout.split()
    assert row[:3] == [tangotest, "Running", "True"]
    status = _get_ds(kube_client, tangotest)["status"]
    assert status["tangoHost"] == f"{databaseds}.default.svc.cluster.local:10000"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "DependenciesReady": "True",
        "ConfigApplied": "True",
        "ContainerHealthy": "True",
        "DevicesHealthy": "True",
    }
    assert status["deviceSummary"] == "1/1 ON"
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    # the TangoTest example's config went to the TANGO DB, under its own server instance
    assert "TangoTest/test" in operator.tango.servers

    # a second pass over unchanged CRs writes nothing at all
    mark = kubeemu.mark()
    for key in (db_key(databaseds), ds_key(tangotest), ds_key(python_server)):
        assert operator.reconcile(key).state == "Running"
    assert kubeemu.mutations(mark) == []
    writes = len(operator.tango.writes)
    operator.reconcile(ds_key(tangotest))
    assert len(operator.tango.writes) == writes, "an unchanged config is not rewritten"


def test_children_match_the_cr(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create(kube_client, _device_server("motor-1", dependsOn=["db-host:3306"]))
    operator.settle(ds_key("motor-1"))
    apps = client.AppsV1Api(kube_client)
    statefulset = apps.read_namespaced_stateful_set("motor-1", "default")
    assert statefulset.spec.replicas == 1
    assert statefulset.metadata.owner_references[0].kind == "DeviceServer"
    assert statefulset.metadata.owner_references[0].controller is True
    assert not statefulset.spec.template.spec.init_containers
    service = client.CoreV1Api(kube_client).read_namespaced_service("motor-1", "default")
    assert sorted(p.port for p in service.spec.ports) == [45450, 45460, 45470]
    assert service.metadata.labels["app.kubernetes.io/managed-by"] == "tango-operator"
    managers = {m.manager for m in statefulset.metadata.managed_fields}
    assert "tango-operator" in managers


def test_cr_annotations_reach_the_pods_and_follow_changes(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    """Vault-agent-style annotations on a DatabaseDS reach both of its pods' templates."""
    vault = {
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "tango",
        "vault.hashicorp.com/agent-inject-secret-db": "secret/data/tango/db",
    }
    database = _database_ds("tango-vault")
    database["metadata"]["annotations"] = vault
    _create(kube_client, database)
    operator.settle(db_key("tango-vault"), until=None)
    apps = client.AppsV1Api(kube_client)
    for name in ("tango-vault", "tango-vault-tangodb"):
        template = apps.read_namespaced_stateful_set(name, "default").spec.template
        assert template.metadata.annotations == vault, name

    # the role changes on the CR: the pods' templates follow (a rollout, as Vault needs)
    _custom(kube_client).patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        "databaseds",
        "tango-vault",
        {"metadata": {"annotations": {"vault.hashicorp.com/role": "tango-ops"}}},
    )
    operator.settle(db_key("tango-vault"), until=None)
    template = apps.read_namespaced_stateful_set("tango-vault", "default").spec.template
    assert template.metadata.annotations["vault.hashicorp.com/role"] == "tango-ops"


# --- drift ------
def test_drift_is_repaired_and_foreign_fields_are_left_alone(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient, kubectl: Cli
) -> None:
    _create(kube_client, _device_server("motor-2"))
    operator.settle(ds_key("motor-2"))
    core = client.CoreV1Api(kube_client)
    apps = client.AppsV1Api(kube_client)

    core.delete_namespaced_service("motor-2", "default")
    kubectl.run("set", "image", "statefulset/motor-2", "device-server=evil/image:6.6.6")
    kubectl.run("annotate", "statefulset/motor-2", "team.example/owner=alice")
    assert (
        apps.read_namespaced_stateful_set("motor-2", "default")
        .spec.template.spec.containers[0]
        .image
        == "evil/image:6.6.6"
    )

    operator.reconcile(ds_key("motor-2"))
    assert core.read_namespaced_service("motor-2", "default").spec.ports
    restored = apps.read_namespaced_stateful_set("motor-2", "default")
    assert restored.spec.template.spec.containers[0].image == "registry.example/motor:1.0"
    assert restored.metadata.annotations["team.example/owner"] == "alice"


# --- deletion ------
def test_delete_runs_the_finalizer_and_gc_removes_every_child(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create(
        kube_client,
        _device_server("motor-3", config=_config("Motor", "motor-3", "lab/motor/3")),
    )
    operator.settle(ds_key("motor-3"))
    assert _get_ds(kube_client, "motor-3")["metadata"]["finalizers"] == [crd.FINALIZER]
    assert "Motor/motor-3" in operator.tango.servers

    _custom(kube_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "motor-3"
    )
    assert _get_ds(kube_client, "motor-3")["metadata"]["deletionTimestamp"]
    operator.reconcile(ds_key("motor-3"))
    assert operator.tango.removed == ["Motor/motor-3"]
    assert "lab/motor/3" not in operator.tango.owners
    with pytest.raises(client.ApiException) as gone:
        _get_ds(kube_client, "motor-3")
    assert gone.value.status == 404

    core = client.CoreV1Api(kube_client)
    apps = client.AppsV1Api(kube_client)
    # kube-controller-manager's garbage collector maps a new CRD's owners only after its next
    # discovery refresh (every 30 s): on a fresh real cluster, collection can take that long
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = (
            [s.metadata.name for s in apps.list_namespaced_stateful_set("default", **OURS).items]
            # a real server's own Service `kubernetes` lives in default too
            + [s.metadata.name for s in core.list_namespaced_service("default", **OURS).items]
            + [
                c.metadata.name
                for c in core.list_namespaced_config_map("default").items
                if c.metadata.name.startswith("motor-3")
            ]
            + [p.metadata.name for p in core.list_namespaced_pod("default", **OURS).items]
        )
        if not left:
            break
        time.sleep(0.1)
    assert left == []


# --- waiting and dependencies ------
def test_waiting_for_a_dependency_then_running(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    operator.tango.unready_devices.add("lab/power/1")
    operator.tango.unreachable_endpoints.add("plc.example:502")
    _create(kube_client, _device_server("motor-4", dependsOn=["lab/power/1", "plc.example:502"]))
    outcome = operator.reconcile(ds_key("motor-4"))
    assert outcome.state == "Waiting"
    assert outcome.requeue_after is not None
    assert 0 < outcome.requeue_after <= operator.settings.waiting_max_seconds * 1.2
    status = _get_ds(kube_client, "motor-4")["status"]
    assert status["waitingFor"] == ["lab/power/1", "plc.example:502"]
    not_exported = "lab/power/1 is not exported (its server not running)"
    refused = "TCP connect to plc.example:502 failed: Connection refused"
    assert status["unmetDependencies"] == [
        {"name": "lab/power/1", "reason": not_exported},
        {"name": "plc.example:502", "reason": refused},
    ]
    assert status["message"] == (
        f"waiting for lab/power/1 ({not_exported}); plc.example:502 ({refused})"
    )
    statefulset = client.AppsV1Api(kube_client).read_namespaced_stateful_set("motor-4", "default")
    assert statefulset.spec.replicas == 0, "the server does not start before its dependencies"
    reasons = [e.reason for e in _events_for(kube_client, "motor-4")]
    assert reasons == ["Waiting"]
    assert operator.index.waiters_of(("lab/power/1",)) == [ds_key("motor-4")]

    operator.tango.unready_devices.clear()
    operator.tango.unreachable_endpoints.clear()
    operator.settle(ds_key("motor-4"))
    status = _get_ds(kube_client, "motor-4")["status"]
    assert "waitingFor" not in status
    assert "unmetDependencies" not in status
    assert "Running" in {e.reason for e in _events_for(kube_client, "motor-4")}
    assert operator.index.waiters_of(("lab/power/1",)) == []


def test_short_host_names_are_dialled_in_the_crs_namespace(
    operator: Operator, kube_client: client.ApiClient
) -> None:
    """``db:3306`` as the SKA charts write it is the Service of the CR's namespace.

    No host map: the names the stand-in is asked about are the ones the workers dial.
    """
    qualified_db = "databaseds-tango-base-tangodb.default.svc.cluster.local:3306"
    other_tango = "other-db.default.svc.cluster.local:10000"
    operator.tango.unreachable_endpoints.add(qualified_db)
    operator.tango.down_hosts.add(other_tango)
    depends_on = [
        "databaseds-tango-base-tangodb:3306",
        "tango://other-db:10000/lab/power/1",
        "plc.example:502",
        "localhost:6379",
    ]
    _create(kube_client, _device_server("short", dependsOn=depends_on))
    assert operator.reconcile(ds_key("short")).state == "Waiting"
    status = _get_ds(kube_client, "short")["status"]
    assert status["waitingFor"] == depends_on[:2], "as written; the rest answered"

    operator.tango.unreachable_endpoints.clear()
    operator.tango.down_hosts.clear()
    operator.tango.unreachable_endpoints.update({"plc.example:502", "localhost:6379"})
    assert operator.reconcile(ds_key("short")).state == "Waiting"
    status = _get_ds(kube_client, "short")["status"]
    assert status["waitingFor"] == depends_on[2:], "qualified names and localhost as written"


def test_a_running_provider_wakes_its_waiters(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    operator.tango.unready_devices.add("lab/power/2")
    _create(kube_client, _device_server("consumer", dependsOn=["lab/power/2"]))
    assert operator.reconcile(ds_key("consumer")).state == "Waiting"
    _create(
        kube_client,
        _device_server(
            "provider",
            dsname="Power",
            command="/usr/bin/Power",
            config=_config("Power", "provider", "lab/power/2"),
        ),
    )
    operator.tango.unready_devices.clear()
    outcomes = operator.settle(ds_key("provider"), until=None)
    assert outcomes[ds_key("provider")].state == "Running"
    assert outcomes[ds_key("consumer")].state in ("Running", "Pending", "Building")


def test_a_dependency_cycle_is_an_error_on_every_member_until_it_is_broken(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    # a → b → c → a; d waits on a but is not in the cycle
    ring = {"a": ("lab/a/1", "lab/b/1"), "b": ("lab/b/1", "lab/c/1"), "c": ("lab/c/1", "lab/a/1")}
    operator.tango.unready_devices.update(device for device, _ in ring.values())
    for name, (own, wanted) in ring.items():
        _create(
            kube_client,
            _device_server(name, config=_config("Motor", name, own), dependsOn=[wanted]),
        )
    _create(kube_client, _device_server("d", dependsOn=["lab/a/1"]))
    outcomes = operator.settle(*(ds_key(n) for n in (*ring, "d")), until=None)
    expected = {"a": "a → b → c → a", "b": "b → c → a → b", "c": "c → a → b → c"}
    for name, cycle in expected.items():
        assert outcomes[ds_key(name)].state == "Error", name
        status = _get_ds(kube_client, name)["status"]
        assert status["message"] == f"spec.dependsOn: dependency cycle {cycle}"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["DependenciesReady"]["reason"] == "DependencyCycle"
        events = _events_for(kube_client, name)
        assert [(e.type, e.reason) for e in events] == [("Warning", "Error")]
        assert cycle in events[0].message
    assert outcomes[ds_key("d")].state == "Waiting", "waiting on a cycle is not itself a cycle"

    # c drops its dependency: c starts, and the rest follow as their providers come up
    _custom(kube_client).patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "c", {"spec": {"dependsOn": None}}
    )
    operator.tango.unready_devices.clear()
    outcomes = operator.settle(ds_key("c"), until=None)
    for name in ("a", "b", "c", "d"):
        assert _get_ds(kube_client, name)["status"]["state"] == "Running", name


def test_waiters_start_when_the_devices_are_exported_not_when_the_pod_is_ready(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    kubeemu.controllers(statefulset="manual")
    operator.tango.unready_devices.add("lab/early/1")
    _create(kube_client, _device_server("early-consumer", dependsOn=["lab/early/1"]))
    assert operator.reconcile(ds_key("early-consumer")).state == "Waiting"
    provider = _device_server(
        "early",
        dsname="Early",
        command="/usr/bin/Early",
        config=_config("Early", "early", "lab/early/1"),
    )
    _create(kube_client, provider)
    operator.tango.unexported.add("lab/early/1")
    starting = operator.reconcile(ds_key("early"))
    deadline = time.monotonic() + EVENTUALLY
    while starting.state == "Building" and time.monotonic() < deadline:  # the rollout's status
        time.sleep(0.05)
        starting = operator.reconcile(ds_key("early"))
    assert starting.state == "Pending"
    assert starting.wake == ()
    tango_host = "tango-databaseds.default.svc.cluster.local:10000"
    assert starting.starting == (tango_host, ("lab/early/1",)), "the export watcher looks"
    assert starting.requeue_after == operator.settings.pending_poll_seconds, "the fallback"

    # the server exports its device; the kubelet has not seen the pod ready yet
    operator.tango.unexported.clear()
    operator.tango.unready_devices.clear()
    exported = operator.reconcile(ds_key("early"))
    assert exported.state == "Pending"
    assert exported.wake == (ds_key("early-consumer"),)
    assert "devices exported" in _get_ds(kube_client, "early")["status"]["message"]
    operator.reconcile(ds_key("early-consumer"))
    apps = client.AppsV1Api(kube_client)
    assert apps.read_namespaced_stateful_set("early-consumer", "default").spec.replicas == 1


def test_tango_host_down_is_waiting_and_recovers(
    operator: Operator, kube_client: client.ApiClient
) -> None:
    tango_host = "tango-databaseds.default.svc.cluster.local:10000"
    operator.tango.down_hosts.add(tango_host)
    _create(kube_client, _device_server("motor-5"))
    assert operator.reconcile(ds_key("motor-5")).state == "Waiting"
    status = _get_ds(kube_client, "motor-5")["status"]
    assert status["waitingFor"] == [tango_host]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "TangoHostNotReady"
    operator.tango.down_hosts.clear()
    operator.settle(ds_key("motor-5"))


def test_databaseds_not_running_keeps_its_users_waiting(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    kubeemu.controllers(statefulset="manual")
    _create(kube_client, _database_ds("tango-databaseds"))
    _create(kube_client, _device_server("motor-6"))
    assert operator.reconcile(db_key("tango-databaseds")).state == "Building"
    assert operator.reconcile(ds_key("motor-6")).state == "Waiting"
    assert (
        "DatabaseDS tango-databaseds is Building"
        in _get_ds(kube_client, "motor-6")["status"]["message"]
    )
    dbds = client.AppsV1Api(kube_client).read_namespaced_stateful_set("tango-databaseds", "default")
    assert dbds.spec.replicas == 0, "DataBaseds waits for its MariaDB, without init containers"

    # the kubelet's part, played by the test: MariaDB's pod becomes ready, then DataBaseds'
    _pod_ready(kubeemu, kube_client, "tango-databaseds-tangodb-0")
    assert operator.reconcile(db_key("tango-databaseds")).state == "Building"
    _pod_ready(kubeemu, kube_client, "tango-databaseds-0")
    kubeemu.controllers(statefulset="instant")
    outcomes = operator.settle(db_key("tango-databaseds"))
    assert ds_key("motor-6") in outcomes, "the DatabaseDS wakes the DeviceServers using it"
    assert outcomes[ds_key("motor-6")].state == "Running"

    # the DataBaseds pod fails: its users are woken again and say what they wait for,
    # while their own pods keep running
    kubeemu.set_pod_state("default", "tango-databaseds-0", "failed", "OOMKilled")
    _wait_ready_replicas(kube_client, "tango-databaseds", 0)
    outcome = operator.reconcile(db_key("tango-databaseds"))
    assert outcome.state == "Building"
    assert outcome.wake == (ds_key("motor-6"),)
    assert operator.reconcile(ds_key("motor-6")).state == "Waiting"
    apps = client.AppsV1Api(kube_client)
    assert apps.read_namespaced_stateful_set("motor-6", "default").spec.replicas == 1
    kubeemu.set_pod_state("default", "tango-databaseds-0", "ready")
    _wait_ready_replicas(kube_client, "tango-databaseds", 1)
    outcomes = operator.settle(db_key("tango-databaseds"))
    assert outcomes[ds_key("motor-6")].state == "Running"


def test_deleting_a_databaseds_moves_its_users_to_waiting_at_once_and_warns(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    """Event-driven, not at the next resync; a Warning Event on the DatabaseDS and each user.

    The states are kept as the watcher's record keeps them: the DatabaseDS is gone from the API
    before its DataBaseds stops answering (the stand-in TANGO here answers all along).
    """
    operator.databases = InMemoryDatabaseStates()
    _create(kube_client, _database_ds("tango-db"))
    _create(kube_client, _device_server("motor-7", databaseds="tango-db"))
    _create(kube_client, _device_server("other", databaseds="elsewhere.example:10000"))
    outcomes = operator.settle(db_key("tango-db"), ds_key("motor-7"), ds_key("other"))
    assert outcomes[ds_key("motor-7")].state == "Running"

    _custom(kube_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "databaseds", "tango-db"
    )
    outcome = operator.reconcile(db_key("tango-db"))
    assert outcome.wake == (ds_key("motor-7"),), "its users, and only them, look again now"
    assert operator.reconcile(ds_key("motor-7")).state == "Waiting"
    status = _get_ds(kube_client, "motor-7")["status"]
    assert "DatabaseDS tango-db was deleted" in status["message"], status["message"]
    assert operator.reconcile(ds_key("other")).state == "Running", "another TANGO host: untouched"
    warnings = {
        (e.involved_object.name, e.reason)
        for e in client.CoreV1Api(kube_client).list_namespaced_event("default").items
        if e.type == "Warning"
    }
    assert ("tango-db", "DeletedWhileInUse") in warnings
    assert ("motor-7", "DatabaseDSDeleted") in warnings
    assert ("other", "DatabaseDSDeleted") not in warnings


def _wait_ready_replicas(kube_client: client.ApiClient, name: str, count: int) -> None:
    apps = client.AppsV1Api(kube_client)
    deadline = time.monotonic() + EVENTUALLY
    while (apps.read_namespaced_stateful_set(name, "default").status.ready_replicas or 0) != count:
        assert time.monotonic() < deadline, f"{name} never had {count} ready replicas"
        time.sleep(0.02)


def _pod_ready(kubeemu: KubeEmu, kube_client: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(kube_client)
    deadline = time.monotonic() + EVENTUALLY
    while name not in {p.metadata.name for p in core.list_namespaced_pod("default").items}:
        assert time.monotonic() < deadline, f"pod {name} never created"
        time.sleep(0.05)
    kubeemu.set_pod_state("default", name, "ready")


# --- errors ------
BAD_SPECS: list[tuple[str, JsonDict, str]] = [
    ("bad-json", {"config": "{not json"}, "spec.config: is not valid JSON"),
    (
        "bad-shape",
        {
            "config": json.dumps(
                {"servers": {"Motor": {"bad-shape": {"Motor": {"not-a-device": {}}}}}}
            )
        },
        "not a device name",
    ),
    ("both", {"script": "print(1)"}, "spec.command: give either command or script"),
    ("neither", {"command": None}, "spec.command: one of command or script is required"),
    (
        "selfish",
        {"config": _config("Motor", "selfish", "lab/self/1"), "dependsOn": ["lab/self/1"]},
        "spec.dependsOn[0]",
    ),
    ("long-host", {"databaseds": "x" * 70}, "spec.databaseds"),
]


def test_bad_specs_end_in_error_and_the_others_still_run(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    for name, spec, _ in BAD_SPECS:
        resource = _device_server(name, **spec)
        resource["spec"] = {k: v for k, v in resource["spec"].items() if v is not None}
        _create(kube_client, resource)
    _create(kube_client, _device_server("healthy"))
    keys = [ds_key(name) for name, _, _ in BAD_SPECS]
    outcomes = operator.settle(ds_key("healthy"), *keys, until=None)
    assert outcomes[ds_key("healthy")].state == "Running"
    for name, _, expected in BAD_SPECS:
        assert outcomes[ds_key(name)].state == "Error", name
        assert outcomes[ds_key(name)].requeue_after is None, "no retry until the spec changes"
        status = _get_ds(kube_client, name)["status"]
        assert status["state"] == "Error"
        assert expected in status["message"], (name, status["message"])
        events = _events_for(kube_client, name)
        assert [(e.type, e.reason) for e in events] == [("Warning", "Error")], name
        assert expected in events[0].message


def test_fixing_the_spec_leaves_error(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create(kube_client, _device_server("fixme", config="{oops"))
    assert operator.reconcile(ds_key("fixme")).state == "Error"
    _custom(kube_client).patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        "deviceservers",
        "fixme",
        {"spec": {"config": _config("Motor", "fixme", "lab/fix/1")}},
    )
    operator.settle(ds_key("fixme"))
    status = _get_ds(kube_client, "fixme")["status"]
    assert status["observedGeneration"] == 2
    assert status["devices"] == ["lab/fix/1"]


def test_a_device_claimed_twice_is_an_error_for_the_second_only(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create(kube_client, _device_server("first", config=_config("Motor", "first", "lab/shared/1")))
    operator.settle(ds_key("first"))
    _create(
        kube_client, _device_server("second", config=_config("Motor", "second", "lab/shared/1"))
    )
    assert operator.reconcile(ds_key("second")).state == "Error"
    message = _get_ds(kube_client, "second")["status"]["message"]
    assert "Motor/first" in message
    assert "Motor/second" in message
    assert operator.reconcile(ds_key("first")).state == "Running"
    assert operator.tango.owners["lab/shared/1"] == "Motor/first"


def test_a_long_name_gets_stable_short_children(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    name = "a-very-long-device-server-name-that-goes-on-and-on-beyond-the-limits-of-labels"
    _create(kube_client, _device_server(name))
    operator.settle(ds_key(name))
    statefulset_name = names.statefulset(name)
    assert len(statefulset_name) <= names.STATEFULSET_NAME_MAX
    pods = client.CoreV1Api(kube_client).list_namespaced_pod("default").items
    assert [p.metadata.name for p in pods] == [f"{statefulset_name}-0"]
    assert all(len(v) <= 63 for v in pods[0].metadata.labels.values())


def test_spec_change_rolls_out_and_bumps_observed_generation(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    _create(kube_client, _device_server("motor-7"))
    operator.settle(ds_key("motor-7"))
    _custom(kube_client).patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        "deviceservers",
        "motor-7",
        {"spec": {"image": "registry.example/motor:2.0"}},
    )
    operator.settle(ds_key("motor-7"))
    statefulset = client.AppsV1Api(kube_client).read_namespaced_stateful_set("motor-7", "default")
    assert statefulset.spec.template.spec.containers[0].image == "registry.example/motor:2.0"
    assert _get_ds(kube_client, "motor-7")["status"]["observedGeneration"] == 2


def test_reconcile_of_a_missing_key_is_a_no_op(operator: Operator, kubeemu: KubeEmu) -> None:
    mark = kubeemu.mark()
    outcome = operator.reconcile(ds_key("nobody"))
    assert outcome.state is None
    assert kubeemu.mutations(mark) == []


def test_the_credentials_secret_is_created_once_and_never_posted_again(
    kubeemu: KubeEmu, operator: Operator, kube_client: client.ApiClient
) -> None:
    """Read before create: later passes, even with the child ledger lost, never POST it (409)."""
    kubeemu.controllers(statefulset="manual")
    _create(kube_client, _database_ds("db"))
    mark = kubeemu.mark()
    for _ in range(3):
        operator.reconcile(db_key("db"))
    operator.ledger = InMemoryChildLedger()  # a Redis restarted empty: nothing remembered
    for _ in range(2):
        operator.reconcile(db_key("db"))
    secrets = [r for r in kubeemu.audit(mark) if r["resource"] == "secrets"]
    posts = [r for r in secrets if r["verb"] == "create"]
    assert [r["code"] for r in posts] == [201], "one create, never a 409"
    assert [r["verb"] for r in secrets].count("get") == 2, (
        "read once before the create and once after the ledger was lost"
    )
    assert (
        client.CoreV1Api(kube_client)
        .read_namespaced_secret("db-tangodb-credentials", "default")
        .data
    )
