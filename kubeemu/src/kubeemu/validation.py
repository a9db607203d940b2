"""Metadata, immutability and Event validation of built-in objects, as the 1.31 apiserver does it.

The store calls these on create/update with the decoded (and defaulted) objects; each returns
``(field, reason, message)`` causes, which :func:`kubeemu.errors.invalid` turns into the 422
``Invalid`` Status.  Rules and texts are transcribed from upstream's
``apimachinery/pkg/api/validation/objectmeta.go``, ``apimachinery/pkg/util/validation``,
``pkg/apis/core/validation`` (ConfigMap, Secret, Service, events.go) and
``pkg/apis/apps/validation``.  A cause's message is upstream's ``field.Error.ErrorBody()``
(``Invalid value: "x": detail``, ``Required value``, ``Forbidden: detail``, ``Too long: ...``).
"""

from __future__ import annotations

import base64
from typing import Any

from kubeemu.fielderrors import forbidden, invalid, required, too_long
from kubeemu.goformat import go_quote, string_map, string_slice
from kubeemu.names import (
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)

JsonDict = dict[str, Any]
Cause = tuple[str, str, str]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
STATEFULSET_SPEC_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
_STATEFULSET_MUTABLE_SPEC = frozenset(
    {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    }
)
_EVENT_FIELD_LIMIT = 128
_EVENT_NOTE_LIMIT = 1024

_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})


# --- names ----------------------------------------------------------------------------------------
def path_segment_errors(value: str, prefix: bool = False) -> list[str]:
    """Upstream ``IsValidPathSegmentName`` (RBAC names may hold ``:``)."""
    if not prefix and value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


def _mask_trailing_dash(name: str) -> str:
    """Upstream's quirk for generateName prefixes: ``ab-`` is checked as ``aa``."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_errors(kind: str, group: str, name: str, prefix: bool = False) -> list[str]:
    """The name rule of a kind.

    Namespace: DNS-1123 label; Service: DNS-1035 label; RBAC kinds and core Events: path segment
    (what the generic registry checks); everything else: DNS-1123 subdomain.
    """
    if (group == _RBAC_GROUP and kind in _RBAC_KINDS) or (group == "" and kind == "Event"):
        return path_segment_errors(name, prefix)
    checked = _mask_trailing_dash(name) if prefix else name
    if group == "" and kind == "Namespace":
        return dns1123_label_errors(checked)
    if group == "" and kind == "Service":
        return dns1035_label_errors(checked)
    return dns1123_subdomain_errors(checked)


# --- metadata -------------------------------------------------------------------------------
def _label_causes(labels: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(labels, dict):
        return causes
    for key in sorted(labels):
        causes.extend(invalid(field, key, msg) for msg in qualified_name_errors(key))
        value = labels[key]
        text = value if isinstance(value, str) else str(value)
        causes.extend(invalid(field, text, msg) for msg in label_value_errors(text))
    return causes


def _annotation_causes(annotations: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(annotations, dict):
        return causes
    for key in sorted(annotations):
        causes.extend(invalid(field, key, msg) for msg in qualified_name_errors(key.lower()))
    size = sum(
        len(key.encode()) + len(str(value if value is not None else "").encode())
        for key, value in annotations.items()
    )
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _owner_reference_causes(references: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    for reference in references if isinstance(references, list) else []:
        if not isinstance(reference, dict):
            continue
        api_version = str(reference.get("apiVersion") or "")
        if not api_version.rsplit("/", 1)[-1]:
            causes.append(invalid(f"{field}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not reference.get(key):
                causes.append(
                    invalid(f"{field}.{key}", str(reference.get(key) or ""), "must not be empty")
                )
    return causes


def _finalizer_causes(finalizers: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(finalizers, list):
        return causes
    for finalizer in finalizers:
        text = str(finalizer)
        causes.extend(invalid(field, text, msg) for msg in qualified_name_errors(text))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        causes.append(
            invalid(
                field,
                string_slice([str(f) for f in finalizers]),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    return causes


def validate_metadata(obj: JsonDict, *, kind: str, group: str, namespaced: bool) -> list[Cause]:
    """Upstream ``ValidateObjectMeta`` for the final object (name already generated)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    causes: list[Cause] = []
    generate_name = metadata.get("generateName")
    if generate_name:
        causes.extend(
            invalid("metadata.generateName", generate_name, msg)
            for msg in name_errors(kind, group, str(generate_name), prefix=True)
        )
    name = metadata.get("name")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes.extend(
            invalid("metadata.name", name, msg) for msg in name_errors(kind, group, str(name))
        )
    namespace = metadata.get("namespace")
    if namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes.extend(
                invalid("metadata.namespace", namespace, msg)
                for msg in dns1123_label_errors(str(namespace))
            )
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    generation = metadata.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(
            invalid("metadata.generation", generation, "must be greater than or equal to 0")
        )
    causes.extend(_label_causes(metadata.get("labels"), "metadata.labels"))
    causes.extend(_annotation_causes(metadata.get("annotations"), "metadata.annotations"))
    causes.extend(
        _owner_reference_causes(metadata.get("ownerReferences"), "metadata.ownerReferences")
    )
    causes.extend(_finalizer_causes(metadata.get("finalizers"), "metadata.finalizers"))
    return causes


