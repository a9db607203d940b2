"""The built-in server-side printers: the Table columns of pods, services, statefulsets...

``kubeemu.listing`` asks :func:`builtin_columns` for a built-in resource's columns; each
:class:`~kubeemu.table.Column` computes its cell from a served object as the 1.31 printers of
``pkg/printers/internalversion`` do (``Ready 1/1``, ``Status Running``, ``Age 5m``), with
descriptions from the OpenAPI documentation in the ``kubernetes-validate`` schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubeemu.table import CellFunction, Column, age_column, default_columns, field_doc, name_column
from kubeemu.timefmt import age_of, human_age, parse_timestamp

JsonDict = dict[str, Any]


def _text(description: str, name: str, cell: CellFunction, priority: int = 0) -> Column:
    return Column(name=name, type="string", description=description, priority=priority, cell=cell)


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _or_none(text: str) -> str:
    return text if text else "<none>"


# --- pods ----------------------------------------------------------------------------------------
_POD_SPEC = "io.k8s.api.core.v1.PodSpec"
_POD_STATUS = "io.k8s.api.core.v1.PodStatus"


def _pod_ready(obj: JsonDict, _now: datetime) -> str:
    total = len(_get(obj, "spec", "containers") or [])
    ready = sum(
        1
        for status in _get(obj, "status", "containerStatuses") or []
        if status.get("ready") and "running" in (status.get("state") or {})
    )
    return f"{ready}/{total}"


def _pod_status(obj: JsonDict, _now: datetime) -> str:
    """The STATUS column: phase, overridden by container reasons and Terminating."""
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or phase)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = str(waiting["reason"])
        elif terminated and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif terminated:
            signal = terminated.get("signal") or 0
            code = terminated.get("exitCode") or 0
            reason = f"Signal:{signal}" if signal else f"ExitCode:{code}"
        elif container.get("ready") and "running" in state:
            has_running = True
    if reason == "Completed" and has_running:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        reason = "Running" if ready else "NotReady"
    deleting = bool(_get(obj, "metadata", "deletionTimestamp"))
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason


def _pod_restarts(obj: JsonDict, now: datetime) -> str:
    restarts = 0
    last: datetime | None = None
    for container in _get(obj, "status", "containerStatuses") or []:
        restarts += int(container.get("restartCount") or 0)
        finished = _get(container, "lastState", "terminated", "finishedAt")
        moment = parse_timestamp(finished) if isinstance(finished, str) else None
        if moment is not None and (last is None or moment > last):
            last = moment
    if restarts and last is not None:
        return f"{restarts} ({human_age(last, now)} ago)"
    return str(restarts)


def _pod_ip(obj: JsonDict, _now: datetime) -> str:
    ips = _get(obj, "status", "podIPs") or []
    first = ips[0].get("ip", "") if ips and isinstance(ips[0], dict) else ""
    return _or_none(str(first or _get(obj, "status", "podIP") or ""))


def _readiness_gates(obj: JsonDict, _now: datetime) -> str:
    gates = [g.get("conditionType") for g in _get(obj, "spec", "readinessGates") or []]
    if not gates:
        return "<none>"
    true_conditions = {
        c.get("type") for c in _get(obj, "status", "conditions") or [] if c.get("status") == "True"
    }
    return f"{sum(1 for g in gates if g in true_conditions)}/{len(gates)}"


def _pod_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            "The aggregate readiness state of this pod for accepting traffic.", "Ready", _pod_ready
        ),
        _text("The aggregate status of the containers in this pod.", "Status", _pod_status),
        _text(
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted.",
            "Restarts",
            _pod_restarts,
        ),
        age_column(),
        _text(field_doc(_POD_STATUS, "podIP"), "IP", _pod_ip, priority=1),
        _text(
            field_doc(_POD_SPEC, "nodeName"),
            "Node",
            lambda obj, _now: _or_none(str(_get(obj, "spec", "nodeName") or "")),
            priority=1,
        ),
        _text(
            field_doc(_POD_STATUS, "nominatedNodeName"),
            "Nominated Node",
            lambda obj, _now: _or_none(str(_get(obj, "status", "nominatedNodeName") or "")),
            priority=1,
        ),
        _text(
            field_doc(_POD_SPEC, "readinessGates"), "Readiness Gates", _readiness_gates, priority=1
        ),
    ]


# --- workloads -----------------------------------------------------------------------------------
def _template_containers(obj: JsonDict) -> list[JsonDict]:
    return list(_get(obj, "spec", "template", "spec", "containers") or [])


def _container_names(obj: JsonDict, _now: datetime) -> str:
    return ",".join(str(c.get("name", "")) for c in _template_containers(obj))


def _container_images(obj: JsonDict, _now: datetime) -> str:
    return ",".join(str(c.get("image", "")) for c in _template_containers(obj))


def _statefulset_ready(obj: JsonDict, _now: datetime) -> str:
    ready = int(_get(obj, "status", "readyReplicas") or 0)
    desired = _get(obj, "spec", "replicas")
    return f"{ready}/{1 if desired is None else int(desired)}"


def _statefulset_columns() -> list[Column]:
    return [
        name_column(),
        _text("Number of the pod with ready state", "Ready", _statefulset_ready),
        age_column(),
        _text("Names of each container in the template.", "Containers", _container_names, 1),
        _text(
            "Images referenced by each container in the template.", "Images", _container_images, 1
        ),
    ]


def _label_selector_text(selector: JsonDict | None) -> str:
    """``metav1.FormatLabelSelector``: ``a=b,c in (d)`` or ``<none>``."""
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for requirement in selector.get("matchExpressions") or []:
        key, operator = requirement.get("key", ""), requirement.get("operator", "")
        values = ",".join(sorted(requirement.get("values") or []))
        if operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {operator.lower()} ({values})")
    return ",".join(parts) or "<none>"


def _deployment_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            "Number of the pod with ready state",
            "Ready",
            lambda obj, _now: (
                f"{int(_get(obj, 'status', 'readyReplicas') or 0)}"
                f"/{int(_get(obj, 'spec', 'replicas') or 0)}"
            ),
        ),
        Column(
            name="Up-to-date",
            type="string",
            description="Total number of non-terminated pods targeted by this deployment that "
            "have the desired template spec.",
            cell=lambda obj, _now: int(_get(obj, "status", "updatedReplicas") or 0),
        ),
        Column(
            name="Available",
            type="string",
            description="Total number of available pods (ready for at least minReadySeconds) "
            "targeted by this deployment.",
            cell=lambda obj, _now: int(_get(obj, "status", "availableReplicas") or 0),
        ),
        age_column(),
        _text("Names of each container in the template.", "Containers", _container_names, 1),
        _text(
            "Images referenced by each container in the template.", "Images", _container_images, 1
        ),
        _text(
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will "
            "be the ones affected by this deployment.",
            "Selector",
            lambda obj, _now: _label_selector_text(_get(obj, "spec", "selector")),
            1,
        ),
    ]


# --- services ------------------------------------------------------------------------------------
_SERVICE_SPEC = "io.k8s.api.core.v1.ServiceSpec"


def _service_cluster_ip(obj: JsonDict, _now: datetime) -> str:
    ips = _get(obj, "spec", "clusterIPs") or []
    return str(ips[0]) if ips else _or_none(str(_get(obj, "spec", "clusterIP") or ""))


def _service_external_ip(obj: JsonDict, _now: datetime) -> str:
    spec = obj.get("spec") or {}
    service_type = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if service_type == "LoadBalancer":
        ingress = _get(obj, "status", "loadBalancer", "ingress") or []
        balancers = [str(i.get("ip") or i.get("hostname") or "") for i in ingress]
        found = [b for b in balancers if b] + external
        return ",".join(found) or "<pending>"
    if service_type == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _service_ports(obj: JsonDict, _now: datetime) -> str:
    pieces = []
    for port in _get(obj, "spec", "ports") or []:
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_selector(obj: JsonDict, _now: datetime) -> str:
    selector = _get(obj, "spec", "selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _service_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            field_doc(_SERVICE_SPEC, "type"),
            "Type",
            lambda obj, _now: str(_get(obj, "spec", "type") or "ClusterIP"),
        ),
        _text(field_doc(_SERVICE_SPEC, "clusterIP"), "Cluster-IP", _service_cluster_ip),
        _text(field_doc(_SERVICE_SPEC, "externalIPs"), "External-IP", _service_external_ip),
        _text(field_doc(_SERVICE_SPEC, "ports"), "Port(s)", _service_ports),
        age_column(),
        _text(field_doc(_SERVICE_SPEC, "selector"), "Selector", _service_selector, priority=1),
    ]


# --- configuration, namespaces, leases -----------------------------------------------------------
def _data_count(obj: JsonDict, _now: datetime) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


def _configmap_columns() -> list[Column]:
    return [
        name_column(),
        Column(
            name="Data",
            type="string",
            description=field_doc("io.k8s.api.core.v1.ConfigMap", "data"),
            cell=_data_count,
        ),
        age_column(),
    ]


def _secret_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            field_doc("io.k8s.api.core.v1.Secret", "type"),
            "Type",
            lambda obj, _now: str(obj.get("type") or "Opaque"),
        ),
        Column(
            name="Data",
            type="string",
            description=field_doc("io.k8s.api.core.v1.Secret", "data"),
            cell=lambda obj, _now: len(obj.get("data") or {}),
        ),
        age_column(),
    ]


def _namespace_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            "The status of the namespace",
            "Status",
            lambda obj, _now: str(_get(obj, "status", "phase") or ""),
        ),
        age_column(),
    ]


def _lease_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            field_doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
            "Holder",
            lambda obj, _now: str(_get(obj, "spec", "holderIdentity") or ""),
        ),
        age_column(),
    ]


# --- events --------------------------------------------------------------------------------------
_EVENT = "io.k8s.api.core.v1.Event"


def _event_first_seen(obj: JsonDict, now: datetime) -> str:
    if obj.get("firstTimestamp"):
        return age_of(obj["firstTimestamp"], now)
    return age_of(obj.get("eventTime"), now)


def _event_last_seen(obj: JsonDict, now: datetime) -> str:
    series_last = _get(obj, "series", "lastObservedTime")
    if series_last:
        return age_of(series_last, now)
    if obj.get("lastTimestamp"):
        return age_of(obj["lastTimestamp"], now)
    return _event_first_seen(obj, now)


def _event_object(obj: JsonDict, _now: datetime) -> str:
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    return f"{kind}/{involved['name']}" if involved.get("name") else kind


def _event_source(obj: JsonDict, _now: datetime) -> str:
    source = obj.get("source") or {}
    component = str(source.get("component") or obj.get("reportingController") or "")
    instance = str(source.get("host") or obj.get("reportingInstance") or "")
    return f"{component}, {instance}" if instance else component


def _event_count(obj: JsonDict, _now: datetime) -> int:
    series_count = _get(obj, "series", "count")
    if series_count:
        return int(series_count)
    return int(obj.get("count") or 1)


def _event_columns() -> list[Column]:
    return [
        _text(field_doc(_EVENT, "lastTimestamp"), "Last Seen", _event_last_seen),
        _text(field_doc(_EVENT, "type"), "Type", lambda obj, _now: str(obj.get("type") or "")),
        _text(
            field_doc(_EVENT, "reason"), "Reason", lambda obj, _now: str(obj.get("reason") or "")
        ),
        _text(field_doc(_EVENT, "involvedObject"), "Object", _event_object),
        _text(
            field_doc("io.k8s.api.core.v1.ObjectReference", "fieldPath"),
            "Subobject",
            lambda obj, _now: str(_get(obj, "involvedObject", "fieldPath") or ""),
            priority=1,
        ),
        _text(field_doc(_EVENT, "source"), "Source", _event_source, priority=1),
        _text(
            field_doc(_EVENT, "message"),
            "Message",
            lambda obj, _now: str(obj.get("message") or "").strip(),
        ),
        _text(field_doc(_EVENT, "firstTimestamp"), "First Seen", _event_first_seen, priority=1),
        Column(
            name="Count",
            type="string",
            description=field_doc(_EVENT, "count"),
            priority=1,
            cell=_event_count,
        ),
        name_column(priority=1),
    ]


_BUILTIN_COLUMNS: dict[tuple[str, str], Callable[[], list[Column]]] = {
    ("", "pods"): _pod_columns,
    ("", "services"): _service_columns,
    ("", "configmaps"): _configmap_columns,
    ("", "secrets"): _secret_columns,
    ("", "namespaces"): _namespace_columns,
    ("", "events"): _event_columns,
    ("apps", "statefulsets"): _statefulset_columns,
    ("apps", "deployments"): _deployment_columns,
    ("coordination.k8s.io", "leases"): _lease_columns,
    ("apiextensions.k8s.io", "customresourcedefinitions"): default_columns,
}


def builtin_columns(group: str, resource: str) -> list[Column] | None:
    """The server-side printer columns of a built-in resource, or None when none is modelled.

    All columns are returned, including the ``priority: 1`` ones kubectl shows with ``-o wide``.
    Use :func:`default_columns` (Name, Created At) for built-ins without a modelled printer.
    """
    factory = _BUILTIN_COLUMNS.get((group, resource))
    return factory() if factory is not None else None
