"""The same scenarios on kubeemu and on the real kube-apiserver give the same transcripts.

Each test runs one scenario of ``tests.parity.scenarios`` against both servers (fixture
``servers``) and fails on the first step where what the client saw differs, printing both.
Only what is meant to vary is normalised away (uids, timestamps, resourceVersion values,
cluster IPs, continue tokens).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.parity import scenarios
from tests.parity.conftest import Servers
from tests.parity.scenarios import Transcript
from tests.parity.wire import Wire

SCENARIOS: dict[str, Callable[[Wire, str], Transcript]] = {
    "config_map_writes": scenarios.config_map_writes,
    "server_side_apply": scenarios.server_side_apply,
    "paged_list": scenarios.paged_list,
    "custom_resources": scenarios.custom_resources,
    "watch_events": scenarios.watch_events,
    "garbage_collection": scenarios.garbage_collection,
    "operator_children": scenarios.operator_children,
    "events_and_leases": scenarios.events_and_leases,
    "device_server_validation": scenarios.device_server_validation,
    "tables_and_discovery": scenarios.tables_and_discovery,
    "namespace_contents": scenarios.namespace_contents,
    "pod_logs": scenarios.pod_logs,
    "multi_version_crds": scenarios.multi_version_crds,
    "crd_replaced": scenarios.crd_replaced,
}

# Differences kubeemu keeps on purpose, each listed in kubeemu/README.md ("Checked against
# kube-apiserver"). A listed step must still differ: when kubeemu is fixed, the list is updated.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("events_and_leases", "post an Event: managedFields"): (
        "managedFields of built-in objects with null or non-pointer struct fields "
        "(Event.eventTime owned, Event.source with a '.' entry)"
    ),
    ("namespace_contents", "contents"): (
        "no kube-root-ca.crt ConfigMap and no default ServiceAccount in new namespaces"
    ),
}


def assert_same(servers: Servers, name: str) -> None:
    scenario = SCENARIOS[name]
    emulated = scenario(servers.kubeemu, servers.namespace)
    real = scenario(servers.real, servers.namespace)
    assert [step for step, _ in emulated] == [step for step, _ in real]
    differences = []
    for (step, mine), (_, theirs) in zip(emulated, real, strict=True):
        known = KNOWN_DIFFERENCES.get((name, step))
        if known is not None:
            assert mine != theirs, f"{name}/{step} is listed as a difference but is now equal"
            continue
        if mine != theirs:
            differences.append(
                f"step {step!r}:\n  kubeemu:        {json.dumps(mine, sort_keys=True)}\n"
                f"  kube-apiserver: {json.dumps(theirs, sort_keys=True)}"
            )
    assert not differences, "kubeemu differs from kube-apiserver:\n" + "\n".join(differences)


SLOW_SCENARIOS = frozenset({"crd_replaced"})
"""Scenarios over 5 s on a loaded machine (replacing a CRD waits for kube-apiserver's own
discovery and storage to follow)."""


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SCENARIOS else name
        for name in sorted(SCENARIOS)
    ],
)
def test_scenario(servers: Servers, name: str) -> None:
    assert_same(servers, name)
