"""The workers' owner copies (``workers.reconcile.owners``) against kubeemu and a real Redis.

A reconcile reads its custom resource from the watcher's copy and not from the API; its
own writes move the copy forward; a copy that is behind (a conflict) or that outlived its
object (gone) is dropped by the failing write, so the next attempt reads the API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from devstack.redis_server import RedisServer
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.errors import PermanentError, TemporaryError
from tango_operator.keys import Key
from tango_operator.workqueue.ledger import RedisChildLedger
from tests.support.crs import create_device_server
from workers.kube import Kube
from workers.reconcile.owners import OwnerCopies

KIND = crd.Kind.DEVICE_SERVER
KEY = Key(KIND.value, "default", "motor")


@pytest.fixture
def ledger(redis: RedisServer) -> Iterator[RedisChildLedger]:
    connection = redis.client()
    try:
        yield RedisChildLedger(connection)
    finally:
        connection.close()


def _reads_of_the_cr(kubeemu: KubeEmu, since: int) -> int:
    return sum(
        1
        for record in kubeemu.audit(since)
        if record["verb"] == "get" and "deviceservers/motor" in record["path"]
    )


def test_reads_come_from_the_copy_and_writes_move_it_forward(
    kubeemu: KubeEmu, kube_client: client.ApiClient, ledger: RedisChildLedger
) -> None:
    created = create_device_server(kube_client, "motor")
    copies = OwnerCopies(Kube(kube_client), ledger)
    mark = kubeemu.mark()
    assert copies.get_custom(KIND, "default", "motor") is not None  # no copy yet: the API
    assert _reads_of_the_cr(kubeemu, mark) == 1

    ledger.observe_owner(KEY, created)  # the watcher's ADDED
    mark = kubeemu.mark()
    read = copies.get_custom(KIND, "default", "motor")
    assert read is not None
    assert read["metadata"]["uid"] == created["metadata"]["uid"]
    assert _reads_of_the_cr(kubeemu, mark) == 0, "served from the copy"

    written = copies.set_finalizers(read, [crd.FINALIZER])
    again = copies.get_custom(KIND, "default", "motor")
    assert again is not None
    assert again["metadata"]["finalizers"] == [crd.FINALIZER], "the worker's own write"
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    copies.merge_patch(again, {"status": {"state": "Running"}}, subresource="status")
    latest = copies.get_custom(KIND, "default", "motor")
    assert latest is not None
    assert latest["status"] == {"state": "Running"}
    assert _reads_of_the_cr(kubeemu, mark) == 0


def test_a_copy_that_is_behind_is_dropped_by_the_conflict(
    kube_client: client.ApiClient, ledger: RedisChildLedger
) -> None:
    created = create_device_server(kube_client, "motor")
    ledger.observe_owner(KEY, created)
    kube = Kube(kube_client)
    kube.set_finalizers(created, ["someone.else/finalizer"])  # not seen by the "watcher" yet
    copies = OwnerCopies(kube, ledger)
    stale = copies.get_custom(KIND, "default", "motor")
    assert stale is not None
    assert not stale["metadata"].get("finalizers")
    with pytest.raises(TemporaryError):
        copies.set_finalizers(stale, [crd.FINALIZER])
    assert ledger.owner_copy(KEY).known is False
    fresh = copies.get_custom(KIND, "default", "motor")  # the retry reads the API
    assert fresh is not None
    assert fresh["metadata"]["finalizers"] == ["someone.else/finalizer"]
    copies.set_finalizers(fresh, ["someone.else/finalizer", crd.FINALIZER])


def test_a_copy_that_outlived_its_object_is_dropped(
    kube_client: client.ApiClient, ledger: RedisChildLedger
) -> None:
    created = create_device_server(kube_client, "motor")
    ledger.observe_owner(KEY, created)
    client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", KIND.plural, "motor"
    )  # the DELETED event not recorded (Redis trouble in the watcher)
    copies = OwnerCopies(Kube(kube_client), ledger)
    ghost = copies.get_custom(KIND, "default", "motor")
    assert ghost is not None
    with pytest.raises(PermanentError):
        copies.merge_patch(ghost, {"status": {"state": "Running"}}, subresource="status")
    assert copies.get_custom(KIND, "default", "motor") is None, "the API says it is gone"


def test_a_tombstone_answers_gone_without_a_read(
    kubeemu: KubeEmu, kube_client: client.ApiClient, ledger: RedisChildLedger
) -> None:
    ledger.observe_owner(KEY, None)
    copies = OwnerCopies(Kube(kube_client), ledger)
    mark = kubeemu.mark()
    assert copies.get_custom(KIND, "default", "motor") is None
    assert _reads_of_the_cr(kubeemu, mark) == 0
