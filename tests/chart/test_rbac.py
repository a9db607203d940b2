"""The chart's RBAC against what the operator really does.

The real watcher (``python -m watcher``) and real workers (``tango-operator worker``, with the
TANGO stand-in) run against kubeemu, configured with the environment the chart gives their
containers, the workers through a proxy that stamps their User-Agent (the test's own client sends
another one, the watcher the Python client's). They take DatabaseDSs and a
dependency chain of DeviceServers through their lives: create → Running → spec update →
delete. Every request in kubeemu's audit log must then be allowed by the rules the chart
binds to that component's ServiceAccount, and every (group, resource, verb) the chart grants
must have been used. Both RBAC layouts are checked: ClusterRoles (all namespaces) and
namespaced Roles (``watchNamespaces`` plus ``namespaceSelector``), and the grants that follow
``networkPolicy.enabled``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from devstack.ports import free_port
from devstack.redis_server import RedisServer
from devstack.stack import install_crds
from kubeemu.testing import KubeEmu
from tango_operator import crd
from tango_operator.keys import Key
from tango_operator.workqueue import WorkQueue
from tests.chart.chart import JsonDict, container, find, render
from tests.chart.proxy import UserAgentProxy
from tests.chart.rbac import Grants, Request
from tests.support.metrics import scrape
from tests.support.workers import REPO, Producer, WorkerPool, wait_for

pytestmark = [pytest.mark.helm, pytest.mark.slow, pytest.mark.timeout(240)]

RELEASE_NAMESPACE = "tango"
NAMESPACE = "lab"
COMPONENTS = ("watcher", "worker")
WORKER_AGENT = "tango-operator-worker/test"
"""The User-Agent the workers' proxy stamps; the watcher talks to kubeemu directly (its
watch streams stay unproxied) with the Python client's own User-Agent, and the test's
client uses TEST_AGENT."""
TEST_AGENT = "rbac-test/1"
MODES = {
    "cluster-roles": (),
    "namespaced-roles": (
        "--set", f"watchNamespaces={{{NAMESPACE}}}",
        "--set", "namespaceSelector=tango-operator=enabled",
    ),
    # the workers make NetworkPolicies and the watcher watches them (other grants, see below)
    "network-policies": ("--set", "networkPolicy.enabled=true"),
}  # fmt: skip

# Permissions the chart grants for code paths a normal life does not take. Each names the
# path; nothing else may go unused.
RARELY_USED: dict[str, set[tuple[str, str, str]]] = {
    "watcher": set(),
    "worker": {
        # a StatefulSet's readiness is read back only while the watch has not confirmed the
        # state a worker recorded from its apply (workers/reconcile/children.py, current_status)
        ("apps", "statefulsets", "get"),
        # with networkPolicy.enabled false: the NetworkPolicies made while it was true are read
        # and deleted at their owner's next reconcile (workers/reconcile/children.py, _remove)
        ("networking.k8s.io", "networkpolicies", "get"),
        ("networking.k8s.io", "networkpolicies", "delete"),
    },
}


def authorized_as(record: JsonDict) -> list[Request]:
    """What kube-apiserver authorizes for an audited request.

    A server-side apply that creates its object (201) is authorized as a patch and as a
    create (the apiserver's patch handler checks both), so the chart must grant both.
    """
    request = Request.from_audit(record)
    if request.verb == "patch" and record["code"] == 201:
        return [request, dataclasses.replace(request, verb="create")]
    return [request]


def _component(user_agent: str) -> str | None:
    if user_agent == WORKER_AGENT:
        return "worker"
    if user_agent.startswith("OpenAPI-Generator/"):
        return "watcher"
    return None  # the test's own requests


def _resolved_env(container_spec: JsonDict, pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it, minus Secrets and Redis.

    The test's own redis-server stands in for the chart's.
    """
    env: dict[str, str] = {}
    for entry in container_spec.get("env") or []:
        name = entry["name"]
        if name.startswith("TANGO_OPERATOR_REDIS_"):
            continue
        if "value" in entry:
            env[name] = entry["value"]
            continue
        field = entry["valueFrom"].get("fieldRef", {}).get("fieldPath")
        if field == "metadata.namespace":
            env[name] = RELEASE_NAMESPACE
        elif field == "metadata.name":
            env[name] = pod_name
    return env


class Life:
    """Drive the custom resources' lives through the official client.

    The client is not audited as a component: its User-Agent is the client's own.
    """

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def create(self, kind: crd.Kind, name: str, spec: JsonDict, **metadata: Any) -> None:
        self.custom.create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            NAMESPACE,
            kind.plural,
            {
                "apiVersion": crd.API_VERSION,
                "kind": kind.value,
                "metadata": {"name": name, **metadata},
                "spec": spec,
            },
        )

    def get(self, kind: crd.Kind, name: str) -> JsonDict | None:
        try:
            found: JsonDict = self.custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, NAMESPACE, kind.plural, name
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def running(self, kind: crd.Kind, name: str, generation: int = 1) -> bool:
        found = self.get(kind, name) or {}
        status = found.get("status") or {}
        return status.get("state") == "Running" and status.get("observedGeneration") == generation

    def delete(self, kind: crd.Kind, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            crd.GROUP, crd.VERSION, NAMESPACE, kind.plural, name
        )


