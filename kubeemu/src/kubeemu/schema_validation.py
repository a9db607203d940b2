"""Validation of a custom resource against its CRD version's ``openAPIV3Schema``.

Data comes in from the admission layer (``kubeemu.admission``): a pruned and defaulted custom
resource (``kubeemu.structural``) and the :class:`~kubeemu.schema.SchemaNode` of its version.
Out go the causes ``(field, reason, message)`` that ``kubeemu.errors.invalid`` turns into a 422
Status: kube-openapi's schema validation (types, bounds, lengths, patterns, enums, required,
``additionalProperties``), string formats (``kubeemu.formats``), embedded resources and the
``x-kubernetes-list-type`` set/map uniqueness checks of the apiextensions-apiserver, with the
texts of Kubernetes 1.31.
"""

from __future__ import annotations

import re
from typing import Any

from kubeemu.fielderrors import (
    DUPLICATE,
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    Cause,
    child_path,
    field_cause,
    index_path,
    key_path,
)
from kubeemu.formats import check_format, supported_format
from kubeemu.goformat import go_float, go_json, go_quote, is_number, json_equal
from kubeemu.schema import SchemaNode
from kubeemu.structural import META_FIELDS

JsonDict = dict[str, Any]


def validate(obj: JsonDict, schema: SchemaNode) -> list[Cause]:
    """Causes ``(field, reason, message)`` for every way ``obj`` breaks ``schema``.

    Root ``apiVersion``, ``kind`` and ``metadata`` are left to metadata validation.
    """
    causes: list[Cause] = []
    _validate_value(obj, schema, "", causes, skip=META_FIELDS)
    _validate_embedded(obj, schema, "", causes, root=True)
    _validate_list_types(obj, schema, "", causes, root=True)
    return causes


def _validate_value(
    value: Any, node: SchemaNode, path: str, causes: list[Cause], skip: frozenset[str] = frozenset()
) -> None:
    if not node.known:
        return
    types = _declared_types(node)
    value_format = supported_format(node.raw.get("format"))
    if value is None:
        if types and not node.nullable:
            causes.append(_type_error(path, ",".join(types), "null"))
        _check_enum(value, node, path, causes)
        return
    _check_type(value, types, value_format, path, causes)
    if isinstance(value, str):
        _check_string(value, node.raw, path, causes)
        if value_format:
            check_format(value, value_format, path, causes)
    elif is_number(value):
        _check_number(value, node.raw, path, causes)
    elif isinstance(value, list):
        _check_array(value, node, path, causes)
    _check_enum(value, node, path, causes)
    if isinstance(value, dict):
        _check_object(value, node, path, causes, skip)


def _declared_types(node: SchemaNode) -> list[str]:
    raw = node.raw
    if raw.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    declared = raw.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str) and t != "null"]
    return []


def _json_type(value: Any) -> tuple[str, str]:
    """The JSON type kube-openapi infers for a decoded value, with its Go format."""
    if isinstance(value, bool):
        return "boolean", ""
    if isinstance(value, int):
        return "integer", "int64"
    if isinstance(value, float):
        return "number", "float64"
    if isinstance(value, str):
        return "string", ""
    if isinstance(value, list):
        return "array", ""
    return "object", ""


def _type_error(path: str, expected: str, actual: str) -> Cause:
    detail = f"{path} in body must be of type {expected}: {go_quote(actual)}"
    return field_cause(path, TYPE_INVALID, detail, value=actual)


def _check_type(
    value: Any, types: list[str], value_format: str, path: str, causes: list[Cause]
) -> None:
    actual, go_format = _json_type(value)
    float_as_int = actual == "number" and float(value).is_integer() and "integer" in types
    int_as_float = actual == "integer" and "number" in types
    compatible = actual in types or float_as_int or int_as_float
    if not isinstance(value, str | list) and value_format and not compatible:
        causes.append(_type_error(path, value_format, go_format))
        return
    if value_format and isinstance(value, str | list) and not {"number", "integer"} & set(types):
        return
    if types and not compatible:
        causes.append(_type_error(path, ",".join(types), actual))


