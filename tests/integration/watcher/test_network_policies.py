"""The watcher lists and watches NetworkPolicies only when the workers make them.

``TANGO_OPERATOR_NETWORK_POLICY`` on: a policy labelled as the operator's child and controlled
by a DeviceServer wakes its owner when it appears, is edited or deleted (drift is put back).
Off (the default): not one request about NetworkPolicies, so the chart grants the watcher
nothing for them.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from kubeemu.testing import KubeEmu
from tango_operator import crd
from tests.integration.watcher.conftest import StartWatcher, create_ds, ds_key
from tests.support.workers import wait_for
from watcher.main import RESOURCES

JsonDict = dict[str, Any]
MANAGED = {"app.kubernetes.io/managed-by": "tango-operator"}


def _policy(owner: JsonDict) -> JsonDict:
    return {
        "metadata": {
            "name": "a-network-policy",
            "labels": MANAGED,
            "ownerReferences": [
                {
                    "apiVersion": crd.API_VERSION,
                    "kind": "DeviceServer",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"]},
    }


def test_with_the_setting_a_policys_changes_wake_its_owner(
    start_watcher: StartWatcher, kube_client: client.ApiClient
) -> None:
    watcher = start_watcher(env={"TANGO_OPERATOR_NETWORK_POLICY": "true"})
    assert len(watcher.sources) == len(RESOURCES) + 1
    owner = create_ds(kube_client, "a")
    wait_for(lambda: watcher.offered == [ds_key("a")], timeout=10, what="the created CR")
    networking = client.NetworkingV1Api(kube_client)
    networking.create_namespaced_network_policy("default", _policy(owner))
    wait_for(lambda: len(watcher.offered) == 2, timeout=10, what="the new policy's owner")
    networking.patch_namespaced_network_policy(
        "a-network-policy", "default", {"spec": {"policyTypes": ["Ingress", "Egress"]}}
    )
    wait_for(lambda: len(watcher.offered) == 3, timeout=10, what="the edited policy's owner")
    networking.delete_namespaced_network_policy("a-network-policy", "default")
    wait_for(lambda: len(watcher.offered) == 4, timeout=10, what="the deleted policy's owner")
    assert set(watcher.offered) == {ds_key("a")}


def test_without_the_setting_no_request_about_policies(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kubeemu: KubeEmu
) -> None:
    mark = kubeemu.mark()
    watcher = start_watcher()
    assert len(watcher.sources) == len(RESOURCES)
    owner = create_ds(kube_client, "a")
    wait_for(lambda: watcher.offered == [ds_key("a")], timeout=10, what="the created CR")
    client.NetworkingV1Api(kube_client).create_namespaced_network_policy("default", _policy(owner))
    time.sleep(0.5)
    assert watcher.offered == [ds_key("a")]
    watched = {r["resource"] for r in kubeemu.audit(mark) if r["verb"] in ("list", "watch")}
    assert "deviceservers" in watched
    assert "networkpolicies" not in watched
