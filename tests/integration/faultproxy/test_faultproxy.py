"""kubeemu's faults against the real kube-apiserver, through ``devstack.faultproxy``.

Errors with a Status body, throttling with ``Retry-After``, added latency and dropped watches,
as the official client sees them; what compaction does on the real server (its watch cache
serves a recent resourceVersion after etcd compaction, see the compaction tests); and identity
passing through (a ServiceAccount's token is authorized as that ServiceAccount).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from devstack.controlplane import ControlPlane
from devstack.faultproxy import FaultProxy
from tests.conftest import Cli, _tool
from tests.integration.faultproxy.conftest import client_for

pytestmark = pytest.mark.slow  # the session's control plane starts in ~5-10 s

_crds = itertools.count()


def _config_map(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def test_error_rule_is_an_api_exception_with_a_status_body(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(proxy_client)
    fault_proxy.set_faults(
        [{"code": 503, "verbs": ["create"], "resources": ["configmaps"], "message": "down"}]
    )
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, _config_map("refused"))
    assert caught.value.status == 503
    assert json.loads(caught.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "down",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    # other verbs and resources reach the server
    core.list_namespaced_config_map(namespace)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "passes"}})
    assert fault_proxy.stats()["faultsInjected"] == 1
    # the refused request is on the proxy's record (kube-apiserver's audit log never saw it)
    (injected,) = fault_proxy.injections()
    assert (injected.verb, injected.resource, injected.namespace, injected.code) == (
        "create",
        "configmaps",
        namespace,
        503,
    )
    assert injected.path == f"/api/v1/namespaces/{namespace}/configmaps"
    assert injected.user_agent == proxy_client.user_agent
    fault_proxy.clear_faults()
    made = core.create_namespaced_config_map(namespace, _config_map("accepted"))
    assert made.metadata.namespace == namespace


def test_throttling_sends_retry_after(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(proxy_client)
    fault_proxy.set_faults([{"code": 429, "retry_after_seconds": 3, "verbs": ["list"]}])
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace)
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    body = json.loads(caught.value.body)
    assert (body["reason"], body["code"]) == ("TooManyRequests", 429)
    assert body["details"] == {"retryAfterSeconds": 3}
    # a get is not a list
    assert core.read_namespace(namespace).metadata.name == namespace


def test_partial_rate_is_seeded(fault_proxy: FaultProxy, proxy_client: client.ApiClient) -> None:
    core = client.CoreV1Api(proxy_client)
    fault_proxy.set_faults([{"code": 500, "rate": 0.3, "verbs": ["get"]}], seed=7)
    statuses = []
    for _ in range(60):
        try:
            core.read_namespace("default")
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)
    assert set(statuses) == {200, 500}
    assert fault_proxy.stats()["faultsInjected"] == statuses.count(500)


def test_latency_is_added(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(proxy_client)
    fault_proxy.set_faults([{"latency_ms": 400, "verbs": ["get"], "namespaces": [namespace]}])
    core.create_namespaced_config_map(namespace, _config_map("slow"))
    started = time.monotonic()
    assert core.read_namespaced_config_map("slow", namespace).metadata.name == "slow"
    assert time.monotonic() - started >= 0.4


def test_watch_streams_events_until_drop_watches(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(proxy_client)
    seen: list[str] = []
    ended = threading.Event()

    def consume() -> None:
        # timeout_seconds: the Watch does not resume by itself, so the drop ends the loop
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, timeout_seconds=120
        ):
            seen.append(f"{event['type']} {event['object'].metadata.name}")
        ended.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    _wait_for(lambda: fault_proxy.stats()["openWatches"] == 1, "the watch to open")
    core.create_namespaced_config_map(namespace, _config_map("first"))
    # the event arrives while the stream stays open: chunks are forwarded as they come
    _wait_for(lambda: "ADDED first" in seen, "the ADDED event through the proxy")
    assert not ended.is_set()

    assert fault_proxy.drop_watches() == 1
    assert ended.wait(10), "the dropped watch did not end"
    consumer.join(5)
    assert fault_proxy.stats()["openWatches"] == 0
    # a new watch works after the drop
    names = [
        event["object"].metadata.name
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, timeout_seconds=1
        )
    ]
    assert "first" in names


def test_compaction_expires_old_versions_of_lists_read_from_etcd(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    """An exact-resourceVersion list and a continue token are read from etcd: compaction is 410."""
    core = client.CoreV1Api(proxy_client)
    for name in ("a", "b", "c"):
        made = core.create_namespaced_config_map(namespace, _config_map(name))
    old = made.metadata.resource_version
    page = core.list_namespaced_config_map(namespace, limit=1)
    assert page.metadata._continue
    core.patch_namespaced_config_map("a", namespace, {"data": {"x": "1"}})
    exact = core.list_namespaced_config_map(
        namespace, resource_version=old, resource_version_match="Exact"
    )
    assert exact.metadata.resource_version == old

    assert fault_proxy.compact() > int(old)

    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(
            namespace, resource_version=old, resource_version_match="Exact"
        )
    assert caught.value.status == 410
    body = json.loads(caught.value.body)
    assert (body["reason"], body["message"]) == (
        "Expired",
        "The resourceVersion for the provided list is too old.",
    )
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, limit=1, _continue=page.metadata._continue)
    assert caught.value.status == 410
    assert json.loads(caught.value.body)["reason"] == "Expired"


def test_rewatch_after_compaction_is_served_by_the_watch_cache(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    """Unlike kubeemu, compaction alone does not make a recent resourceVersion 410 Gone.

    kube-apiserver serves watches from its watch cache (events of at least the last 75 s), not
    from etcd: a re-watch from a version still in the cache's window is served after etcd was
    compacted past it. kubeemu answers it with 410 (``tests/kubeapi/test_watch.py``).
    """
    core = client.CoreV1Api(proxy_client)
    old = core.create_namespaced_config_map(namespace, _config_map("w")).metadata.resource_version
    core.patch_namespaced_config_map("w", namespace, {"data": {"x": "1"}})
    fault_proxy.compact()
    events = [
        (event["type"], event["object"].data)
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=old,
            timeout_seconds=1,
            # kube-controller-manager's root-CA publisher may add kube-root-ca.crt to the new
            # namespace after ``old``: only w's events are this test's
            field_selector="metadata.name=w",
        )
    ]
    assert events == [("MODIFIED", {"x": "1"})]


@pytest.fixture
def fresh_resource(control_plane: ControlPlane) -> Iterator[tuple[str, str]]:
    """A CRD made by this test: its watch cache starts at the resourceVersion it was made at."""
    group = f"faultproxy{next(_crds)}.example.com"
    name = f"widgets.{group}"
    control_plane.request(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        },
    )
    try:
        yield group, "widgets"
    finally:
        control_plane.request(
            "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        )


def test_watch_from_before_the_watch_cache_window_is_gone(
    fault_proxy: FaultProxy,
    proxy_client: client.ApiClient,
    namespace: str,
    fresh_resource: tuple[str, str],
) -> None:
    """What is 410 Gone for a watch on the real server: a version older than its watch cache.

    A resource's cache begins when kube-apiserver starts to serve it (for a CRD, when it is
    made) and keeps a window of recent events; "1" is older than a fresh CRD's window.
    (A built-in resource's cache began when the server started, at about "1", and keeps at
    least 75 s of events, so it is no test of a window in a short-lived session.)
    """
    group, plural = fresh_resource
    custom = client.CustomObjectsApi(proxy_client)
    _wait_for(lambda: _served(custom, group, namespace, plural), "the CRD to be served")
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            custom.list_namespaced_custom_object,
            group,
            "v1",
            namespace,
            plural,
            resource_version="1",
            timeout_seconds=5,
        ):
            pass
    assert caught.value.status == 410
    assert caught.value.reason.startswith("Expired: too old resource version: 1 (")


def test_service_account_token_is_authorized_as_the_service_account(
    fault_proxy: FaultProxy, proxy_client: client.ApiClient, namespace: str
) -> None:
    """The proxy forwards the caller's token untouched: RBAC applies to the ServiceAccount."""
    core = client.CoreV1Api(proxy_client)
    rbac = client.RbacAuthorizationV1Api(proxy_client)
    core.create_namespaced_config_map(namespace, _config_map("readable", a="1"))
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "get-configmaps"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-gets-configmaps"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "get-configmaps",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    # the TokenRequest API, through the proxy too
    answer = core.create_namespaced_service_account_token(
        "reader", namespace, {"apiVersion": "authentication.k8s.io/v1", "spec": {}}
    )
    token = answer.status.token
    reader = client_for(
        fault_proxy.write_kubeconfig(fault_proxy.workdir / "reader.kubeconfig", token)
    )
    try:
        as_reader = client.CoreV1Api(reader)
        assert as_reader.read_namespaced_config_map("readable", namespace).data == {"a": "1"}
        with pytest.raises(ApiException) as caught:
            as_reader.list_namespaced_config_map(namespace)
        assert caught.value.status == 403
        message = json.loads(caught.value.body)["message"]
        assert f'"system:serviceaccount:{namespace}:reader" cannot list resource' in message
    finally:
        reader.close()


