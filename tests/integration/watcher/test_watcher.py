"""The watcher against kubeemu and a real redis-server.

Events to keys and dedupe, dropped and compacted watches, throttling, the requeue-after pump, resync
after Redis lost everything, and the namespace label selector.

The watcher runs in-process (its producer threads, as the leader runs them); the keys it
offers are recorded, and what it sends is either recorded or read back from Redis as real
Celery messages. Leader election is in ``test_leader.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from prometheus_client import REGISTRY

from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.celery_app import make_publisher
from tango_operator.workqueue import EnqueueResult
from tests.integration.watcher.conftest import (
    StartWatcher,
    create_ds,
    ds_key,
    queued_members,
    sent_keys,
)
from tests.support.workers import EVENTUALLY, wait_for

MANAGED = {"app.kubernetes.io/managed-by": "tango-operator"}


def _restarts(resource: str, reason: str) -> float:
    labels = {"resource": resource, "reason": reason}
    return REGISTRY.get_sample_value("tango_operator_watch_restarts_total", labels) or 0.0


def _owner_reference(owner: dict[str, object]) -> dict[str, object]:
    meta = owner["metadata"]
    assert isinstance(meta, dict)
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DeviceServer",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def test_events_map_to_keys_and_dedupe(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kubeemu: KubeEmu
) -> None:
    kubeemu.controllers(statefulset="off")  # the test alone writes StatefulSet status
    watcher = start_watcher()
    custom = client.CustomObjectsApi(kube_client)
    owner = create_ds(kube_client, "a")
    wait_for(lambda: ds_key("a") in watcher.offered, timeout=10, what="the created CR")
    time.sleep(0.3)
    assert watcher.offered == [ds_key("a")]
    assert watcher.sent == [ds_key("a")], "exactly one message for a new key"

    custom.patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "a", {"status": {"state": "Waiting"}}
    )
    time.sleep(0.5)
    assert watcher.offered == [ds_key("a")], "a status-only change produces no key"

    custom.patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "deviceservers", "a", {"spec": {"image": "j"}}
    )
    wait_for(lambda: len(watcher.offered) == 2, timeout=10, what="the spec change's key")
    assert watcher.offered[1] == ds_key("a")
    assert watcher.results[-1] is EnqueueResult.DUPLICATE
    assert watcher.sent == [ds_key("a")], "still queued: no second message"

    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_stateful_set(
        "default",
        {
            "metadata": {
                "name": "a",
                "labels": MANAGED,
                "ownerReferences": [_owner_reference(owner)],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "serviceName": "a",
                "template": {
                    "metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "ds", "image": "i"}]},
                },
            },
        },
    )
    wait_for(lambda: len(watcher.offered) == 3, timeout=10, what="the child's owner key")
    # a status change that leaves readiness as it was concerns nobody (the child ledger)
    apps.patch_namespaced_stateful_set_status("a", "default", {"status": {"replicas": 1}})
    time.sleep(0.5)
    assert len(watcher.offered) == 3
    apps.patch_namespaced_stateful_set_status(
        "a",
        "default",
        {
            "status": {
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
            }
        },
    )
    wait_for(lambda: len(watcher.offered) == 4, timeout=10, what="the child's readiness change")
    assert set(watcher.offered) == {ds_key("a")}

    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map(  # managed, but owned by nothing of ours
        "default", {"metadata": {"name": "orphan", "labels": MANAGED}}
    )
    core.create_namespaced_config_map(  # ours, but not labelled: filtered server-side
        "default",
        {"metadata": {"name": "unlabelled", "ownerReferences": [_owner_reference(owner)]}},
    )
    time.sleep(0.5)
    assert len(watcher.offered) == 4

    custom.delete_namespaced_custom_object(crd.GROUP, crd.VERSION, "default", "deviceservers", "a")
    wait_for(lambda: len(watcher.offered) >= 5, timeout=10, what="the deletion's key")
    assert watcher.offered[4] == ds_key("a")


def test_a_child_event_puts_its_owner_ahead_of_new_resources_of_its_namespace(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kubeemu: KubeEmu, redis: RedisServer
) -> None:
    """Fair dispatch: a resource being worked on is finished before new ones are started."""
    kubeemu.controllers(statefulset="off")
    watcher = start_watcher(
        env={"TANGO_OPERATOR_DISPATCH": "fair", "TANGO_OPERATOR_DISPATCH_WINDOW": "1"}
    )
    lane = "tango-operator:pending:default"

    def waiting() -> list[str]:
        return [member.decode() for member in redis_client.lrange(lane, 0, -1)]

    with redis.client() as redis_client:
        for name in ("a", "b", "c"):  # no worker: a is sent, b and c wait in the lane
            create_ds(kube_client, name)
        wait_for(
            lambda: waiting() == [ds_key("b").encode(), ds_key("c").encode()],
            timeout=10,
            what="b and c waiting in their lane, in order",
        )
        owner = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "deviceservers", "c"
        )
        client.CoreV1Api(kube_client).create_namespaced_config_map(
            "default",
            {
                "metadata": {
                    "name": "c",
                    "labels": MANAGED,
                    "ownerReferences": [_owner_reference(owner)],
                }
            },
        )
        wait_for(
            lambda: waiting() == [ds_key("c").encode(), ds_key("b").encode()],
            timeout=10,
            what="c moved ahead of b by its child's event",
        )
    assert watcher.offered[-1] == ds_key("c")


def test_dropped_watch_resumes_and_misses_nothing(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kubeemu: KubeEmu
) -> None:
    watcher = start_watcher()
    create_ds(kube_client, "before")
    wait_for(lambda: ds_key("before") in watcher.offered, timeout=10, what="first CR")
    source = next(s for s in watcher.sources if s.resource.plural == "deviceservers")
    relists = source.relists
    assert kubeemu.drop_watches() >= 1
    create_ds(kube_client, "after-drop")
    wait_for(lambda: ds_key("after-drop") in watcher.offered, timeout=10, what="CR after drop")
    assert source.relists == relists, "a dropped watch resumes from its resourceVersion"
    assert watcher.offered.count(ds_key("before")) == 1, "nothing replayed"


@pytest.fixture
def quiet_kube_client(tmp_path: Path) -> Iterator[tuple[KubeEmu, client.ApiClient]]:
    """An emulator without bookmarks.

    A watch's resourceVersion stays where its last event left it, so compaction makes its resume 410
    (stopped after the watcher: set up first).
    """
    with KubeEmu.start(tmp_path / "quiet", ["--bookmark-interval", "3600"]) as emulator:
        api_client = config.new_client_from_config(config_file=str(emulator.kubeconfig))
        install_crds(api_client)
        try:
            yield emulator, api_client
        finally:
            api_client.close()


def test_compacted_history_relists_and_misses_nothing(
    quiet_kube_client: tuple[KubeEmu, client.ApiClient], start_watcher: StartWatcher
) -> None:
    emulator, api_client = quiet_kube_client
    watcher = start_watcher(kubeconfig=emulator.kubeconfig)
    create_ds(api_client, "before")
    wait_for(lambda: ds_key("before") in watcher.offered, timeout=10, what="first CR")
    source = next(s for s in watcher.sources if s.resource.plural == "deviceservers")
    relists = source.relists
    throttled = _restarts("deviceservers", "http_429")

    # the watch is throttled (429 + Retry-After) while a CR is created and the history
    # compacted: the resume needs history that no longer exists
    emulator.set_faults([{"code": 429, "verbs": ["watch"], "resources": ["deviceservers"]}])
    emulator.drop_watches()
    create_ds(api_client, "in-the-gap")
    emulator.compact()
    wait_for(
        lambda: _restarts("deviceservers", "http_429") > throttled,
        timeout=10,
        what="a throttled watch",
    )
    emulator.clear_faults()
    wait_for(lambda: source.relists > relists, timeout=10, what="a relist after 410 Gone")
    # (the other sources' resumes were 410 too: their relists resync, which also finds it)
    wait_for(lambda: ds_key("in-the-gap") in watcher.offered, timeout=10, what="gap CR")
    create_ds(api_client, "after")
    wait_for(lambda: ds_key("after") in watcher.offered, timeout=10, what="CR after relist")


def test_pump_sends_due_keys(start_watcher: StartWatcher, redis: RedisServer) -> None:
    """Also without the CRDs: their sources never list, the others go on after the deadline."""
    watcher = start_watcher(send=make_publisher(redis.url))
    assert {s.name for s in watcher.sources if s.relists == 0} >= {
        "deviceservers@*",
        "databaseds@*",
    }, "no CRDs in this test: those sources cannot list"
    queue = watcher.queue
    member = ds_key("later").encode()
    queue.redis.zadd(queue.prefix + "delayed", {member: time.time() - 1})
    wait_for(
        lambda: ds_key("later") in sent_keys(redis), timeout=EVENTUALLY, what="the pumped message"
    )
    assert member in queued_members(redis)
    assert not queue.redis.zcard(queue.prefix + "delayed")


@pytest.mark.slow
def test_a_message_lost_on_its_way_to_a_worker_is_sent_again(
    start_watcher: StartWatcher, redis: RedisServer
) -> None:
    """Marked queued a minute ago, its message nowhere: sent again within seconds.

    Not after the ten minutes that make a mark stale.
    """
    watcher = start_watcher(send=make_publisher(redis.url))
    queue = watcher.queue
    member = ds_key("lost").encode()
    queue.redis.zadd(queue.queued_name, {member: time.time() - 60})
    wait_for(lambda: ds_key("lost") in sent_keys(redis), timeout=15, what="the message sent again")
    assert member in queued_members(redis), "marked queued afresh"


RESYNC_SECONDS = 1
# a few periods and a margin for a loaded machine, far below the hour of the default period
RESYNC_WITHIN = RESYNC_SECONDS * 5 + 20


def _resyncs() -> float:
    return REGISTRY.get_sample_value("tango_operator_resyncs_total") or 0.0


def test_resync_refills_a_flushed_redis(
    start_watcher: StartWatcher, kube_client: client.ApiClient, redis: RedisServer
) -> None:
    for name in ("x", "y"):
        create_ds(kube_client, name)
    start_watcher(
        env={"TANGO_OPERATOR_RESYNC_SECONDS": str(RESYNC_SECONDS)}, send=make_publisher(redis.url)
    )
    wanted = {ds_key("x"), ds_key("y")}
    wait_for(lambda: wanted <= set(sent_keys(redis)), timeout=EVENTUALLY, what="the first messages")
    # two whole resyncs later (counted, so the window cannot pass without one), nothing more
    resyncs = _resyncs()
    wait_for(lambda: _resyncs() >= resyncs + 2, timeout=RESYNC_WITHIN, what="two resyncs")
    assert sorted(sent_keys(redis)) == sorted(wanted), "resync sends nothing already queued"
    redis.client().flushall()
    # the resync period is RESYNC_SECONDS and nothing else sends these keys again; an hour-long
    # period (the other tests) would not refill them within the wait
    wait_for(
        lambda: wanted <= set(sent_keys(redis)),
        timeout=RESYNC_WITHIN,
        what="messages after FLUSHALL",
    )
    assert {key.encode() for key in wanted} <= queued_members(redis)


def test_namespace_label_selector(
    start_watcher: StartWatcher, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "in", "labels": {"tango": "yes"}}})
    core.create_namespace({"metadata": {"name": "out"}})
    for namespace in ("in", "out"):
        create_ds(kube_client, "ds", namespace)
    watcher = start_watcher(env={"TANGO_OPERATOR_NAMESPACE_SELECTOR": "tango=yes"})
    inside, outside = ds_key("ds", "in"), ds_key("ds", "out")
    wait_for(lambda: inside in watcher.offered, timeout=10, what="the selected namespace's CR")
    time.sleep(0.5)
    assert outside not in watcher.offered
    core.patch_namespace("out", {"metadata": {"labels": {"tango": "yes"}}})
    wait_for(
        lambda: outside in watcher.offered,
        timeout=10,
        what="the CR of a namespace that starts matching",
    )

    def counted(namespace: str) -> float:
        labels = {"kind": "DeviceServer", "namespace": namespace, "state": "Unknown"}
        return REGISTRY.get_sample_value("tango_operator_custom_resources", labels) or 0.0

    wait_for(lambda: counted("out") == 1, timeout=10, what="the newly selected CR counted")
    # the namespace stops matching: its CRs are no longer the operator's to count
    core.patch_namespace("out", {"metadata": {"labels": {"tango": "no"}}})
    wait_for(lambda: counted("out") == 0, timeout=10, what="the deselected CR uncounted")
    assert counted("in") == 1


def test_no_key_once_leadership_is_lost(
    start_watcher: StartWatcher, kube_client: client.ApiClient
) -> None:
    watcher = start_watcher()
    create_ds(kube_client, "led")
    wait_for(lambda: ds_key("led") in watcher.offered, timeout=10, what="a key while leading")
    assert watcher._stop is not None
    watcher._stop.set()
    watcher.on_event("DeviceServer", "ADDED", create_ds(kube_client, "late"))
    assert watcher.enqueue(ds_key("late")) is None
    assert ds_key("late") not in watcher.offered
    assert ds_key("late") not in watcher.sent


def test_a_failed_resync_is_tried_again_soon(
    start_watcher: StartWatcher, kube_client: client.ApiClient, kubeemu: KubeEmu, redis: RedisServer
) -> None:
    create_ds(kube_client, "later")
    watcher = start_watcher(send=make_publisher(redis.url))  # resync period: an hour
    wait_for(lambda: ds_key("later") in sent_keys(redis), timeout=10, what="the first message")
    redis.client().flushall()  # what the resync is for: Redis lost the key
    kubeemu.set_faults([{"code": 500, "verbs": ["list"], "resources": ["deviceservers"]}])
    watcher.resync()  # as after a relist; its list fails
    time.sleep(0.3)
    assert ds_key("later") not in sent_keys(redis)
    kubeemu.clear_faults()
    wait_for(
        lambda: ds_key("later") in sent_keys(redis),
        timeout=10,
        what="the resync tried again within seconds, not a period later",
    )
