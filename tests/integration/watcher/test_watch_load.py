"""The watcher's watches under write load need no inactivity timeout.

Every custom resource created by several writers at once reaches the watcher through its open watch,
and no stream goes quiet (no ``inactive_or_dropped`` restart) although the inactivity timeout is the
production 70 s — a stalled stream would show as keys missing for that long.

The emulator sends a bookmark every second (the ``kubeemu`` fixture), so the writes span
several bookmark intervals; ConfigMaps labelled as the operator's children add the traffic
of the other sources.
"""

from __future__ import annotations

import threading
import time

from kubernetes import client
from prometheus_client import REGISTRY

from tests.integration.watcher.conftest import StartWatcher, create_ds, ds_key
from tests.support.workers import EVENTUALLY, wait_for
from watcher.main import RESOURCES

MANAGED = {"app.kubernetes.io/managed-by": "tango-operator"}


def _quiet_restarts() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "tango_operator_watch_restarts_total",
            {"resource": resource, "reason": "inactive_or_dropped"},
        )
        or 0.0
        for resource in ("deviceservers", "configmaps")
    )


def test_watches_under_write_load_deliver_everything_without_going_quiet(
    start_watcher: StartWatcher, kube_client: client.ApiClient
) -> None:
    watcher = start_watcher(env={"TANGO_OPERATOR_INACTIVITY_SECONDS": "70"})
    wait_for(lambda: len(watcher.sources) == len(RESOURCES), timeout=EVENTUALLY, what="the sources")
    restarts = _quiet_restarts()
    created: list[str] = []
    core = client.CoreV1Api(kube_client)

    def write(writer: int) -> None:
        deadline, count = time.monotonic() + 3, 0
        while time.monotonic() < deadline:
            name = f"w{writer}-{count}"
            if count % 2:
                core.create_namespaced_config_map(
                    "default", {"metadata": {"name": name, "labels": MANAGED}}
                )
            else:
                create_ds(kube_client, name)
                created.append(name)
            count += 1

    writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=30)
    wanted = {ds_key(name) for name in created}
    assert len(wanted) > 20
    wait_for(
        lambda: wanted <= set(watcher.offered),
        timeout=10,
        what=f"keys of {len(wanted)} CRs through the open watch",
    )
    assert _quiet_restarts() == restarts, "a watch went quiet and had to be restarted"
