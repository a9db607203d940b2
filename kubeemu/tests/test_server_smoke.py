"""The emulator end to end: ``python -m kubeemu`` through the pytest fixture, driven by the
official Python client, plus the admin API of :class:`kubeemu.testing.KubeEmu`.

The behaviours themselves are pinned in detail by the repository's contract tests
(``tests/contract/`` at the repository root); this checks that the distribution starts,
serves and reports on its own.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubeemu.testing import KubeEmu


@pytest.fixture
def core(kubeemu: KubeEmu) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    return client.CoreV1Api(api_client)


def test_create_conflict_watch_and_audit(kubeemu: KubeEmu, core: client.CoreV1Api) -> None:
    start = kubeemu.mark()
    name = f"cm-{uuid.uuid4().hex[:8]}"
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": name}, "data": {"a": "1"}}
    )
    assert created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    assert caught.value.status == 409

    events = watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        field_selector=f"metadata.name={name}",
        timeout_seconds=2,
    )
    first = next(iter(events))
    assert (first["type"], first["object"].metadata.name) == ("ADDED", name)

    # the 409 changed nothing, so only the first create is a mutation (a create's URL has no name)
    creates = [(r["verb"], r["resource"], r["code"]) for r in kubeemu.mutations(start)]
    assert creates == [("create", "configmaps", 201)]


def test_injected_fault_is_a_status(kubeemu: KubeEmu, core: client.CoreV1Api) -> None:
    kubeemu.set_faults([{"code": 503, "verbs": ["list"], "resources": ["configmaps"]}])
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default")
    assert caught.value.status == 503
    kubeemu.clear_faults()
    assert core.list_namespaced_config_map("default").items == []
    assert kubeemu.stats()["faultsInjected"] == 1
