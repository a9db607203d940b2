"""The resync: every custom resource's key, enqueued again.

Lists DeviceServers and DatabaseDSs from the Kubernetes API (all namespaces, or each
configured one) and hands every key to ``enqueue`` (``watcher.enqueue``), whose dedupe makes
it cheap. Run every resync period and after every relist by ``watcher.main``, so a flushed
Redis or a lost message costs latency, never correctness (docs/architecture.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from tango_operator import resources
from tango_operator.keys import Key
from watcher import metrics
from watcher.kube import Kube

log = logging.getLogger(__name__)
REQUEST_TIMEOUT = (5.0, 60.0)


def custom_resource_keys(kube: Kube, namespaces: Sequence[str]) -> list[Key]:
    """Every DeviceServer and DatabaseDS in ``namespaces`` (empty: all namespaces)."""
    keys: list[Key] = []
    for resource_type in resources.CUSTOM_RESOURCES:
        for namespace in namespaces or (None,):
            listed = kube.get(resource_type.path(namespace), timeout=REQUEST_TIMEOUT)
            for item in listed.get("items") or []:
                meta = item.get("metadata") or {}
                if meta.get("namespace") and meta.get("name"):
                    keys.append(Key(resource_type.kind, meta["namespace"], meta["name"]))
    return keys


def resync(
    kube: Kube,
    namespaces: Sequence[str],
    enqueue: Callable[[Key], object],
    selected: Callable[[str], bool] = lambda _namespace: True,
) -> int:
    """Enqueue the key of every custom resource in a selected namespace; how many."""
    count = 0
    for key in custom_resource_keys(kube, namespaces):
        if selected(key.namespace):
            enqueue(key)
            count += 1
    metrics.RESYNCS.inc()
    metrics.LAST_RESYNC.set(time.time())
    return count


def run_resync(resync_now: Callable[[], object], period: float, stop: threading.Event) -> None:
    """Call ``resync_now`` every ``period`` seconds until ``stop`` is set."""
    while not stop.wait(period):
        resync_now()
