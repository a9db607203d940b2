"""The watcher, watching at v1, with DeviceServers written at v2 and a CRD that changes.

On kubeemu and on the real kube-apiserver (``kube_api``): a change of a CRD's spec ends the
server's watches of its resources (kube-apiserver rebuilds their storage), as applying the
chart's CRDs before an upgrade does.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from devstack.stack import CRD_DIR
from tango_operator import crd
from tests.conftest import Cli
from tests.integration.watcher.conftest import StartWatcher, ds_key
from tests.support.crs import device_server
from tests.support.kube_api import KubeApi
from tests.support.workers import wait_for

pytestmark = pytest.mark.usefixtures("kube_api")


def _create_at_v2(kube_client: client.ApiClient, name: str) -> None:
    body = {**device_server(name), "apiVersion": f"{crd.GROUP}/v2"}
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP, "v2", "default", "deviceservers", body
    )


def test_the_watcher_sees_writes_at_v2_and_outlives_a_crd_change(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kube_api: KubeApi, kubectl: Cli
) -> None:
    watcher = start_watcher(kubeconfig=kube_api.kubeconfig)
    _create_at_v2(kube_client, "at-v2")
    wait_for(lambda: ds_key("at-v2") in watcher.offered, timeout=10, what="a CR written at v2")

    column = {"name": "Note", "type": "string", "jsonPath": ".metadata.name", "priority": 1}
    added = [{"op": "add", "path": "/spec/versions/1/additionalPrinterColumns/-", "value": column}]
    name = f"deviceservers.{crd.GROUP}"
    try:
        kubectl.run("patch", "crd", name, "--type=json", "-p", json.dumps(added))
        _create_at_v2(kube_client, "after-the-change")
        wait_for(
            lambda: ds_key("after-the-change") in watcher.offered,
            timeout=30,
            what="a CR written after the CRD changed",
        )
    finally:
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
