"""workers.kube retries a request that fails transiently, against kubeemu's injected faults.

Every try is a real request through the official client, configured as a worker's
(``Kube.connect``: urllib3's own retries off); kubeemu's audit log counts them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from kubernetes import client

from devstack.ports import free_port
from kubeemu.testing import KubeEmu
from tango_operator.errors import PermanentError, TemporaryError
from workers.api_retry import RetryPolicy
from workers.kube import Kube

FAST = RetryPolicy(retries=4, base=0.01, cap=0.05, rng=random.Random(1))


def _config_map(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"},
    }


def _tries(kubeemu: KubeEmu, mark: int, verb: str) -> list[int]:
    return [
        r["code"]
        for r in kubeemu.audit(mark)
        if r["resource"] == "configmaps" and r["verb"] == verb
    ]


def test_a_request_that_fails_now_and_then_goes_through(
    kubeemu: KubeEmu, kube_client: client.ApiClient
) -> None:
    kubeemu.set_faults(
        [{"rate": 0.3, "code": 503, "verbs": ["patch"], "resources": ["configmaps"]}], seed=4
    )
    kube = Kube.connect(str(kubeemu.kubeconfig), retry=FAST)
    mark = kubeemu.mark()
    for index in range(10):
        assert kube.apply(_config_map(f"c{index}"))["data"] == {"k": "v"}
    codes = _tries(kubeemu, mark, "patch")
    assert codes.count(503) > 0, "faults were injected"
    assert codes.count(200) + codes.count(201) == 10, "each apply went through once"


def test_tries_are_bounded_and_then_the_error_is_temporary(
    kubeemu: KubeEmu, kube_client: client.ApiClient
) -> None:
    kubeemu.set_faults([{"rate": 1.0, "code": 500, "verbs": ["get"], "resources": ["configmaps"]}])
    mark = kubeemu.mark()
    with pytest.raises(TemporaryError):
        Kube.connect(str(kubeemu.kubeconfig), retry=FAST).get("v1", "ConfigMap", "default", "x")
    assert _tries(kubeemu, mark, "get") == [500] * 5


def test_a_long_retry_after_is_left_to_the_work_queue(
    kubeemu: KubeEmu, kube_client: client.ApiClient
) -> None:
    kubeemu.set_faults(
        [
            {
                "rate": 1.0,
                "code": 429,
                "retry_after_seconds": 30,
                "verbs": ["get"],
                "resources": ["configmaps"],
            }
        ]
    )
    mark = kubeemu.mark()
    with pytest.raises(TemporaryError) as raised:
        Kube.connect(str(kubeemu.kubeconfig), retry=FAST).get("v1", "ConfigMap", "default", "x")
    assert raised.value.delay == 30.0
    assert _tries(kubeemu, mark, "get") == [429], "not slept through in the worker"


def test_a_permanent_answer_is_not_retried(kubeemu: KubeEmu, kube_client: client.ApiClient) -> None:
    bad = _config_map("Not_A_Valid_Name")
    mark = kubeemu.mark()
    with pytest.raises(PermanentError):
        Kube.connect(str(kubeemu.kubeconfig), retry=FAST).apply(bad)
    assert _tries(kubeemu, mark, "patch") == [422]


def test_a_server_that_does_not_answer_is_retried_then_temporary() -> None:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"
    configuration.retries = False  # as Kube.connect sets it
    retries = []

    class Counted(RetryPolicy):
        def delay(
            self, status: int | None, headers: Mapping[str, str] | None, tries: int
        ) -> float | None:
            answer = super().delay(status, headers, tries)
            retries.append((status, answer is not None))
            return answer

    kube = Kube(client.ApiClient(configuration), retry=Counted(retries=2, base=0.01, cap=0.02))
    with pytest.raises(TemporaryError):
        kube.get("v1", "ConfigMap", "default", "x")
    assert retries == [(None, True), (None, True), (None, False)]
