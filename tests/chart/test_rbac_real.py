"""The chart's RBAC enforced by kube-apiserver itself: the operator runs as its ServiceAccounts.

The chart's ServiceAccounts, ClusterRoles/Roles and bindings are created on the real control
plane with the real kubectl; the watcher and the workers then authenticate with tokens of
those ServiceAccounts (the TokenRequest API, as a projected token volume gets them), so any
permission the chart forgot is a 403 from Kubernetes, not from an evaluator written here.
The CRs live the same life as in ``test_rbac.py`` (create → Running → spec update → delete;
the local node reports the pods ready). Then kube-apiserver's own audit log must show no
request of either ServiceAccount refused, and every (group, resource, verb) the chart grants
used — the same two-sided check as the kubeemu run, on the real authorizer. Both RBAC
layouts are run, and the grants of ``networkPolicy.enabled``; turning that value off, as a
``helm upgrade`` does (the roles, then the workers), leaves no NetworkPolicy behind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from devstack.controlplane import ControlPlane
from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from tango_operator import crd
from tango_operator.keys import Key
from tests.chart.chart import JsonDict, find, render
from tests.chart.rbac import Grants
from tests.chart.test_rbac import (
    COMPONENTS,
    MODES,
    NAMESPACE,
    RARELY_USED,
    RELEASE_NAMESPACE,
    Life,
    run_the_operator_through_a_life,
)
from tests.conftest import Cli, _tool
from tests.support.kube_api import clean_namespace, delete_namespace
from tests.support.operator import Operator
from tests.support.workers import wait_for
from workers.kube import Kube
from workers.reconcile.owners import OwnerCopies
from workers.reconcile.ports import Ports
from workers.settings import Settings

pytestmark = [pytest.mark.helm, pytest.mark.slow, pytest.mark.timeout(300)]

RBAC_KINDS = frozenset(
    {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)


def _token_kubeconfig(plane: ControlPlane, token: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "real", "cluster": {
                    "server": plane.url, "certificate-authority": str(plane.ca_file)}}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "real", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )  # fmt: skip
    path.chmod(0o600)
    return path


def _accounts(objects: list[JsonDict]) -> dict[str, str]:
    """The ServiceAccount of each component's Deployment."""
    return {
        component: find(objects, "Deployment", f"-{component}")["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        for component in COMPONENTS
    }


def _namespaces(admin: client.ApiClient) -> Life:
    """The CRDs, and the release's and the CRs' namespaces, selected by the chart's selector."""
    install_crds(admin)
    life = Life(admin)
    for namespace in (RELEASE_NAMESPACE, NAMESPACE):
        life.core.create_namespace(
            {"metadata": {"name": namespace, "labels": {"tango-operator": "enabled"}}}
        )
    return life


def _apply_rbac(objects: list[JsonDict], kubectl: Cli, manifest: Path) -> Path:
    """The chart's ServiceAccounts, roles and bindings, applied with the real kubectl."""
    manifest.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] in RBAC_KINDS]))
    kubectl.run("apply", "--server-side", "-f", str(manifest))
    return manifest


def _tear_down(admin: client.ApiClient, kubectl: Cli, manifest: Path) -> None:
    """The namespaces and the RBAC gone again (the control plane is the session's)."""
    for namespace in (NAMESPACE, RELEASE_NAMESPACE):
        clean_namespace(admin, namespace)
        delete_namespace(admin, namespace)
    kubectl.run("delete", "--ignore-not-found", "-f", str(manifest), check=False)
    admin.close()


def _token(life: Life, account: str) -> str:
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": 3600}}  # fmt: skip
    issued = life.core.create_namespaced_service_account_token(account, RELEASE_NAMESPACE, request)
    return str(issued.status.token)


def _audit_key(event: dict[str, Any]) -> tuple[str, str, str]:
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource", ""))
    if ref.get("subresource"):
        resource = f"{resource}/{ref['subresource']}"
    return str(ref.get("apiGroup", "")), resource, str(event["verb"])


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_kube_apiserver_allows_exactly_what_the_operator_does(
    mode: str,
    control_plane: ControlPlane,
    local_node: object,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    objects = render(*MODES[mode], workdir=tmp_path / "helm", namespace=RELEASE_NAMESPACE)
    grants = Grants.from_objects(objects, RELEASE_NAMESPACE)
    accounts = _accounts(objects)
    admin = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    life = _namespaces(admin)
    kubectl = Cli(_tool("kubectl"), control_plane.kubeconfig, tmp_path)
    manifest = _apply_rbac(objects, kubectl, tmp_path / "rbac.yaml")
    kubeconfigs = {
        component: _token_kubeconfig(
            control_plane,
            _token(life, account),
            tmp_path / f"{component}.kubeconfig",
        )
        for component, account in accounts.items()
    }

    mark = control_plane.audit_mark()
    try:
        run_the_operator_through_a_life(
            objects,
            life,
            redis,
            tmp_path,
            watcher_kubeconfig=kubeconfigs["watcher"],
            worker_kubeconfig=kubeconfigs["worker"],
        )
    finally:
        _tear_down(admin, kubectl, manifest)

    users = {
        f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}": component
        for component, account in accounts.items()
    }
    used: dict[str, set[tuple[str, str, str]]] = {component: set() for component in COMPONENTS}
    refused: list[str] = []
    for event in control_plane.audit(mark):
        who = users.get(event["user"]["username"])
        if who is None or not event.get("objectRef"):
            continue
        component = who
        key = _audit_key(event)
        code = event["responseStatus"].get("code")
        if code == 403:
            refused.append(f"{component}: {key} {event['requestURI']}")
            continue
        used[component].add(key)
        if key[2] == "patch" and code == 201:
            # a server-side apply that created its object was authorized as a create too
            used[component].add((key[0], key[1], "create"))
    assert not refused, "kube-apiserver refused the operator:\n" + "\n".join(sorted(refused))
    assert used["watcher"], "no request of the watcher's ServiceAccount was audited"
    assert used["worker"], "no request of the workers' ServiceAccount was audited"
    for component, account in accounts.items():
        unused = grants.triples(account) - used[component] - RARELY_USED[component]
        assert not unused, f"{component} is granted what it never used: {sorted(unused)}"


