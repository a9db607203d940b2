"""The controllers' work queue (``kubeemu.controllers``): every item taken is worked.

On an ``Api`` of its own with the controllers running in an event loop: far more
StatefulSets than one turn's batch are created at once, and each one must end rolled out
and ready (instant mode). A lost item would stay pending for ever, its StatefulSet never
ready: the reconcile benchmark once waited 900 s on one.
"""

from __future__ import annotations

import asyncio

from kubeemu import controllers
from kubeemu.api import Api, WriteOptions
from kubeemu.registry import Registry
from kubeemu.store import Store


def _statefulset(name: str) -> dict[str, object]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
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