# --- immutability on update -------------------------------------------------------------------
def _semantic(value: Any) -> Any:
    """Normalise for Go's ``Semantic.DeepEqual``: nil and empty slices/maps are equal."""
    if isinstance(value, dict):
        cleaned = {key: _semantic(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if item not in (None, [], {})}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def semantically_equal(left: Any, right: Any) -> bool:
    return bool(_semantic(left) == _semantic(right))


def _spec(obj: JsonDict) -> JsonDict:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def go_label_selector(selector: Any) -> str:
    """A ``metav1.LabelSelector`` as Go's ``%#v`` prints it in "field is immutable" errors."""
    if not isinstance(selector, dict):
        return "null"
    match_labels = selector.get("matchLabels")
    if match_labels:
        labels_text = string_map({str(k): str(v) for k, v in match_labels.items()}).text
    else:
        labels_text = "map[string]string(nil)"
    expressions = selector.get("matchExpressions")
    if expressions:
        rendered = []
        for expression in expressions:
            values = expression.get("values")
            values_text = string_slice([str(v) for v in values]).text if values else "[]string(nil)"
            rendered.append(
                "v1.LabelSelectorRequirement{"
                f"Key:{go_quote(str(expression.get('key', '')))}, "
                f"Operator:{go_quote(str(expression.get('operator', '')))}, Values:{values_text}}}"
            )
        expressions_text = "[]v1.LabelSelectorRequirement{" + ", ".join(rendered) + "}"
    else:
        expressions_text = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{expressions_text}}}"


def _selector_immutable(old: JsonDict, new: JsonDict) -> list[Cause]:
    old_selector, new_selector = _spec(old).get("selector"), _spec(new).get("selector")
    if semantically_equal(old_selector, new_selector):
        return []
    message = f"Invalid value: {go_label_selector(new_selector)}: {FIELD_IMMUTABLE}"
    return [("spec.selector", "FieldValueInvalid", message)]


def _stateful_set_immutable(old: JsonDict, new: JsonDict) -> list[Cause]:
    frozen_old = {k: v for k, v in _spec(old).items() if k not in _STATEFULSET_MUTABLE_SPEC}
    frozen_new = {k: v for k, v in _spec(new).items() if k not in _STATEFULSET_MUTABLE_SPEC}
    if semantically_equal(frozen_old, frozen_new):
        return []
    return [forbidden("spec", STATEFULSET_SPEC_FORBIDDEN)]


def _cluster_ips(spec: JsonDict) -> list[str]:
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips:
        return [str(ip) for ip in ips]
    return [str(spec["clusterIP"])] if spec.get("clusterIP") else []


