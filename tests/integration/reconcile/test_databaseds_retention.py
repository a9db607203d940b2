"""The TANGO DB's data outlives its DatabaseDS unless told otherwise (issue 16 item 6).

With ``usePV`` the DatabaseDS owns a PersistentVolumeClaim; by default
(``persistentVolumeClaimRetentionPolicy.whenDeleted: Retain``) the operator's finalizer holds
the deletion until the claim's ownerReference is gone, so the garbage collector leaves it, and
a DatabaseDS of the same name adopts it again. ``Delete`` keeps today's ownership: the claim
goes with its DatabaseDS. On kubeemu and on the real control plane (``kube_api``).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tango_operator import crd
from tests.support.kube_api import KubeApi
from tests.support.operator import Operator, db_key

JsonDict = dict[str, Any]
CLAIM = "tango-kept-tangodb-storage"


def _database(policy: str | None = None) -> JsonDict:
    spec: JsonDict = {"usePV": True, "tangoDBStorageClass": "standard"}
    if policy is not None:
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": policy}
    return {
        "apiVersion": crd.API_VERSION,
        "kind": "DatabaseDS",
        "metadata": {"name": "tango-kept"},
        "spec": spec,
    }


def _custom(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


def _create(kube_client: client.ApiClient, body: JsonDict) -> str:
    created = _custom(kube_client).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "databaseds", body
    )
    return str(created["metadata"]["uid"])


def _delete(operator: Operator, kube_client: client.ApiClient) -> None:
    _custom(kube_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "databaseds", "tango-kept"
    )
    operator.reconcile(db_key("tango-kept"))  # the deletion's reconcile (finalizer, if any)
    assert not [
        item
        for item in _custom(kube_client).list_namespaced_custom_object(
            crd.GROUP, crd.VERSION, "default", "databaseds"
        )["items"]
        if item["metadata"]["name"] == "tango-kept"
    ], "the DatabaseDS is gone"


def _owners(kube_client: client.ApiClient) -> list[str]:
    claim = client.CoreV1Api(kube_client).read_namespaced_persistent_volume_claim(CLAIM, "default")
    return [owner.uid for owner in claim.metadata.owner_references or []]


def test_the_claim_is_kept_by_default_and_adopted_again(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    first = _create(kube_client, _database())
    operator.settle(db_key("tango-kept"), until=None)
    resource = _custom(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "databaseds", "tango-kept"
    )
    assert resource["metadata"]["finalizers"] == [crd.FINALIZER], "holds the deletion"
    assert _owners(kube_client) == [first]

    _delete(operator, kube_client)
    assert _owners(kube_client) == [], "no owner left for the garbage collector to follow"
    events = client.CoreV1Api(kube_client).list_namespaced_event(
        "default", field_selector="involvedObject.name=tango-kept"
    )
    assert "ClaimRetained" in {event.reason for event in events.items}

    second = _create(kube_client, _database())
    operator.settle(db_key("tango-kept"), until=None)
    assert _owners(kube_client) == [second], "the same claim, and its data, adopted again"


def test_delete_lets_the_claim_go_with_its_databaseds(
    kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient
) -> None:
    uid = _create(kube_client, _database("Delete"))
    operator.settle(db_key("tango-kept"), until=None)
    resource = _custom(kube_client).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, "default", "databaseds", "tango-kept"
    )
    assert crd.FINALIZER not in (resource["metadata"].get("finalizers") or [])
    _delete(operator, kube_client)
    # collected with its owner (kubeemu's collector acts at once), or still owned by the
    # deleted DatabaseDS, for kube-controller-manager's collector to remove
    if not _claim_gone(kube_client):
        assert _owners(kube_client) == [uid]


def _claim_gone(kube_client: client.ApiClient) -> bool:
    try:
        _owners(kube_client)
    except client.ApiException as exc:
        return bool(exc.status == 404)
    return False