@dataclasses.dataclass
class _AsWorkers(Operator):
    """The tests' Operator whose reconciles reach the API as the workers' ServiceAccount.

    It still plays the watcher (``observe``) with ``api_client``, the administrator's.
    """

    workers: client.ApiClient | None = None

    @property
    def ports(self) -> Ports:
        assert self.workers is not None
        kube = OwnerCopies(Kube(self.workers), self.ledger)
        return dataclasses.replace(super().ports, kube=kube)


def _allowed(api: client.AuthorizationV1Api, verb: str) -> bool:
    review = {"spec": {"resourceAttributes": {"namespace": NAMESPACE, "verb": verb,
              "group": "networking.k8s.io", "resource": "networkpolicies"}}}  # fmt: skip
    return bool(api.create_self_subject_access_review(review).status.allowed)


def test_turning_network_policies_off_as_helm_upgrade_does_is_never_refused(
    control_plane: ControlPlane, local_node: object, tmp_path: Path
) -> None:
    """``networkPolicy.enabled`` true, then false with the grants of each: nothing left.

    The workers (as their ServiceAccount, with the chart's roles of the moment) make a
    DeviceServer's NetworkPolicy; the roles then become those of the value false (get and
    delete only) and the workers' setting false: the next reconcile deletes the policy, and
    kube-apiserver refused none of the workers' requests.
    """
    enabled = ("--set", "networkPolicy.enabled=true")
    on = render(*enabled, workdir=tmp_path / "on", namespace=RELEASE_NAMESPACE)
    off = render(workdir=tmp_path / "off", namespace=RELEASE_NAMESPACE)
    account = _accounts(on)["worker"]
    admin = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    life = _namespaces(admin)
    kubectl = Cli(_tool("kubectl"), control_plane.kubeconfig, tmp_path)
    manifest = _apply_rbac(on, kubectl, tmp_path / "on.yaml")
    kubeconfig = _token_kubeconfig(control_plane, _token(life, account), tmp_path / "w.kubeconfig")
    workers = config.new_client_from_config(config_file=str(kubeconfig))
    operator = _AsWorkers(admin, settings=Settings(network_policy=True), workers=workers)
    networking = client.NetworkingV1Api(admin)
    key = Key(crd.Kind.DEVICE_SERVER.value, NAMESPACE, "motor")
    spec = {"dsname": "Motor", "args": "m", "command": "/usr/local/bin/Motor",
            "databaseds": "tango-databaseds", "image": "registry.example/motor:1"}  # fmt: skip
    mark = control_plane.audit_mark()
    try:
        life.create(crd.Kind.DEVICE_SERVER, "motor", spec)
        operator.settle(key)
        made = networking.list_namespaced_network_policy(NAMESPACE).items
        assert [policy.metadata.name for policy in made] == ["motor-network-policy"]

        _apply_rbac(off, kubectl, tmp_path / "off.yaml")  # helm upgrade: the roles first
        review = client.AuthorizationV1Api(workers)
        wait_for(
            lambda: _allowed(review, "delete") and not _allowed(review, "patch"),
            timeout=30,
            what="the grants of networkPolicy.enabled=false in force",
        )
        operator.settings = Settings()  # then the workers, with the value false
        operator.reconcile(key)
        assert networking.list_namespaced_network_policy(NAMESPACE).items == []
    finally:
        _tear_down(admin, kubectl, manifest)
        workers.close()

    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    mine = [e for e in control_plane.audit(mark) if e["user"]["username"] == user]
    refused = [e["requestURI"] for e in mine if e["responseStatus"].get("code") == 403]
    assert not refused, "kube-apiserver refused the workers:\n" + "\n".join(refused)
    deleted = [
        e for e in mine if _audit_key(e) == ("networking.k8s.io", "networkpolicies", "delete")
    ]
    assert [e["responseStatus"]["code"] for e in deleted] == [200]
