"""NetworkPolicies of the custom resources' pods, a setting off by default (issue 16 item 7).

With ``Settings.network_policy`` (``TANGO_OPERATOR_NETWORK_POLICY``, chart value
``networkPolicy.enabled``) each DeviceServer gets a NetworkPolicy selecting its pod and each
DatabaseDS one for its MariaDB pod and one for its DataBaseds pod; an edited or deleted one
is put back. Turned off, the next reconcile deletes those it made (read first: only its own)
and, with none left in the child ledger, no request is about NetworkPolicies at all. The
requests of a reconcile are counted in the workers' client (``workers.kube.Kube``), so the
same checks run on kubeemu and on the real control plane (``kube_api``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from tango_operator import crd
from tango_operator.keys import Key
from tests.support.kube_api import KubeApi
from tests.support.operator import Operator, db_key, ds_key
from workers.kube import Kube
from workers.reconcile import by_kind
from workers.settings import Settings

JsonDict = dict[str, Any]
ON, OFF = Settings(network_policy=True), Settings()
MANAGED = "app.kubernetes.io/managed-by=tango-operator"
SERVER_POLICY = "motor-np-network-policy"
DATABASE_POLICIES = {"tango-np-network-policy", "tango-np-tangodb-network-policy"}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Scene:
    """A DeviceServer ``motor-np`` and a DatabaseDS ``tango-np``, not reconciled yet."""

    operator: Operator
    kube_client: client.ApiClient
    networking: client.NetworkingV1Api


@pytest.fixture
def scene(kube_api: KubeApi, operator: Operator, kube_client: client.ApiClient) -> Iterator[Scene]:
    spec = {
        "dsname": "Motor",
        "args": "np",
        "command": "/usr/local/bin/Motor",
        "databaseds": "tango-databaseds",
        "image": "registry.example/motor:1.0",
    }
    _create(kube_client, crd.Kind.DEVICE_SERVER, "motor-np", spec)
    _create(kube_client, crd.Kind.DATABASE_DS, "tango-np", {})
    api = client.NetworkingV1Api(kube_client)
    yield Scene(operator, kube_client, api)
    # the real server is shared: leave no policy behind (its garbage collector would, later)
    for policy in api.list_namespaced_network_policy("default").items:
        with contextlib.suppress(client.ApiException):
            api.delete_namespaced_network_policy(policy.metadata.name, "default")


def _create(kube_client: client.ApiClient, kind: crd.Kind, name: str, spec: JsonDict) -> None:
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        "default",
        kind.plural,
        {
            "apiVersion": crd.API_VERSION,
            "kind": kind.value,
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def _policies(networking: client.NetworkingV1Api) -> dict[str, client.V1NetworkPolicy]:
    listed = networking.list_namespaced_network_policy("default", label_selector=MANAGED)
    return {policy.metadata.name: policy for policy in listed.items}


def _requests(operator: Operator, key: Key, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``METHOD path`` of every request one reconcile of ``key`` makes (after the watch's view)."""
    operator.observe(key)
    made: list[str] = []
    original = Kube._call_once

    def counted(kube: Kube, method: str, path: str, *args: Any) -> JsonDict:
        made.append(f"{method} {path}")
        return original(kube, method, path, *args)

    with monkeypatch.context() as patch:
        patch.setattr(Kube, "_call_once", counted)
        by_kind.reconcile(key, operator.ports)
    return made


def _write(request: str) -> bool:
    return request.partition(" ")[0] in WRITES


def _policy(request: str) -> bool:
    return "/networkpolicies" in request


def _ports(rules: list[Any]) -> list[list[tuple[int, str]]]:
    return [[(p.port, p.protocol) for p in rule.ports] for rule in rules]


