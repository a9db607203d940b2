"""The benchmarks' ``StateWatch`` (tests/support/crs.py) against kubeemu and the official client.

The benchmarks time floods by it (``bench_reconcile``, ``bench_fairness``), so it must see
what a LIST would: every DeviceServer's state as it changes, per namespace, and a deleted
one gone.
"""

from __future__ import annotations

import time

from kubernetes import client

from tango_operator import crd
from tests.support.crs import StateWatch, create_device_server


def _set_state(api_client: client.ApiClient, namespace: str, name: str, state: str) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, namespace, "deviceservers", name, {"status": {"state": state}}
    )


def test_it_follows_states_per_namespace_and_deletions(kube_client: client.ApiClient) -> None:
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": "other"}})
    for name in ("a", "b", "c"):
        create_device_server(kube_client, name)
    _set_state(kube_client, "default", "a", "Running")  # before the watch: from its list
    create_device_server(kube_client, "d", "other")

    with StateWatch(kube_client) as states:
        listed = time.monotonic()
        assert states.count() == 1
        assert len(states.first_running()) == 1
        assert states.first_running()[0] <= listed, "Running when listed"
        assert states.not_in("Running") == {"default/b": None, "default/c": None, "other/d": None}

        _set_state(kube_client, "default", "b", "Running")
        _set_state(kube_client, "other", "d", "Running")
        _set_state(kube_client, "default", "c", "Building")
        assert states.wait_for(lambda s: s.count(state="Building") == 1, timeout=10)
        assert states.count() == 3  # patched before c's: their events came first
        assert states.count("default") == 2
        assert states.count("other") == 1
        assert states.count("other", state="Building") == 0
        assert len(states.first_running()) == 3
        assert all(when > listed for when in sorted(states.first_running())[1:])

        client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", "a"
        )
        assert states.wait_for(lambda s: s.count("default") == 1, timeout=10)
        assert states.not_in("Running") == {"default/c": "Building"}
        assert not states.wait_for(lambda s: s.count() == 4, timeout=0.3)