def _service_immutable(old: JsonDict, new: JsonDict) -> list[Cause]:
    """The primary clusterIP may not change once set (ExternalName and headless excepted).

    Empty ``clusterIP``/``clusterIPs`` in the new object mean "keep" (the registry copies the
    old values in before validation), so they pass.
    """
    old_spec, new_spec = _spec(old), _spec(new)
    if "ExternalName" in (old_spec.get("type"), new_spec.get("type")):
        return []
    old_ips = _cluster_ips(old_spec)
    new_ips = _cluster_ips(new_spec)
    clusterip_only_changed = new_spec.get("clusterIPs") in (None, [], old_spec.get("clusterIPs"))
    new_primary = new_spec.get("clusterIP")
    if new_primary and new_primary != old_spec.get("clusterIP") and clusterip_only_changed:
        new_ips = [str(new_primary)]
    if not old_ips or not new_ips or (old_ips[0] == "None" and new_ips[0] == "None"):
        return []
    causes = []
    for index, ip in enumerate(old_ips[: len(new_ips)]):
        if new_ips[index] != ip:
            causes.append(
                invalid(
                    f"spec.clusterIPs[{index}]", string_slice(new_ips), "may not change once set"
                )
            )
    return causes


def _decoded_secret_data(secret: JsonDict) -> dict[str, str]:
    """``data`` with ``stringData`` merged in, as upstream converts before validating."""
    data = {str(k): str(v) for k, v in (secret.get("data") or {}).items()}
    for key, value in (secret.get("stringData") or {}).items():
        data[str(key)] = base64.b64encode(str(value).encode()).decode()
    return data