def test_network_policies_follow_the_setting(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    operator, kube_client, networking = scene.operator, scene.kube_client, scene.networking
    operator.settings = ON
    operator.settle(ds_key("motor-np"))
    operator.settle(db_key("tango-np"), until=None)

    policies = _policies(networking)
    assert set(policies) == {SERVER_POLICY, *DATABASE_POLICIES}
    policy = policies[SERVER_POLICY]
    owner = policy.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("DeviceServer", "motor-np", True)
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    selector = policy.spec.pod_selector.match_labels
    statefulset = client.AppsV1Api(kube_client).read_namespaced_stateful_set("motor-np", "default")
    assert selector == statefulset.spec.selector.match_labels
    selected = client.CoreV1Api(kube_client).list_namespaced_pod(
        "default", label_selector=",".join(f"{k}={v}" for k, v in selector.items())
    )
    assert [pod.metadata.name for pod in selected.items] == ["motor-np-0"]
    assert [rule._from for rule in policy.spec.ingress] == [None], "from anywhere"
    assert _ports(policy.spec.ingress) == [[(45450, "TCP"), (45460, "TCP"), (45470, "TCP")]]
    assert _ports(policy.spec.egress) == [
        [(53, "UDP"), (53, "TCP")],
        [(10000, "TCP"), (45450, "TCP"), (45460, "TCP"), (45470, "TCP")],
    ]
    database = policies["tango-np-network-policy"].spec
    assert database.egress[2].to[0].pod_selector.match_labels == (
        policies["tango-np-tangodb-network-policy"].spec.pod_selector.match_labels
    )
    assert _ports(policies["tango-np-tangodb-network-policy"].spec.ingress) == [[(3306, "TCP")]]

    # drift: a deleted policy is put back; an unchanged one is not written again
    networking.delete_namespaced_network_policy(SERVER_POLICY, "default")
    operator.reconcile(ds_key("motor-np"))
    assert SERVER_POLICY in _policies(networking)
    assert not [r for r in _requests(operator, ds_key("motor-np"), monkeypatch) if _write(r)]
    assert not [r for r in _requests(operator, db_key("tango-np"), monkeypatch) if _policy(r)]

    # turned off: the next reconcile reads and deletes each of them, once
    operator.settings = OFF
    made = _requests(operator, ds_key("motor-np"), monkeypatch)
    made += _requests(operator, db_key("tango-np"), monkeypatch)
    about_policies = sorted(r.rpartition("/")[0] for r in made if _policy(r))
    path = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"
    assert about_policies == [f"DELETE {path}"] * 3 + [f"GET {path}"] * 3
    assert _policies(networking) == {}
    # and then not one request more about them: the child ledger shows none
    assert not [r for r in _requests(operator, ds_key("motor-np"), monkeypatch) if _write(r)]
    assert not [r for r in _requests(operator, db_key("tango-np"), monkeypatch) if _policy(r)]


def test_off_by_default_no_policy_and_no_request_about_them(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = scene.operator
    assert operator.settings.network_policy is False
    made = _requests(operator, ds_key("motor-np"), monkeypatch)
    made += _requests(operator, db_key("tango-np"), monkeypatch)
    operator.settle(ds_key("motor-np"))
    assert made, "the reconciles wrote their children"
    assert not [r for r in made if _policy(r)]
    assert _policies(scene.networking) == {}


def test_a_policy_someone_else_put_under_that_name_is_left_alone(scene: Scene) -> None:
    operator, networking = scene.operator, scene.networking
    operator.settings = ON
    operator.settle(ds_key("motor-np"))
    # turned off; before the next reconcile the operator's policy is replaced by a user's
    operator.settings = OFF
    networking.delete_namespaced_network_policy(SERVER_POLICY, "default")
    theirs = {
        "metadata": {"name": SERVER_POLICY, "labels": {"app.kubernetes.io/managed-by": "me"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    networking.create_namespaced_network_policy("default", theirs)
    operator.reconcile(ds_key("motor-np"))
    kept = networking.read_namespaced_network_policy(SERVER_POLICY, "default")
    assert kept.metadata.labels == {"app.kubernetes.io/managed-by": "me"}
    assert "NetworkPolicy/" + SERVER_POLICY not in operator.ledger.records(ds_key("motor-np"))
