"""The controllers (``kubeemu.controllers``): every work item taken is worked, and a
StatefulSet counts and scales the pods it owns, not those of its namespace.

On an ``Api`` of its own with the controllers running in an event loop. Far more
StatefulSets than one turn's batch are created at once, and each one must end rolled out
and ready (instant mode): a lost item would stay pending for ever, its StatefulSet never
ready (the reconcile benchmark once waited 900 s on one). A StatefulSet finds its pods
through the owner index, not by scanning the namespace (which made the emulator the limit
of a 2,000-CR flood in one namespace): a pod with its name pattern and labels that it does
not own is neither counted nor scaled away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubeemu import controllers
from kubeemu.api import Api, WriteOptions
from kubeemu.registry import Registry
from kubeemu.store import Store


def _statefulset(name: str, replicas: int = 1) -> dict[str, object]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "serviceName": name,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "x"}]},
            },
        },
    }


def test_more_statefulsets_than_a_batch_all_become_ready() -> None:
    api = Api(Store(), Registry())
    namespaces = api.registry.get("", "v1", "namespaces")
    statefulsets = api.registry.get("apps", "v1", "statefulsets")
    assert namespaces is not None
    assert statefulsets is not None
    options = WriteOptions(field_manager="test")
    api.create(namespaces, "", {"metadata": {"name": "default"}}, options)
    count = 3 * controllers.BATCH + 5
    names = [f"sts-{index:03d}" for index in range(count)]

    async def scenario() -> list[str]:
        running = controllers.Controllers(api)
        running.start()
        for name in names:  # no await in between: all queued before the first turn
            api.create(statefulsets, "default", _statefulset(name), options)
        try:
            for _ in range(200):
                await asyncio.sleep(0.01)
                not_ready = [
                    name
                    for name in names
                    if (api.get(statefulsets, "default", name).get("status") or {}).get(
                        "readyReplicas"
                    )
                    != 1
                ]
                if not not_ready:
                    break
            return not_ready
        finally:
            await running.stop()

    assert asyncio.run(scenario()) == []


def test_a_statefulset_counts_and_scales_only_the_pods_it_owns() -> None:
    api = Api(Store(), Registry())
    namespaces = api.registry.get("", "v1", "namespaces")
    statefulsets = api.registry.get("apps", "v1", "statefulsets")
    pods = api.registry.get("", "v1", "pods")
    assert namespaces is not None
    assert statefulsets is not None
    assert pods is not None
    options = WriteOptions(field_manager="test")
    api.create(namespaces, "", {"metadata": {"name": "default"}}, options)
    stranger: dict[str, Any] = {  # a's name pattern and labels, no owner
        "metadata": {"name": "a-5", "namespace": "default", "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "main", "image": "x"}]},
    }
    api.create(pods, "default", stranger, options)

    def status(name: str) -> dict[str, Any]:
        found: dict[str, Any] = api.get(statefulsets, "default", name).get("status") or {}
        return found

    async def until(done: Callable[[], bool]) -> bool:
        for _ in range(200):
            if done():
                return True
            await asyncio.sleep(0.01)
        return False

    async def scenario() -> None:
        running = controllers.Controllers(api)
        running.start()
        try:
            api.create(statefulsets, "default", _statefulset("a", replicas=2), options)
            api.create(statefulsets, "default", _statefulset("b"), options)
            assert await until(
                lambda: (
                    status("a").get("readyReplicas") == 2 and status("b").get("readyReplicas") == 1
                )
            )
            assert status("a")["replicas"] == 2
            assert status("b")["replicas"] == 1

            scaled = api.get(statefulsets, "default", "a")
            scaled["spec"]["replicas"] = 1
            api.update(statefulsets, "default", "a", scaled, None, options)
            assert await until(lambda: status("a").get("replicas") == 1)
        finally:
            await running.stop()

    asyncio.run(scenario())
    kept = api.get(pods, "default", "a-5")
    assert not kept["metadata"].get("deletionTimestamp")
    assert not kept["metadata"].get("ownerReferences")
