"""The soak's checks and its TANGO stand-in, on made-up inputs.

Each check passes on what a healthy run produces and fails on the defect it is there to catch.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tango_operator.crd import ConfigMode
from tango_operator.keys import Key
from tests.soak import checks, plan
from tests.soak.traffic import Traffic
from tests.support.standin_tango import SoakStandIn, trace_reconciles
from workers.reconcile import by_kind
from workers.reconcile.ports import Outcome, Ports, TangoUnavailableError

JsonDict = dict[str, Any]
SMALL = plan.build(plan.Size(namespaces=2, device_servers=14))


def _settled(expected: plan.Expected, uid: str) -> JsonDict:
    status = "True" if expected.state == "Running" else "False"
    return {
        "metadata": {"uid": uid, "name": expected.name, "namespace": expected.namespace},
        "status": {
            "state": expected.state,
            "message": expected.message,
            "conditions": [{"type": "Ready", "status": status, "reason": expected.reason}],
        },
    }


def _healthy() -> tuple[dict[checks.ObjectId, JsonDict], list[JsonDict]]:
    observed: dict[checks.ObjectId, JsonDict] = {}
    children: list[JsonDict] = []
    for number, expected in enumerate(SMALL.resources):
        uid = f"uid-{number}"
        observed[(expected.kind, expected.namespace, expected.name)] = _settled(expected, uid)
        for kind, count in expected.children.items():
            for index in range(count):
                child: JsonDict = {
                    "kind": kind,
                    "metadata": {
                        "name": f"{expected.name}-{kind.lower()}-{index}",
                        "namespace": expected.namespace,
                        "ownerReferences": [{"uid": uid, "controller": True}],
                    },
                }
                if kind == "StatefulSet" and expected.replicas is not None:
                    child["spec"] = {"replicas": expected.replicas}
                children.append(child)
    return observed, children


def test_the_plan_has_its_bad_specs_cycle_and_chains() -> None:
    full = plan.build(plan.Size(namespaces=20, device_servers=500))
    assert len(full.of_kind("DeviceServer")) == 500
    assert len(full.of_kind("DatabaseDS")) == 20
    reasons = Counter(r.reason for r in full.bad)
    assert reasons == {"InvalidSpec": 4, "DependencyCycle": 3}
    assert full.chain_depth >= 5
    good = {r.name for r in full.resources if r.state == "Running"}
    provided = {d for r in full.resources if r.state == "Running" for d in r.devices}
    for resource in full.resources:
        if resource.state == "Running":
            assert set(resource.depends_on) <= provided, "good servers depend on good ones"
    assert good


def test_final_states() -> None:
    observed, _ = _healthy()
    assert checks.final_state_problems(SMALL, observed) == []
    bad = SMALL.bad[0]
    wrong = observed[(bad.kind, bad.namespace, bad.name)]
    wrong["status"]["message"] = "something else"
    missing = SMALL.resources[1]
    del observed[(missing.kind, missing.namespace, missing.name)]
    problems = checks.final_state_problems(SMALL, observed)
    assert len(problems) == 2
    assert checks.converged(SMALL, observed) == len(SMALL.resources) - 2


def test_children_duplicates_orphans_and_replicas() -> None:
    observed, children = _healthy()
    assert checks.children_problems(SMALL, observed, children) == []
    first, second = [c for c in children if c["kind"] == "StatefulSet" and "spec" in c][:2]
    twin = json.loads(json.dumps(first))
    twin["metadata"]["name"] += "-twin"
    orphan = {"kind": "ConfigMap", "metadata": {"name": "stray", "namespace": "soak-00"}}
    second["spec"]["replicas"] = 0 if second["spec"]["replicas"] else 1
    problems = checks.children_problems(SMALL, observed, [*children, twin, orphan])
    assert len(problems) == 3, problems
    assert any("children" in p for p in problems)
    assert any("not owned" in p for p in problems)
    assert any("replicas" in p for p in problems)


def test_overlaps_count_unless_the_holder_was_killed(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    key = Key("DeviceServer", "soak-00", "srv-000").encode()
    trace.write_text(
        f"enter 10 {key} 1.0\nenter 11 {key} 2.0\nexit 11 {key} 3.0\n"
        f"enter 12 {key} 4.0\nexit 12 {key} 5.0\n"
    )
    assert checks.overlap_problems(trace, {}) != []
    assert checks.overlap_problems(trace, {10: 1.5}) == []
    windows = checks.reconciles(trace)
    assert [(w.pid, w.exit) for w in windows] == [(10, None), (11, 3.0), (12, 5.0)]
    assert checks.overlap_problems(tmp_path / "absent", {}) != []


def _record(verb: str, resource: str, namespace: str, *, changed: bool = False) -> JsonDict:
    return {
        "time": 100.0,
        "verb": verb,
        "resource": resource,
        "namespace": namespace,
        "path": f"/{resource}",
        "user_agent": "OpenAPI-Generator/31.0.0/python",
        "changed": changed,
        "injected": "",
    }


def test_a_quiet_operator_and_three_kinds_of_noise() -> None:
    periods = checks.Periods(resync=60, waiting_max=10, lease_retry=1, sources=6)
    healthy = Traffic.of(
        [
            *(_record("update", "leases", "default", changed=True) for _ in range(20)),
            *(_record("list", "deviceservers", "") for _ in range(2)),
            _record("get", "deviceservers", "soak-00"),
        ]
    )
    cycle = next(r for r in SMALL.resources if r.reason == "DependencyCycle")
    entries = Counter({checks.key_of(cycle): 3, checks.key_of(SMALL.resources[1]): 1})
    assert checks.quiet_problems(SMALL, healthy, entries, 20, periods) == []

    write = Traffic.of([_record("patch", "deviceservers", "soak-00", changed=True)])
    assert checks.quiet_problems(SMALL, write, Counter(), 20, periods) != []
    hot = Counter({checks.key_of(SMALL.resources[1]): 3})
    assert checks.quiet_problems(SMALL, healthy, hot, 20, periods) != []
    relisting = Traffic.of([_record("list", "statefulsets", "") for _ in range(30)])
    assert checks.quiet_problems(SMALL, relisting, Counter(), 20, periods) != []


def test_a_running_server_with_devices_may_be_read_at_the_device_health_rate() -> None:
    with_devices = next(r for r in SMALL.resources if r.state == "Running" and r.devices)
    quiet = Traffic.of([])
    # 60 s with a 60 s resync: one resync and the window's edge; reads every 10 s add 7
    read = Counter({checks.key_of(with_devices): 9})
    without = checks.Periods(resync=60, waiting_max=10, lease_retry=1, sources=6)
    assert checks.quiet_problems(SMALL, quiet, read, 60, without) != []
    periods = checks.Periods(resync=60, waiting_max=10, lease_retry=1, sources=6, device_health=10)
    assert checks.quiet_problems(SMALL, quiet, read, 60, periods) == []
    too_often = Counter({checks.key_of(with_devices): 13})
    assert checks.quiet_problems(SMALL, quiet, too_often, 60, periods) != []


def test_soak_standin_answers_from_the_registry_and_the_outage_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, outage = tmp_path / "registry.json", tmp_path / "outage"
    monkeypatch.setenv("TANGO_STANDIN_REGISTRY", str(registry))
    monkeypatch.setenv("TANGO_STANDIN_OUTAGE", str(outage))
    monkeypatch.delenv("TANGO_STANDIN_TRACE", raising=False)
    host = "tango-db.soak-00.svc.cluster.local:10000"
    tango = SoakStandIn()
    assert not tango.database_alive(host).ok, "nothing published yet"

    def publish(body: JsonDict) -> None:
        scratch = tmp_path / "scratch"
        scratch.write_text(json.dumps(body))
        os.replace(scratch, registry)

    publish({"hosts": [host], "devices": {}})
    assert tango.database_alive(host).ok
    assert not tango.device_ready(host, "soak/srv-000/0").ok
    assert tango.unexported_devices(host, ("soak/srv-000/0",)) == ["soak/srv-000/0"]
    publish({"hosts": [host], "devices": {host: ["soak/srv-000/0"]}})
    assert tango.device_ready(host, "SOAK/srv-000/0").ok
    assert tango.unexported_devices(host, ("soak/srv-000/0",)) == []

    outage.write_text("down")
    assert not tango.database_alive(host).ok
    assert not tango.device_ready(host, "soak/srv-000/0").ok
    with pytest.raises(TangoUnavailableError):
        tango.unexported_devices(host, ("soak/srv-000/0",))
    document: JsonDict = {"servers": {"SoakServer": {"srv-000": {"Soak": {"soak/srv-000/0": {}}}}}}
    with pytest.raises(TangoUnavailableError):
        tango.apply_config(host, "SoakServer/srv-000", document, mode=ConfigMode.UPDATE)
    outage.unlink()
    assert tango.apply_config(host, "SoakServer/srv-000", document, mode=ConfigMode.UPDATE).changed


def test_trace_reconciles_brackets_every_reconcile_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace"
    calls: list[Key] = []

    def fake(key: Key, ports: Ports) -> Outcome:
        calls.append(key)
        time.sleep(0.01)
        return Outcome(state="Running")

    monkeypatch.setattr(by_kind, "reconcile", fake)
    trace_reconciles(str(trace))
    trace_reconciles(str(trace))  # a second stand-in in the same process wraps nothing more
    key = Key("DatabaseDS", "soak-01", "tango-db")
    assert by_kind.reconcile(key, None).state == "Running"  # type: ignore[arg-type]
    lines = [line.split() for line in trace.read_text().splitlines()]
    assert [(event, subject) for event, _, subject, _ in lines] == [
        ("enter", key.encode()),
        ("exit", key.encode()),
    ]
    assert calls == [key]
    assert checks.reconciles(trace)[0].exit is not None
