"""``meta.k8s.io/v1`` Table responses, for clients that ask ``Accept: ...;as=Table`` (kubectl get).

Data comes in as the stored objects of one list or get, plus either a CRD version's
``additionalPrinterColumns`` (custom resources) or a built-in column set from
:func:`builtin_columns`.  The Table goes out to the HTTP layer as a JSON dict.  Column
definitions, cell values and row objects follow the apiserver 1.31: the CRD table convertor
(JSONPath cells, ``type: date`` shown as an age such as ``5m``, missing values as ``null`` which
kubectl prints as ``<none>``), the built-in printers of ``pkg/printers/internalversion`` (pods,
services, statefulsets, ...) and the default convertor (Name, Created At) used for CRDs.
Descriptions come from the OpenAPI documentation in the ``kubernetes-validate`` schemas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from kubeemu import errors
from kubeemu.clone import clone
from kubeemu.goformat import go_float, go_json
from kubeemu.schema import builtin_definition

JsonDict = dict[str, Any]
CellFunction = Callable[[JsonDict, datetime], Any]


@dataclass(frozen=True)
class Column:
    """One table column; its cell comes from ``cell(obj, now)`` or from ``json_path``."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0
    json_path: str | None = None
    cell: CellFunction | None = None

    def definition(self) -> JsonDict:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }

    def value(self, obj: JsonDict, now: datetime) -> Any:
        if self.cell is not None:
            return self.cell(obj, now)
        if self.json_path is None:
            return None
        return json_path_cell(self.type, self.json_path, obj, now)


# ================================================================================================
# Table assembly
# ================================================================================================
def to_table(
    objects: list[JsonDict],
    *,
    columns: Sequence[Column] | Sequence[JsonDict] | None,
    list_metadata: JsonDict,
    include_object: str = "Metadata",
    now: datetime | None = None,
    api_version: str = "meta.k8s.io/v1",
) -> JsonDict:
    """A Table of ``objects``.

    ``columns`` is a list of :class:`Column` (used as given), a CRD version's
    ``additionalPrinterColumns`` (Name is put first), or None (a custom resource without printer
    columns: Name and Age).  ``list_metadata`` gives ``resourceVersion`` and, for lists,
    ``continue`` and ``remainingItemCount``; for a single GET pass the object's resourceVersion.
    ``include_object`` is the ``includeObject`` query parameter: Metadata (default), Object or
    None; anything else is a 400.
    """
    if include_object not in ("Metadata", "", "Object", "None"):
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')
    resolved = resolve_columns(columns)
    moment = now or datetime.now(UTC)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": _table_metadata(list_metadata),
        "columnDefinitions": [column.definition() for column in resolved],
        "rows": [_row(obj, resolved, include_object, moment, api_version) for obj in objects],
    }


def resolve_columns(columns: Sequence[Column] | Sequence[JsonDict] | None) -> list[Column]:
    """Column objects for whatever ``to_table`` was given."""
    if columns is None or len(columns) == 0:
        return [name_column(), _crd_age_column()]
    if all(isinstance(column, Column) for column in columns):
        return [column for column in columns if isinstance(column, Column)]
    return printer_columns([column for column in columns if isinstance(column, dict)])


def printer_columns(additional_printer_columns: list[JsonDict]) -> list[Column]:
    """Name, then a CRD version's ``additionalPrinterColumns`` (JSONPath cells)."""
    if not additional_printer_columns:
        return [name_column(), _crd_age_column()]
    result = [name_column()]
    for column in additional_printer_columns:
        json_path = str(column.get("jsonPath", ""))
        default_description = f"Custom resource definition column (in JSONPath format): {json_path}"
        result.append(
            Column(
                name=str(column.get("name", "")),
                type=str(column.get("type", "")),
                format=str(column.get("format", "") or ""),
                description=str(column.get("description") or default_description),
                priority=int(column.get("priority", 0) or 0),
                json_path=json_path,
            )
        )
    return result


def _table_metadata(list_metadata: JsonDict) -> JsonDict:
    metadata: JsonDict = {"resourceVersion": str(list_metadata.get("resourceVersion", ""))}
    if list_metadata.get("continue"):
        metadata["continue"] = list_metadata["continue"]
    if list_metadata.get("remainingItemCount") is not None:
        metadata["remainingItemCount"] = list_metadata["remainingItemCount"]
    return metadata