def _check_string(value: str, raw: JsonDict, path: str, causes: list[Cause]) -> None:
    """maxLength, minLength, pattern: kube-openapi stops at the first failure."""
    max_length = raw.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        causes.append(field_cause(path, TOO_LONG, f"may not be longer than {max_length}"))
        return
    min_length = raw.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        detail = f"{path} in body should be at least {min_length} chars long"
        causes.append(field_cause(path, INVALID, detail, value=value))
        return
    pattern = raw.get("pattern")
    if isinstance(pattern, str) and not _matches(pattern, value):
        detail = f"{path} in body should match '{pattern}'"
        causes.append(field_cause(path, INVALID, detail, value=value))


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


def _native_bound(bound: float, value: float) -> float:
    """kube-openapi compares an integer value with the bound truncated to an integer."""
    return int(bound) if isinstance(value, int) else float(bound)


def _format_bound(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else go_float(bound)


def _is_multiple(value: float, factor: float) -> bool:
    if isinstance(value, int) and isinstance(factor, int):
        return value % factor == 0
    return float(value / factor).is_integer()


def _check_number(value: float, raw: JsonDict, path: str, causes: list[Cause]) -> None:
    """multipleOf, then minimum, then maximum (the order kube-openapi merges them in)."""
    factor = raw.get("multipleOf")
    if factor is not None and is_number(factor) and factor:
        bound = _native_bound(factor, value)
        if bound and not _is_multiple(value, bound):
            detail = f"{path} in body should be a multiple of {_format_bound(bound)}"
            causes.append(field_cause(path, INVALID, detail, value=value))
    minimum = raw.get("minimum")
    if minimum is not None and is_number(minimum):
        bound = _native_bound(minimum, value)
        exclusive = bool(raw.get("exclusiveMinimum"))
        if value < bound or (exclusive and value == bound):
            relation = "greater than" if exclusive else "greater than or equal to"
            detail = f"{path} in body should be {relation} {_format_bound(bound)}"
            causes.append(field_cause(path, INVALID, detail, value=value))
    maximum = raw.get("maximum")
    if maximum is not None and is_number(maximum):
        bound = _native_bound(maximum, value)
        exclusive = bool(raw.get("exclusiveMaximum"))
        if value > bound or (exclusive and value == bound):
            relation = "less than" if exclusive else "less than or equal to"
            detail = f"{path} in body should be {relation} {_format_bound(bound)}"
            causes.append(field_cause(path, INVALID, detail, value=value))


def _check_array(value: list[Any], node: SchemaNode, path: str, causes: list[Cause]) -> None:
    if "items" in node.raw:
        items = node.items()
        for position, item in enumerate(value):
            _validate_value(item, items, index_path(path, position), causes)
    min_items = node.raw.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        detail = f"{path} in body should have at least {min_items} items"
        causes.append(field_cause(path, INVALID, detail, value=len(value)))
    max_items = node.raw.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        causes.append(_too_many(path, len(value), max_items))


def _too_many(path: str, actual: int, maximum: int) -> Cause:
    return field_cause(path, TOO_MANY, f"must have at most {maximum} items", value=actual)


def _check_enum(value: Any, node: SchemaNode, path: str, causes: list[Cause]) -> None:
    allowed = node.raw.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if any(json_equal(value, candidate) for candidate in allowed):
        return
    listed = [c if isinstance(c, str) else go_json(c) for c in allowed]
    detail = "supported values: " + ", ".join(go_quote(v) for v in listed)
    causes.append(field_cause(path, NOT_SUPPORTED, detail, value=value))


def _check_object(
    value: JsonDict, node: SchemaNode, path: str, causes: list[Cause], skip: frozenset[str]
) -> None:
    raw = node.raw
    count = len(value)
    min_properties = raw.get("minProperties")
    if isinstance(min_properties, int) and count < min_properties:
        detail = f"{path} in body should have at least {min_properties} properties"
        causes.append(field_cause(path, INVALID, detail, value=count))
        return
    max_properties = raw.get("maxProperties")
    if isinstance(max_properties, int) and count > max_properties:
        causes.append(_too_many(path, count, max_properties))
        return
    properties = raw.get("properties", {})
    extra = raw.get("additionalProperties")
    for key, item in value.items():
        if key in properties or key in skip:
            continue
        if extra is False:
            detail = f"{path}.{key} in body is a forbidden property"
            causes.append(field_cause(path, INVALID, detail, value=key))
        elif isinstance(extra, dict):
            _validate_value(item, node.property(key), child_path(path, key), causes)
    for key in properties:
        if key in value and key not in skip:
            _validate_value(value[key], node.property(key), child_path(path, key), causes)
    for key in raw.get("required", []):
        if key not in value:
            causes.append(field_cause(child_path(path, key), REQUIRED))


# --- embedded resources and list types ------------------------------------------------------------
def _child_schemas(node: SchemaNode, value: JsonDict) -> list[tuple[str, Any, SchemaNode, str]]:
    """``(key, value, schema, kind)`` for each specified field; kind is ``child`` or ``key``."""
    found = []
    has_extra = isinstance(node.raw.get("additionalProperties"), dict)
    for key, item in value.items():
        if node.has_property(key):
            found.append((key, item, node.property(key), "child"))
        elif has_extra:
            found.append((key, item, node.property(key), "key"))
    return found


def _validate_embedded(
    value: Any, node: SchemaNode, path: str, causes: list[Cause], *, root: bool = False
) -> None:
    """Embedded resources need ``apiVersion`` and ``kind`` (objectmeta validation)."""
    if not node.known:
        return
    if isinstance(value, dict):
        if node.embedded_resource and not root:
            for field in ("apiVersion", "kind"):
                if field not in value:
                    causes.append(
                        field_cause(child_path(path, field), REQUIRED, "must not be empty")
                    )
                elif not isinstance(value[field], str):
                    causes.append(
                        field_cause(
                            child_path(path, field), INVALID, "must be a string", value=value[field]
                        )
                    )
                elif not value[field]:
                    causes.append(
                        field_cause(child_path(path, field), INVALID, "must not be empty", value="")
                    )
        for key, item, sub, _ in _child_schemas(node, value):
            if not (root and key in META_FIELDS):
                _validate_embedded(item, sub, child_path(path, key), causes)
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            _validate_embedded(item, items, index_path(path, position), causes)


def _validate_list_types(
    value: Any, node: SchemaNode, path: str, causes: list[Cause], *, root: bool = False
) -> None:
    """Uniqueness of ``x-kubernetes-list-type: set`` items and ``map`` keys."""
    if not node.known:
        return
    if isinstance(value, dict):
        for key, item, sub, kind in _child_schemas(node, value):
            if root and key in META_FIELDS:
                continue
            sub_path = child_path(path, key) if kind == "child" else key_path(path, key)
            _validate_list_types(item, sub, sub_path, causes)
    elif isinstance(value, list):
        list_type = node.raw.get("x-kubernetes-list-type")
        if list_type == "set":
            for position in _second_occurrences(value):
                causes.append(
                    field_cause(index_path(path, position), DUPLICATE, value=value[position])
                )
        elif list_type == "map":
            causes.extend(_list_map_duplicates(value, node, path))
        items = node.items()
        for position, item in enumerate(value):
            _validate_list_types(item, items, index_path(path, position), causes)


def _identity(value: Any) -> str:
    """A key equal for values Go's uniqueness check sees as equal (int 1 and float 1 differ)."""
    if isinstance(value, dict | list):
        return "c" + go_json(value)
    return f"s{type(value).__name__}:{value!r}"


def _second_occurrences(values: list[Any]) -> list[int]:
    """Indexes where a value appears for the second time (later repeats are not reported)."""
    seen: dict[str, int] = {}
    found = []
    for position, value in enumerate(values):
        identity = _identity(value)
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            found.append(position)
    return found


def _list_map_duplicates(value: list[Any], node: SchemaNode, path: str) -> list[Cause]:
    for position, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            return [field_cause(index_path(path, position), INVALID, detail, value=item)]
    keys = node.raw.get("x-kubernetes-list-map-keys") or []
    key_values = [
        {k: item[k] for k in keys if k in item} if isinstance(item, dict) else {} for item in value
    ]
    identities: list[Any] = [_identity(kv) for kv in key_values]
    if len(keys) == 1:
        identities = [
            _identity(item[keys[0]]) if isinstance(item, dict) and keys[0] in item else "unset"
            for item in value
        ]
    seen: dict[str, int] = {}
    causes = []
    for position, identity in enumerate(identities):
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            causes.append(
                field_cause(index_path(path, position), DUPLICATE, value=key_values[position])
            )
    return causes