CRASHING_POD_STATUS: JsonDict = {
    "status": {
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {
                "name": "device-server",
                "ready": False,
                "restartCount": 1,
                "image": "registry.example/chain:1",
                "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "bad"}},
            }
        ],
    }
}


def _live_through(life: Life, watcher_port: int) -> None:
    db, ds = crd.Kind.DATABASE_DS, crd.Kind.DEVICE_SERVER
    life.core.create_namespaced_secret(
        NAMESPACE,
        {
            "metadata": {"name": "own-db-credentials"},
            "stringData": {"MYSQL_PASSWORD": "a", "MYSQL_ROOT_PASSWORD": "b"},
        },
    )
    # the operator makes the credentials of one, the other names its own Secret and carries
    # the finalizer an earlier operator set (which deletion must remove)
    life.create(db, "tangodb", {"clusterDomain": "cluster.local", "usePV": True})
    life.create(
        db,
        "tangodb-own",
        {"credentialsSecret": "own-db-credentials"},
        finalizers=[crd.FINALIZER],
    )
    chain = {"ds-a": [], "ds-b": ["lab/a/1"], "ds-c": ["lab/b/1"]}
    for name, depends_on in chain.items():
        member = name[-1]
        life.create(
            ds,
            name,
            {
                "dsname": "Chain",
                "args": member,
                "command": "/usr/bin/Chain",
                "image": "registry.example/chain:1",
                "databaseds": "tangodb",
                "dependsOn": depends_on,
                "config": json.dumps(
                    {"servers": {"Chain": {member: {"Chain": {f"lab/{member}/1": {}}}}}}
                ),
            },
        )
    for kind, name in [(db, "tangodb"), (db, "tangodb-own"), *((ds, n) for n in chain)]:
        wait_for(lambda k=kind, n=name: life.running(k, n), timeout=60, what=f"{name} Running")

    # ds-a's container crashes (its status written as a kubelet would): the CR says so; the
    # new image then replaces the failing pod, which its StatefulSet would not do (OrderedReady)
    life.core.patch_namespaced_pod_status("ds-a-0", NAMESPACE, CRASHING_POD_STATUS)
    wait_for(
        lambda: (
            (life.get(ds, "ds-a") or {}).get("status", {}).get("container", {}).get("reason")
            == "CrashLoopBackOff"
        ),
        timeout=30,
        what="ds-a's crash in its status",
    )
    life.custom.patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, NAMESPACE, ds.plural, "ds-a",
        {"spec": {"image": "registry.example/chain:2"}},
    )  # fmt: skip
    wait_for(lambda: life.running(ds, "ds-a", generation=2), timeout=60, what="ds-a updated")

    # the watcher's view of the cluster, from its /metrics
    running = (
        "tango_operator_custom_resources",
        frozenset({("kind", "DeviceServer"), ("namespace", NAMESPACE), ("state", "Running")}),
    )
    deadline = time.monotonic() + 30
    while (samples := scrape(watcher_port)).get(running) != 3:
        states = {k: v for k, v in samples.items() if k[0] == "tango_operator_custom_resources"}
        assert time.monotonic() < deadline, f"the watcher's CR gauge: {states}"
        time.sleep(0.2)
    to_running = (
        "tango_operator_time_to_running_seconds_count",
        frozenset({("kind", "DeviceServer")}),
    )
    assert samples[to_running] == 3

    for name in reversed(chain):
        life.delete(ds, name)
    life.delete(db, "tangodb")
    life.delete(db, "tangodb-own")
    for kind, name in [(db, "tangodb"), (db, "tangodb-own"), *((ds, n) for n in chain)]:
        wait_for(lambda k=kind, n=name: life.get(k, n) is None, timeout=60, what=f"{name} gone")