def _row(
    obj: JsonDict, columns: list[Column], include_object: str, now: datetime, api_version: str
) -> JsonDict:
    row: JsonDict = {"cells": [column.value(obj, now) for column in columns]}
    conditions = _row_conditions(obj)
    if conditions:
        row["conditions"] = conditions
    if include_object == "Object":
        row["object"] = clone(obj)
    elif include_object == "None":
        row["object"] = None
    else:
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": api_version,
            "metadata": clone(obj.get("metadata", {})),
        }
    return row


def _row_conditions(obj: JsonDict) -> list[JsonDict]:
    """Finished pods carry a ``Completed`` row condition (kubectl hides them unless -a)."""
    if obj.get("kind") != "Pod":
        return []
    phase = obj.get("status", {}).get("phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


# ================================================================================================
# Cells: JSONPath, dates and ages
# ================================================================================================
def json_path_cell(column_type: str, path: str, obj: JsonDict, now: datetime) -> Any:
    """The cell of a CRD printer column, like the apiextensions table convertor builds it."""
    try:
        results = evaluate_json_path(path, obj)
    except ValueError:
        return None
    if not results:
        return None
    value = results[0]
    if column_type == "string":
        return _print_json_path_value(value)
    return _typed_cell(column_type, value, now)


def _print_json_path_value(value: Any) -> str:
    """JSONPath printing: text as is, numbers like Go, objects and lists as compact JSON."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict | list):
        return go_json(value)
    return str(value)


def _typed_cell(column_type: str, value: Any, now: datetime) -> Any:
    if value is None or (isinstance(value, bool) and column_type in ("integer", "number")):
        return None
    if column_type == "integer" and isinstance(value, int | float):
        return int(value)
    if column_type == "number" and isinstance(value, int | float):
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        moment = parse_timestamp(value)
        return "<invalid>" if moment is None else human_age(moment, now)
    return None


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time``), or None when it is not one."""
    if not _RFC3339.match(text):
        return None
    normalized = text.upper().replace("Z", "+00:00")
    if "." in normalized:
        head, rest = normalized.split(".", 1)
        digits = re.match(r"\d+", rest)
        fraction = digits.group(0) if digits else ""
        normalized = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ``45s``, ``3m10s``, ``5h``, ``2d3h``, ``3y``..."""
    whole_seconds = int(seconds)
    if whole_seconds < -1:
        return "<invalid>"
    if whole_seconds < 0:
        return "0s"
    if whole_seconds < 60 * 2:
        return f"{whole_seconds}s"
    minutes = whole_seconds // 60
    if minutes < 10:
        rest = whole_seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole_seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def human_age(moment: datetime, now: datetime) -> str:
    """The age of a timestamp as printed in tables; the zero time is ``<unknown>``."""
    if moment.year == 1 and moment.month == 1 and moment.day == 1:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def _age_of(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` when unset."""
    moment = parse_timestamp(value) if isinstance(value, str) else None
    return "<unknown>" if moment is None else human_age(moment, now)


def _created_at(obj: JsonDict, _now: datetime) -> str:
    """The default convertor's ``Created At``: the raw RFC 3339 UTC timestamp."""
    moment = parse_timestamp(str(obj.get("metadata", {}).get("creationTimestamp") or ""))
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ================================================================================================
# The JSONPath subset used by printer columns
# ================================================================================================
_FILTER = re.compile(r"^@((?:\.[^.=!<>\s]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


def evaluate_json_path(path: str, obj: Any) -> list[Any]:
    """All values ``path`` selects in ``obj`` (missing keys select nothing).

    Supports ``.field``, ``['field']``, ``[n]``, ``[-n]``, ``[*]``, ``.*`` and filters
    ``[?(@.a.b == "x")]`` with ``== != < <= > >=`` or a bare ``[?(@.a)]`` existence test.
    Raises ValueError on syntax it does not understand.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    current = [obj]
    for step in _tokenize(text):
        current = [found for value in current for found in _apply_step(step, value)]
    return current


def _tokenize(path: str) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    position = 0
    while position < len(path):
        char = path[position]
        if char == ".":
            match = re.match(r"[^.\[]+", path[position + 1 :])
            if match is None:
                raise ValueError(f"unexpected path string: {path!r}")
            name = match.group(0)
            steps.append(("wildcard", "") if name == "*" else ("field", name))
            position += 1 + len(name)
        elif char == "[":
            end = _closing_bracket(path, position)
            steps.append(_bracket_step(path[position + 1 : end]))
            position = end + 1
        elif char == "$" and position == 0:
            position += 1
        else:
            raise ValueError(f"unrecognized character in path: {char!r}")
    return steps


def _closing_bracket(path: str, start: int) -> int:
    depth = 0
    quote = ""
    for position in range(start, len(path)):
        char = path[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                return position
    raise ValueError(f"unclosed bracket in path: {path!r}")


def _bracket_step(inner: str) -> tuple[str, str]:
    inner = inner.strip()
    if inner == "*":
        return ("wildcard", "")
    if inner.startswith("?(") and inner.endswith(")"):
        return ("filter", inner[2:-1].strip())
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return ("index", inner)
    raise ValueError(f"unsupported subscript: [{inner}]")


def _apply_step(step: tuple[str, str], value: Any) -> list[Any]:
    kind, argument = step
    if kind == "field":
        return [value[argument]] if isinstance(value, dict) and argument in value else []
    if kind == "wildcard":
        if isinstance(value, dict):
            return [value[key] for key in sorted(value)]
        return list(value) if isinstance(value, list) else []
    if kind == "index":
        if not isinstance(value, list):
            return []
        position = int(argument)
        position = position + len(value) if position < 0 else position
        return [value[position]] if 0 <= position < len(value) else []
    if not isinstance(value, list):
        return []
    return [item for item in value if _filter_matches(argument, item)]


def _filter_matches(expression: str, item: Any) -> bool:
    match = _FILTER.match(expression)
    if match is None:
        raise ValueError(f"unsupported filter: {expression!r}")
    fields, operator, literal = match.groups()
    found = [item]
    for name in [part for part in fields.split(".") if part]:
        found = [v[name] for v in found if isinstance(v, dict) and name in v]
    if not found:
        return False
    if operator is None:
        return True
    return _compare(found[0], operator, _literal(literal))


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError as error:
        raise ValueError(f"unsupported filter literal: {text!r}") from error


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator in ("==", "!="):
        equal = type(left) is type(right) and bool(left == right)
        if isinstance(left, int | float) and isinstance(right, int | float):
            equal = not isinstance(left, bool) and bool(left == right)
        return equal if operator == "==" else not equal
    if not (isinstance(left, int | float) and isinstance(right, int | float)):
        return False
    comparisons: dict[str, Callable[[float, float], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return comparisons[operator](left, right)


# ================================================================================================
# Column definitions shared by the built-in printers
# ================================================================================================
@cache
def _doc(definition: str, field: str) -> str:
    """A field's OpenAPI description (the Go type's SwaggerDoc)."""
    node = builtin_definition(definition)
    return str(node.property(field).raw.get("description", "")) if node.known else ""


_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def name_column(priority: int = 0) -> Column:
    return Column(
        name="Name",
        type="string",
        format="name",
        description=_doc(_OBJECT_META, "name"),
        priority=priority,
        cell=lambda obj, _now: str(obj.get("metadata", {}).get("name", "")),
    )


def _age_column() -> Column:
    return Column(
        name="Age",
        type="string",
        description=_doc(_OBJECT_META, "creationTimestamp"),
        cell=lambda obj, now: _age_of(obj.get("metadata", {}).get("creationTimestamp"), now),
    )


def _crd_age_column() -> Column:
    """The Age column the apiserver adds for a CRD version without printer columns."""
    return Column(
        name="Age",
        type="date",
        description=_doc(_OBJECT_META, "creationTimestamp"),
        json_path=".metadata.creationTimestamp",
    )


def default_columns() -> list[Column]:
    """The default table convertor (kinds without a printer, e.g. CRDs): Name, Created At."""
    return [
        name_column(),
        Column(
            name="Created At",
            type="date",
            description=_doc(_OBJECT_META, "creationTimestamp"),
            cell=_created_at,
        ),
    ]


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
        _age_column(),
        _text(_doc(_POD_STATUS, "podIP"), "IP", _pod_ip, priority=1),
        _text(
            _doc(_POD_SPEC, "nodeName"),
            "Node",
            lambda obj, _now: _or_none(str(_get(obj, "spec", "nodeName") or "")),
            priority=1,
        ),
        _text(
            _doc(_POD_STATUS, "nominatedNodeName"),
            "Nominated Node",
            lambda obj, _now: _or_none(str(_get(obj, "status", "nominatedNodeName") or "")),
            priority=1,
        ),
        _text(_doc(_POD_SPEC, "readinessGates"), "Readiness Gates", _readiness_gates, priority=1),
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
        _age_column(),
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
        _age_column(),
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
            _doc(_SERVICE_SPEC, "type"),
            "Type",
            lambda obj, _now: str(_get(obj, "spec", "type") or "ClusterIP"),
        ),
        _text(_doc(_SERVICE_SPEC, "clusterIP"), "Cluster-IP", _service_cluster_ip),
        _text(_doc(_SERVICE_SPEC, "externalIPs"), "External-IP", _service_external_ip),
        _text(_doc(_SERVICE_SPEC, "ports"), "Port(s)", _service_ports),
        _age_column(),
        _text(_doc(_SERVICE_SPEC, "selector"), "Selector", _service_selector, priority=1),
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
            description=_doc("io.k8s.api.core.v1.ConfigMap", "data"),
            cell=_data_count,
        ),
        _age_column(),
    ]


def _secret_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            _doc("io.k8s.api.core.v1.Secret", "type"),
            "Type",
            lambda obj, _now: str(obj.get("type") or "Opaque"),
        ),
        Column(
            name="Data",
            type="string",
            description=_doc("io.k8s.api.core.v1.Secret", "data"),
            cell=lambda obj, _now: len(obj.get("data") or {}),
        ),
        _age_column(),
    ]


def _namespace_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            "The status of the namespace",
            "Status",
            lambda obj, _now: str(_get(obj, "status", "phase") or ""),
        ),
        _age_column(),
    ]


def _lease_columns() -> list[Column]:
    return [
        name_column(),
        _text(
            _doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
            "Holder",
            lambda obj, _now: str(_get(obj, "spec", "holderIdentity") or ""),
        ),
        _age_column(),
    ]


# --- events --------------------------------------------------------------------------------------
_EVENT = "io.k8s.api.core.v1.Event"


def _event_first_seen(obj: JsonDict, now: datetime) -> str:
    if obj.get("firstTimestamp"):
        return _age_of(obj["firstTimestamp"], now)
    return _age_of(obj.get("eventTime"), now)


def _event_last_seen(obj: JsonDict, now: datetime) -> str:
    series_last = _get(obj, "series", "lastObservedTime")
    if series_last:
        return _age_of(series_last, now)
    if obj.get("lastTimestamp"):
        return _age_of(obj["lastTimestamp"], now)
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
        _text(_doc(_EVENT, "lastTimestamp"), "Last Seen", _event_last_seen),
        _text(_doc(_EVENT, "type"), "Type", lambda obj, _now: str(obj.get("type") or "")),
        _text(_doc(_EVENT, "reason"), "Reason", lambda obj, _now: str(obj.get("reason") or "")),
        _text(_doc(_EVENT, "involvedObject"), "Object", _event_object),
        _text(
            _doc("io.k8s.api.core.v1.ObjectReference", "fieldPath"),
            "Subobject",
            lambda obj, _now: str(_get(obj, "involvedObject", "fieldPath") or ""),
            priority=1,
        ),
        _text(_doc(_EVENT, "source"), "Source", _event_source, priority=1),
        _text(
            _doc(_EVENT, "message"),
            "Message",
            lambda obj, _now: str(obj.get("message") or "").strip(),
        ),
        _text(_doc(_EVENT, "firstTimestamp"), "First Seen", _event_first_seen, priority=1),
        Column(
            name="Count",
            type="string",
            description=_doc(_EVENT, "count"),
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
