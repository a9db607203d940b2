"""The kube-scheduler stand-in (``kubeemu.scheduler``): which Node a waiting pod is bound to.

Unit tests on an ``Api`` of its own, then one through ``python -m kubeemu`` and the official
client: a pending pod is bound once a Ready Node registers, unless the scheduler is off.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client, config

from kubeemu import scheduler
from kubeemu.api import Api, WriteOptions
from kubeemu.registry import Registry
from kubeemu.store import Store
from kubeemu.testing import KubeEmu

JsonDict = dict[str, Any]
READY = [{"type": "Ready", "status": "True"}]


def _node(name: str, **spec: Any) -> JsonDict:
    labels = spec.pop("labels", {"kubernetes.io/hostname": name})
    conditions = spec.pop("conditions", READY)
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"conditions": conditions},
    }


def _pod(**spec: Any) -> JsonDict:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "x"}], **spec},
    }


def test_what_makes_a_node_feasible() -> None:
    pod = _pod()
    assert scheduler.feasible(pod, _node("n"))
    assert not scheduler.feasible(pod, _node("n", unschedulable=True))
    assert not scheduler.feasible(pod, _node("n", conditions=[]))
    tainted = _node("n", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    assert not scheduler.feasible(pod, tainted)
    assert scheduler.feasible(_pod(tolerations=[{"key": "gpu", "value": "yes"}]), tainted)
    assert scheduler.feasible(_pod(tolerations=[{"operator": "Exists"}]), tainted)
    assert not scheduler.feasible(
        _pod(tolerations=[{"key": "gpu", "value": "no", "effect": "NoSchedule"}]), tainted
    )
    preferring = _node("n", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}])
    assert scheduler.feasible(pod, preferring)
    assert scheduler.feasible(_pod(nodeSelector={"kubernetes.io/hostname": "n"}), _node("n"))
    assert not scheduler.feasible(_pod(nodeSelector={"disk": "ssd"}), _node("n"))


def test_required_node_affinity() -> None:
    def affinity(*terms: JsonDict) -> JsonDict:
        required = {"nodeSelectorTerms": list(terms)}
        return _pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                               required}})  # fmt: skip

    node = _node("n", labels={"zone": "a", "cores": "8"})
    expression = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
    assert scheduler.feasible(affinity(expression), node)
    many = {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["16"]}]}
    assert not scheduler.feasible(affinity(many), node)
    assert scheduler.feasible(affinity(many, expression), node), "terms are ORed"
    absent = {"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}
    assert scheduler.feasible(affinity(absent), node)
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["m"]}]}
    assert not scheduler.feasible(affinity(by_name), node)
    assert not scheduler.feasible(affinity({}), node), "an empty term matches nothing"


def test_a_waiting_pod_is_bound_to_the_first_feasible_node() -> None:
    api = Api(Store(), Registry())
    namespaces, pods, nodes = (
        api.registry.get("", "v1", kind) for kind in ("namespaces", "pods", "nodes")
    )
    assert namespaces is not None
    assert pods is not None
    assert nodes is not None
    options = WriteOptions(field_manager="test")
    api.create(namespaces, "", {"metadata": {"name": "default"}}, options)
    api.create(pods, "default", _pod(), options)
    assert scheduler.waiting_pods(api) == [("default", "p")]
    assert scheduler.schedule(api, "default", "p") is None, "no Node yet"
    for name, extra in (("c", {}), ("b", {"unschedulable": True}), ("d", {})):
        api.create(nodes, "", {"metadata": {"name": name}, "spec": extra}, options)
        api.update_status(nodes, "", name, {"conditions": READY}, options)
    before = api.get(pods, "default", "p")
    assert scheduler.schedule(api, "default", "p") == "c"
    bound = api.get(pods, "default", "p")
    assert bound["spec"]["nodeName"] == "c"
    assert [c["type"] for c in bound["status"]["conditions"]] == ["PodScheduled"]
    assert bound["status"]["conditions"][0]["status"] == "True"
    assert bound["metadata"]["managedFields"] == before["metadata"]["managedFields"]
    assert int(bound["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert scheduler.schedule(api, "default", "p") is None, "bound already"
    assert scheduler.waiting_pods(api) == []


def test_kubeemu_binds_pending_pods_once_a_node_is_ready(kubeemu: KubeEmu) -> None:
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeemu.kubeconfig)))
    for name, scheduler_name in (("waits", "default-scheduler"), ("other", "my-scheduler")):
        spec = {"schedulerName": scheduler_name, "containers": [{"name": "c", "image": "x"}]}
        core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": spec})
    core.create_node({"metadata": {"name": "node-1"}})
    time.sleep(0.3)
    assert core.read_namespaced_pod("waits", "default").spec.node_name is None, "not Ready"
    core.patch_node_status("node-1", {"status": {"conditions": READY}})
    deadline = time.monotonic() + 10
    while core.read_namespaced_pod("waits", "default").spec.node_name is None:
        assert time.monotonic() < deadline, "the pod was never bound"
        time.sleep(0.05)
    assert core.read_namespaced_pod("waits", "default").spec.node_name == "node-1"
    assert core.read_namespaced_pod("other", "default").spec.node_name is None
    kubeemu.controllers(scheduler=False)
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "late"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    time.sleep(0.3)
    assert core.read_namespaced_pod("late", "default").spec.node_name is None, "scheduler off"
