"""The kube-scheduler stand-in: binds a pod that waits for a Node to a Node that can take it.

kube-scheduler takes the pods without ``spec.nodeName`` whose ``schedulerName`` is
``default-scheduler`` and binds each to a Node through ``pods/binding``, where kube-apiserver
sets ``spec.nodeName`` and a ``PodScheduled=True`` condition (no managedFields entry: the
binding writes storage directly). :func:`schedule` does that for one pod; the fake controllers
(``kubeemu.controllers``) call it when such a pod or any Node changes, so a kubelet that
registers a Node (``devstack.runner.node`` on the demo's kubeemu) gets the pods and
``pods/log`` (``kubeemu.podlogs``) finds their Node. Without Nodes — every test that registers
none — nothing is bound, as before.

A Node is feasible (a subset of kube-scheduler's default filters) when it is not
``spec.unschedulable``, its ``Ready`` condition is True (kubeemu runs no node lifecycle
controller to add the ``not-ready`` taint), the pod tolerates each of its ``NoSchedule`` and
``NoExecute`` taints, and the pod's ``nodeSelector`` and required node affinity
(``matchExpressions`` on labels, ``matchFields`` on ``metadata.name``) match it. Not evaluated:
resources, host ports, pod (anti-)affinity, topology spread, volumes (kubeemu binds no
claims). The first feasible Node by name is taken (kube-scheduler scores them). A pod that no
Node can take stays as it is: kube-scheduler would add ``PodScheduled=False`` and an Event.
"""

from __future__ import annotations

from typing import Any

from kubeemu.api import Api
from kubeemu.clone import clone

JsonDict = dict[str, Any]

PODS = ("", "pods")
NODES = ("", "nodes")
DEFAULT_SCHEDULER = "default-scheduler"
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def waits_for_node(pod: JsonDict) -> bool:
    """Whether kube-scheduler would look for a Node for ``pod``."""
    spec = pod.get("spec") or {}
    return not bool(
        spec.get("nodeName")
        or pod["metadata"].get("deletionTimestamp")
        or spec.get("schedulingGates")
        or spec.get("schedulerName", DEFAULT_SCHEDULER) != DEFAULT_SCHEDULER
        or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    )


def _tolerated(taint: JsonDict, tolerations: list[JsonDict]) -> bool:
    """``v1.Toleration.ToleratesTaint`` for any of ``tolerations``."""
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _requirement_met(requirement: JsonDict, values: dict[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` against a Node's labels (or fields), as a label selector.

    ``NotIn`` and ``DoesNotExist`` hold without the key; ``In``, ``Exists``, ``Gt`` and ``Lt``
    need it.
    """
    key, operator = str(requirement.get("key", "")), str(requirement.get("operator"))
    wanted = [str(value) for value in requirement.get("values") or []]
    if key not in values:
        return operator in ("NotIn", "DoesNotExist")
    have = values[key]
    if operator in ("In", "NotIn"):
        return (have in wanted) == (operator == "In")
    if operator in ("Gt", "Lt") and len(wanted) == 1:
        try:
            number, limit = int(have), int(wanted[0])
        except ValueError:
            return False
        return number > limit if operator == "Gt" else number < limit
    return operator == "Exists"


def _term_met(term: JsonDict, node: JsonDict) -> bool:
    """A ``NodeSelectorTerm``: all its expressions and fields match (an empty term none)."""
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    expressions = term.get("matchExpressions") or []
    field_requirements = term.get("matchFields") or []
    if not expressions and not field_requirements:
        return False
    return all(_requirement_met(r, labels) for r in expressions) and all(
        _requirement_met(r, fields) for r in field_requirements
    )


def feasible(pod: JsonDict, node: JsonDict) -> bool:
    """Whether ``node`` can take ``pod`` (the checks in the module doc)."""
    spec, node_spec = pod.get("spec") or {}, node.get("spec") or {}
    if node_spec.get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return False
    tolerations = spec.get("tolerations") or []
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") in BLOCKING_EFFECTS and not _tolerated(taint, tolerations):
            return False
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    return required is None or any(_term_met(term, node) for term in required)


def bind(api: Api, pod: JsonDict, node_name: str) -> None:
    """What ``pods/binding`` does to the stored pod: ``nodeName`` and ``PodScheduled=True``."""
    updated = clone(pod)
    updated["spec"]["nodeName"] = node_name
    conditions = updated.setdefault("status", {}).setdefault("conditions", [])
    old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    condition = {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": (
            old["lastTransitionTime"]
            if old is not None and old.get("status") == "True" and old.get("lastTransitionTime")
            else api.clock()
        ),
    }
    if old is None:
        conditions.append(condition)
    else:
        conditions[conditions.index(old)] = condition
    updated["metadata"]["resourceVersion"] = str(api.store.next_revision())
    api.store.put(PODS, updated)


def schedule(api: Api, namespace: str, name: str) -> str | None:
    """Bind pod ``namespace/name`` if it waits for a Node and one can take it; which one."""
    pod = api.store.get(PODS, namespace, name)
    if pod is None or not waits_for_node(pod):
        return None
    for node in sorted(api.store.list(NODES), key=lambda n: str(n["metadata"]["name"])):
        if feasible(pod, node):
            bind(api, pod, node["metadata"]["name"])
            return str(node["metadata"]["name"])
    return None


def waiting_pods(api: Api) -> list[tuple[str, str]]:
    """(namespace, name) of every pod that waits for a Node."""
    return [
        (pod["metadata"]["namespace"], pod["metadata"]["name"])
        for pod in api.store.list(PODS)
        if waits_for_node(pod)
    ]
