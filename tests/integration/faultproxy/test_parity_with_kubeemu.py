"""The same fault rule, on kubeemu and through the proxy: the client sees the same failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from devstack.faultproxy import FaultProxy
from kubeemu.testing import KubeEmu
from tests.integration.faultproxy.conftest import client_for

pytestmark = pytest.mark.slow  # the session's control plane starts in ~5-10 s

Call = Callable[[client.CoreV1Api, str], object]
THE_TEST_NAMESPACE = "<the test's namespace>"


def _create(core: client.CoreV1Api, namespace: str) -> object:
    return core.create_namespaced_config_map(namespace, {"metadata": {"name": "refused"}})


def _list(core: client.CoreV1Api, namespace: str) -> object:
    return core.list_namespaced_config_map(namespace)


def _get(core: client.CoreV1Api, namespace: str) -> object:
    return core.read_namespaced_config_map("anything", namespace)


def _watch(core: client.CoreV1Api, namespace: str) -> object:
    return list(watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=1))


CASES: list[tuple[str, dict[str, Any], Call]] = [
    (
        "503-create",
        {"code": 503, "verbs": ["create"], "resources": ["configmaps"], "message": "down"},
        _create,
    ),
    ("429-list", {"code": 429, "retry_after_seconds": 2, "verbs": ["list"]}, _list),
    (
        "500-in-a-namespace",
        {"code": 500, "resources": ["configmaps"], "namespaces": [THE_TEST_NAMESPACE]},
        _get,
    ),
    ("503-watch", {"code": 503, "verbs": ["watch"]}, _watch),
]


def _failure(api_client: client.ApiClient, namespace: str, call: Call) -> tuple[Any, ...]:
    with pytest.raises(ApiException) as caught:
        call(client.CoreV1Api(api_client), namespace)
    headers = caught.value.headers or {}
    return caught.value.status, json.loads(caught.value.body), headers.get("Retry-After")


@pytest.mark.parametrize(("rule", "call"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_a_rule_fails_a_request_alike_on_both(
    kubeemu: KubeEmu,
    fault_proxy: FaultProxy,
    proxy_client: client.ApiClient,
    namespace: str,
    rule: dict[str, Any],
    call: Call,
) -> None:
    if THE_TEST_NAMESPACE in rule.get("namespaces", []):
        rule = {**rule, "namespaces": [namespace]}
    emulated = client_for(kubeemu.kubeconfig)
    try:
        client.CoreV1Api(emulated).create_namespace({"metadata": {"name": namespace}})
        kubeemu.set_faults([rule])
        fault_proxy.set_faults([rule])
        on_kubeemu = _failure(emulated, namespace, call)
        on_real = _failure(proxy_client, namespace, call)
    finally:
        emulated.close()
    assert on_real == on_kubeemu
    assert on_real[0] == rule["code"]
    assert kubeemu.stats()["faultsInjected"] == fault_proxy.stats()["faultsInjected"] == 1