def _immutable_data(old: JsonDict, new: JsonDict, fields: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if new.get("immutable") is not True:
        causes.append(forbidden("immutable", IMMUTABLE_WHEN_SET))
    for field in fields:
        if field == "data" and ("stringData" in old or "stringData" in new):
            changed = _decoded_secret_data(old) != _decoded_secret_data(new)
        else:
            changed = not semantically_equal(old.get(field), new.get(field))
        if changed:
            causes.append(forbidden(field, IMMUTABLE_WHEN_SET))
    return causes


def _secret_immutable(old: JsonDict, new: JsonDict) -> list[Cause]:
    causes = _immutable_data(old, new, ("data",))
    old_type, new_type = old.get("type") or "Opaque", new.get("type") or "Opaque"
    if old_type != new_type:
        causes.append(invalid("type", new_type, FIELD_IMMUTABLE))
    return causes


_WORKLOADS = frozenset({"StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"})


def _selector_matches(selector: JsonDict, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy a LabelSelector (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or [])
        present = key in labels
        if (
            (operator == "In" and (not present or labels[key] not in values))
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def validate_workload(kind: str, group: str, obj: JsonDict) -> list[Cause]:
    """A workload's template labels must match its selector (``ValidateStatefulSetSpec``...).

    Checked on create and update, before the update's immutability rules, as upstream does.
    """
    if group != "apps" or kind not in _WORKLOADS:
        return []
    spec = _spec(obj)
    selector = spec.get("selector")
    template = spec.get("template")
    if not isinstance(selector, dict) or not isinstance(template, dict):
        return []
    if not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return []
    raw_labels = (template.get("metadata") or {}).get("labels") or {}
    labels = {str(k): str(v) for k, v in raw_labels.items()}
    if _selector_matches(selector, labels):
        return []
    message = (
        f"Invalid value: {string_map(labels).text}: `selector` does not match template `labels`"
    )
    return [("spec.template.metadata.labels", "FieldValueInvalid", message)]


def validate_update_immutable(kind: str, group: str, old: JsonDict, new: JsonDict) -> list[Cause]:
    """Causes for changes the apiserver refuses on update of a built-in kind."""
    if group == "apps" and kind == "StatefulSet":
        return _stateful_set_immutable(old, new)
    if group == "apps" and kind in ("Deployment", "DaemonSet", "ReplicaSet"):
        return _selector_immutable(old, new)
    if group == "" and kind == "Service":
        return _service_immutable(old, new)
    if group == "" and kind == "ConfigMap":
        return _immutable_data(old, new, ("data", "binaryData"))
    if group == "" and kind == "Secret":
        return _secret_immutable(old, new)
    return []


# --- events -------------------------------------------------------------------------------
def _legacy_event_causes(event: JsonDict, namespace: str, *, core: bool) -> list[Cause]:
    """Upstream ``legacyValidateEvent``; ``event`` uses core/v1 (internal) field names."""
    causes: list[Cause] = []
    involved_namespace = str((event.get("involvedObject") or {}).get("namespace") or "")
    mismatch = invalid(
        "involvedObject.namespace", involved_namespace, "does not match event.namespace"
    )
    if not event.get("eventTime"):
        if not involved_namespace:
            if namespace not in ("", "default"):
                causes.append(mismatch)
        elif namespace != involved_namespace:
            causes.append(mismatch)
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            causes.append(mismatch)
        controller_field = "reportingComponent" if core else "reportingController"
        controller = str(event.get("reportingComponent") or "")
        if not controller:
            causes.append(required(controller_field))
        causes.extend(
            invalid(controller_field, controller, msg) for msg in qualified_name_errors(controller)
        )
        causes.extend(_bounded_event_field(event, "reportingInstance", _EVENT_FIELD_LIMIT, True))
        causes.extend(_bounded_event_field(event, "action", _EVENT_FIELD_LIMIT, True))
        causes.extend(_bounded_event_field(event, "reason", _EVENT_FIELD_LIMIT, True))
        causes.extend(_bounded_event_field(event, "message", _EVENT_NOTE_LIMIT, False))
    causes.extend(
        invalid("namespace", namespace, msg) for msg in dns1123_subdomain_errors(namespace)
    )
    return causes


def _bounded_event_field(event: JsonDict, field: str, limit: int, needed: bool) -> list[Cause]:
    value = str(event.get(field) or "")
    if needed and not value:
        return [required(field)]
    if len(value) > limit:
        return [invalid(field, "", f"can have at most {limit} characters")]
    return []


def _as_internal_event(event: JsonDict) -> JsonDict:
    """events.k8s.io/v1 field names mapped onto the internal (core) ones upstream validates."""
    renames = {
        "regarding": "involvedObject",
        "note": "message",
        "reportingController": "reportingComponent",
        "deprecatedSource": "source",
        "deprecatedFirstTimestamp": "firstTimestamp",
        "deprecatedLastTimestamp": "lastTimestamp",
        "deprecatedCount": "count",
    }
    return {renames.get(key, key): value for key, value in event.items()}


def _strict_event_causes(event: JsonDict) -> list[Cause]:
    """The extra checks of ``ValidateEventCreate`` for events.k8s.io/v1 (after ObjectMeta)."""
    causes: list[Cause] = []
    series = event.get("series")
    if isinstance(series, dict):
        if int(series.get("count") or 0) < 2:
            causes.append(invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            causes.append(required("series.lastObservedTime"))
    if not event.get("eventTime"):
        causes.append(required("eventTime"))
    event_type = str(event.get("type") or "")
    if event_type not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {event_type}"))
    if event.get("firstTimestamp"):
        causes.append(invalid("firstTimestamp", "", "needs to be unset"))
    if event.get("lastTimestamp"):
        causes.append(invalid("lastTimestamp", "", "needs to be unset"))
    if event.get("count"):
        causes.append(invalid("count", "", "needs to be unset"))
    source = event.get("source") if isinstance(event.get("source"), dict) else {}
    assert isinstance(source, dict)
    if source.get("component") or source.get("host"):
        causes.append(invalid("source", "", "needs to be unset"))
    return causes


def validate_event(obj: JsonDict, *, api_group: str) -> list[Cause]:
    """Upstream ``ValidateEventCreate`` for a core/v1 (``api_group=""``) or events.k8s.io/v1 body.

    Field paths are upstream's internal names, so an events.k8s.io ``note`` that is too long is
    reported on ``message`` and ``deprecatedCount`` on ``count``, exactly as the apiserver does.
    core/v1 Events get only the legacy checks (no required reason, no type check).
    """
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    namespace = str(metadata.get("namespace") or "")
    if api_group == "":
        return _legacy_event_causes(obj, namespace, core=True)
    event = _as_internal_event(obj)
    causes = _legacy_event_causes(event, namespace, core=False)
    causes.extend(validate_metadata(obj, kind="Event", group=api_group, namespaced=True))
    causes.extend(_strict_event_causes(event))
    return causes
