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
}


def assert_same(servers: Servers, scenario: Callable[[Wire, str], Transcript]) -> None:
    emulated = scenario(servers.kubeemu, servers.namespace)
    real = scenario(servers.real, servers.namespace)
    assert [step for step, _ in emulated] == [step for step, _ in real]
    differences = [
        f"step {step!r}:\n  kubeemu:        {json.dumps(mine, sort_keys=True)}\n"
        f"  kube-apiserver: {json.dumps(theirs, sort_keys=True)}"
        for (step, mine), (_, theirs) in zip(emulated, real, strict=True)
        if mine != theirs
    ]
    assert not differences, "kubeemu differs from kube-apiserver:\n" + "\n".join(differences)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(servers: Servers, name: str) -> None:
    assert_same(servers, SCENARIOS[name])
