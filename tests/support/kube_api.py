"""One API server for a test that runs on both: kubeemu, or the session's real control plane.

A test opts in by requesting the ``kube_api`` fixture (directly or through ``kube_client``
after requesting it); ``tests/conftest.py`` then runs it once per server ``--kube-api``
selects, with ids ``[kubeemu]`` and ``[real]``. On kubeemu the test gets a fresh emulator; on
the real server it shares the session's control plane, so ``clean_namespace`` puts the
namespace it used back as a new one found it (custom resources released from their
finalizers and deleted, every object the operator's life makes removed, pods gone) before the
next test.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from devstack.controlplane import ControlPlane
from kubeemu.testing import KubeEmu

KEPT = {
    "configmaps": {"kube-root-ca.crt"},
    "services": {"kubernetes"},
    "serviceaccounts": {"default"},
}
"""What a real server's controllers put into every namespace: left where it is."""


@dataclass(frozen=True)
class KubeApi:
    """The server of one run of a test: its name, kubeconfig and the handle behind it."""

    name: str
    kubeconfig: Path
    url: str
    emulator: KubeEmu | None = None
    plane: ControlPlane | None = None

    @property
    def real(self) -> bool:
        return self.plane is not None


def _custom_resources(api_client: client.ApiClient) -> list[tuple[str, str, str]]:
    """(group, version, plural) of every namespaced custom resource the server serves."""
    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    return [
        (
            item.spec.group,
            next(v.name for v in item.spec.versions if v.storage),
            item.spec.names.plural,
        )
        for item in crds
        if item.spec.scope == "Namespaced"
    ]


def clean_namespace(api_client: client.ApiClient, namespace: str, timeout: float = 60) -> None:
    """Delete what a test left in ``namespace`` of a shared server and wait until it is gone."""
    custom = client.CustomObjectsApi(api_client)
    kinds = _custom_resources(api_client)
    for group, version, plural in kinds:
        for item in custom.list_namespaced_custom_object(group, version, namespace, plural)[
            "items"
        ]:
            name = item["metadata"]["name"]
            with contextlib.suppress(client.ApiException):
                custom.patch_namespaced_custom_object(
                    group, version, namespace, plural, name, {"metadata": {"finalizers": None}}
                )
            with contextlib.suppress(client.ApiException):
                custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.delete_collection_namespaced_stateful_set(namespace)
    apps.delete_collection_namespaced_deployment(namespace)
    for resource, lister, deleter in (
        ("services", core.list_namespaced_service, core.delete_namespaced_service),
        ("configmaps", core.list_namespaced_config_map, core.delete_namespaced_config_map),
        ("secrets", core.list_namespaced_secret, core.delete_namespaced_secret),
        ("events", core.list_namespaced_event, core.delete_namespaced_event),
    ):
        for item in lister(namespace).items:
            if item.metadata.name not in KEPT.get(resource, set()):
                with contextlib.suppress(client.ApiException):
                    deleter(item.metadata.name, namespace)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    deadline = time.monotonic() + timeout
    while True:
        left = [
            f"{plural}/{item['metadata']['name']}"
            for group, version, plural in kinds
            for item in custom.list_namespaced_custom_object(group, version, namespace, plural)[
                "items"
            ]
        ] + [f"pods/{pod.metadata.name}" for pod in core.list_namespaced_pod(namespace).items]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{namespace} not clean after {timeout}s: {left}")
        time.sleep(0.2)


def delete_namespace(api_client: client.ApiClient, namespace: str, timeout: float = 120) -> None:
    """Delete ``namespace`` and wait until kube-controller-manager has emptied and removed it."""
    core = client.CoreV1Api(api_client)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(namespace)
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespace(namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {namespace} still there after {timeout}s")
        time.sleep(0.2)
