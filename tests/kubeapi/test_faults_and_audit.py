"""Fault injection and the audit log, as tests and benchmarks use them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubeemu.testing import EmulatorError, KubeEmu

# runs on kubeemu and on the real kube-apiserver (tests/support/kube_api.py)
pytestmark = pytest.mark.usefixtures("kube_api")


def test_error_rate_per_verb_and_resource(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    kubeemu.set_faults(
        [{"code": 503, "rate": 1.0, "verbs": ["create"], "resources": ["configmaps"]}]
    )
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert caught.value.status == 503
    assert json.loads(caught.value.body)["reason"] == "ServiceUnavailable"
    # other verbs and resources are untouched
    core.list_namespaced_config_map("default")
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    kubeemu.clear_faults()
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})


def test_partial_error_rate_is_seeded(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    kubeemu.set_faults([{"code": 500, "rate": 0.3, "verbs": ["get"]}], seed=7)
    statuses = []
    for _ in range(200):
        try:
            core.read_namespace("default")
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)
    assert set(statuses) == {200, 500}
    assert 30 <= statuses.count(500) <= 90, statuses.count(500)


@pytest.mark.slow
def test_throttling_sends_retry_after(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    kubeemu.set_faults([{"code": 429, "retry_after_seconds": 3, "verbs": ["list"]}])
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default")
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    assert json.loads(caught.value.body)["details"] == {"retryAfterSeconds": 3}


def test_added_latency(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    kubeemu.set_faults([{"latency_ms": 300, "verbs": ["get"]}])
    started = time.monotonic()
    core.read_namespace("default")
    assert time.monotonic() - started >= 0.3


def test_audit_log_counts_calls_and_mutations(
    kubeemu: KubeEmu, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    mark = kubeemu.mark()
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "audited"}, "data": {"a": "1"}}
    )
    core.replace_namespaced_config_map("audited", "default", created)  # no-op
    core.patch_namespaced_config_map("audited", "default", {"data": {"a": "2"}})
    core.read_namespaced_config_map("audited", "default")
    records = kubeemu.audit(mark)
    assert [r["verb"] for r in records] == ["create", "update", "patch", "get"]
    assert [r["changed"] for r in records] == [True, False, True, False]
    noop = records[1]
    assert noop["rv_before"] == noop["rv_after"]
    assert records[0]["field_manager"] == ""
    assert records[0]["user_agent"].startswith("OpenAPI-Generator")
    assert [r["verb"] for r in kubeemu.mutations(mark)] == ["create", "patch"]


def test_command_line_faults(tmp_path: Path) -> None:
    emulator = KubeEmu.start(tmp_path, ["--fault", "code=500,verbs=list,resources=configmaps"])
    try:
        api = config.new_client_from_config(config_file=str(emulator.kubeconfig))
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(api).list_namespaced_config_map("default")
        assert caught.value.status == 500
        assert emulator.stats()["faultsInjected"] == 1
    finally:
        emulator.stop()


def test_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubeemu", "--help"], capture_output=True, text=True, check=True
    )
    assert "--fault" in result.stdout


def test_rules_match_group_qualified_resources_and_namespaces(
    kubeemu: KubeEmu, api_client: client.ApiClient, widget_crd: dict[str, object]
) -> None:
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": "calm"}})
    kubeemu.set_faults(
        [{"code": 500, "resources": ["widgets.example.com"], "namespaces": ["default"]}]
    )
    mark = kubeemu.mark()
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert caught.value.status == 500
    assert json.loads(caught.value.body)["message"] == "injected fault"
    custom.list_namespaced_custom_object("example.com", "v1", "calm", "widgets")
    core.list_namespaced_config_map("default")
    records = kubeemu.audit(mark)
    assert [(r["namespace"], r["code"], r["injected"]) for r in records] == [
        ("default", 500, "500"),
        ("calm", 200, ""),
        ("default", 200, ""),
    ]


def test_faults_on_watches(kubeemu: KubeEmu, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    kubeemu.set_faults([{"code": 503, "verbs": ["watch"]}])
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", timeout_seconds=1
        ):
            pass
    assert caught.value.status == 503


def test_admin_api_rejects_unknown_rule_fields(kubeemu: KubeEmu) -> None:
    with pytest.raises(EmulatorError, match="unknown fault rule fields"):
        kubeemu.set_faults([{"code": 500, "verb": ["get"]}])
    with pytest.raises(EmulatorError, match="unknown controller setting"):
        kubeemu.controllers(statefulsets="manual")