def _served(custom: client.CustomObjectsApi, group: str, namespace: str, plural: str) -> bool:
    try:
        # resourceVersion "0" is served by the watch cache: 429 until it is initialised
        custom.list_namespaced_custom_object(group, "v1", namespace, plural, resource_version="0")
    except ApiException as exc:
        if exc.status in (404, 429):
            return False
        raise
    return True


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.kubectl
def test_kubectl_sends_its_token_over_tls_and_sees_the_faults(
    fault_proxy: FaultProxy, namespace: str, tmp_path: Path
) -> None:
    """Go clients send a kubeconfig's token only over TLS: the proxy's HTTPS is what they need."""
    kubectl = Cli(_tool("kubectl"), fault_proxy.kubeconfig, tmp_path)
    assert fault_proxy.url.startswith("https://")
    whoami = json.loads(kubectl.run("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == "admin-token"
    fault_proxy.set_faults([{"code": 503, "verbs": ["list"], "message": "down"}])
    failed = kubectl.run("get", "configmaps", "-n", namespace, check=False)
    assert failed.returncode != 0
    assert "Error from server (ServiceUnavailable): down" in failed.stderr


def test_plain_http_serves_the_python_client(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    with FaultProxy.start(control_plane, tmp_path / "plain", tls=False) as proxy:
        assert proxy.url.startswith("http://")
        assert proxy.ca_file is None
        api_client = client_for(proxy.kubeconfig)
        try:
            assert client.CoreV1Api(api_client).read_namespace(namespace).metadata.name == namespace
        finally:
            api_client.close()
