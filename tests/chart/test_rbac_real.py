"""The chart's RBAC enforced by kube-apiserver itself: the operator runs as its ServiceAccounts.

The chart's ServiceAccounts, ClusterRoles/Roles and bindings are created on the real control
plane with the real kubectl; the watcher and the workers then authenticate with tokens of
those ServiceAccounts (the TokenRequest API, as a projected token volume gets them), so any
permission the chart forgot is a 403 from Kubernetes, not from an evaluator written here.
The CRs live the same life as in ``test_rbac.py`` (create → Running → spec update → delete;
the local node reports the pods ready). Then kube-apiserver's own audit log must show no
request of either ServiceAccount refused, and every (group, resource, verb) the chart grants
used — the same two-sided check as the kubeemu run, on the real authorizer. Both RBAC
layouts are run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from devstack.controlplane import ControlPlane
from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from tests.chart.chart import find, render
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
    accounts = {
        component: find(objects, "Deployment", f"-{component}")["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        for component in COMPONENTS
    }
    admin = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    install_crds(admin)
    life = Life(admin)
    for namespace in (RELEASE_NAMESPACE, NAMESPACE):
        life.core.create_namespace(
            {"metadata": {"name": namespace, "labels": {"tango-operator": "enabled"}}}
        )
    rbac = [obj for obj in objects if obj["kind"] in RBAC_KINDS]
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(rbac))
    kubectl = Cli(_tool("kubectl"), control_plane.kubeconfig, tmp_path)
    kubectl.run("apply", "--server-side", "-f", str(manifest))
    kubeconfigs: dict[str, Path] = {}
    for component, account in accounts.items():
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 3600}}  # fmt: skip
        issued = life.core.create_namespaced_service_account_token(
            account, RELEASE_NAMESPACE, request
        )
        kubeconfigs[component] = _token_kubeconfig(
            control_plane, issued.status.token, tmp_path / f"{component}.kubeconfig"
        )

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
        for namespace in (NAMESPACE, RELEASE_NAMESPACE):
            clean_namespace(admin, namespace)
            delete_namespace(admin, namespace)
        kubectl.run("delete", "--ignore-not-found", "-f", str(manifest), check=False)
        admin.close()

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