def _read_without_copies(redis: RedisServer, pool: WorkerPool) -> None:
    """Workers with no owner copy in Redis (a fresh or flushed one) read the CR from the API.

    A message for a key of each kind, of CRs that do not exist: each worker GETs it (404).
    """
    producer = Producer.connect(WorkQueue(redis.client()), redis.url)
    keys = [Key(kind.value, NAMESPACE, "never-copied") for kind in crd.Kind]
    for key in keys:
        producer.enqueue(key)
    with redis.client() as connection:
        wait_for(
            lambda: (
                not connection.zcard("tango-operator:queued")
                and not connection.zcard("tango-operator:processing")
            ),
            timeout=60,
            what="the keys without copies reconciled",
        )
    assert pool.running
    assert all(p.poll() is None for p in pool.running)


def run_the_operator_through_a_life(
    objects: list[JsonDict],
    life: Life,
    redis: RedisServer,
    tmp_path: Path,
    *,
    watcher_kubeconfig: Path,
    worker_kubeconfig: Path,
) -> None:
    """The real watcher and workers, with the chart's environment, through ``_live_through``.

    Each reaches the API with its own kubeconfig (the test picks the identity); both are
    stopped before this returns.
    """
    watcher_port = free_port()
    watcher_env = {
        **_resolved_env(container(objects, "-watcher"), "op-tango-operator-watcher-0"),
        "KUBECONFIG": str(watcher_kubeconfig),
        "TANGO_OPERATOR_REDIS_URL": redis.url,
        "TANGO_OPERATOR_METRICS_PORT": str(watcher_port),
        "PYTHONPATH": str(REPO),
    }
    watcher = subprocess.Popen(
        [sys.executable, "-m", "watcher"],
        env={**os.environ, **watcher_env},
        stdout=(tmp_path / "watcher.log").open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    pool = WorkerPool(
        kubeconfig=worker_kubeconfig,
        redis_url=redis.url,
        workdir=tmp_path,
        extra_env={
            **_resolved_env(container(objects, "-worker"), "op-tango-operator-worker-0"),
            "TANGO_OPERATOR_METRICS_PORT": str(free_port()),
            "TANGO_OPERATOR_WAITING_MAX_SECONDS": "2",
        },
    )
    try:
        pool.start()
        _read_without_copies(redis, pool)
        _live_through(life, watcher_port)
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
        pool.stop()


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_rbac_allows_exactly_what_the_operator_does(
    mode: str, kubeemu: KubeEmu, redis: RedisServer, tmp_path: Path
) -> None:
    objects = render(*MODES[mode], workdir=tmp_path / "helm", namespace=RELEASE_NAMESPACE)
    grants = Grants.from_objects(objects, RELEASE_NAMESPACE)
    accounts = {
        component: find(objects, "Deployment", f"-{component}")["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        for component in COMPONENTS
    }
    for rule in (r for account in accounts.values() for r in grants.rules(account)):
        for field in (rule.groups, rule.resources, rule.verbs):
            assert "*" not in field, f"wildcard in {rule}"

    api_client = config.new_client_from_config(config_file=str(kubeemu.kubeconfig))
    api_client.user_agent = TEST_AGENT
    install_crds(api_client)
    life = Life(api_client)
    for namespace in (RELEASE_NAMESPACE, NAMESPACE):
        life.core.create_namespace(
            {"metadata": {"name": namespace, "labels": {"tango-operator": "enabled"}}}
        )
    proxy = UserAgentProxy(kubeemu.url, WORKER_AGENT)
    proxy.start()

    mark = kubeemu.mark()
    try:
        run_the_operator_through_a_life(
            objects,
            life,
            redis,
            tmp_path,
            watcher_kubeconfig=kubeemu.kubeconfig,
            worker_kubeconfig=proxy.kubeconfig(kubeemu.kubeconfig, tmp_path / "worker.kubeconfig"),
        )
    finally:
        proxy.stop()
        api_client.close()

    used: dict[str, set[tuple[str, str, str]]] = {component: set() for component in COMPONENTS}
    denied: list[str] = []
    for record in kubeemu.audit(mark):
        component = _component(record["user_agent"])
        if component is None:
            continue
        for request in authorized_as(record):
            used[component].add((request.group, request.resource, request.verb))
            if not grants.allows(accounts[component], request):
                denied.append(f"{component}: {request}")
    assert used["watcher"], "no request of the watcher was audited"
    assert used["worker"], "no request of the workers was audited"
    assert not denied, "requests the chart's RBAC would refuse:\n" + "\n".join(sorted(denied))
    for component, account in accounts.items():
        unused = grants.triples(account) - used[component] - RARELY_USED[component]
        assert not unused, f"{component} is granted what it never used: {sorted(unused)}"
