"""Custom resources against their CRD's structural ``openAPIV3Schema``, and CRDs themselves.

Data comes in as plain JSON objects (a custom resource, or a CustomResourceDefinition) plus the
:class:`~kubeemu.schema.SchemaNode` of the CRD version (``schema.crd_schema``).  Results go to the
admission layer: pruned objects and the paths of dropped fields (``fieldValidation``), defaulted
objects, and validation causes ``(field, reason, message)`` that ``errors.invalid`` turns into a
422 Status.  The algorithms follow the apiextensions-apiserver (pruning, defaulting, list-type
validation) and kube-openapi (schema validation), and the message texts are theirs as of
Kubernetes 1.31, including Go's value formatting (``Invalid value: "x"``, ``1e+06``,
``map[string]interface {}{...}``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from kubeemu.clone import clone
from kubeemu.goformat import bad_value, go_float, go_json, go_quote, is_number, json_equal
from kubeemu.schema import SchemaNode, builtin_definition, crd_schema

JsonDict = dict[str, Any]
Cause = tuple[str, str, str]

_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# field.ErrorType -> (StatusCause reason, message prefix), as in k8s.io/apimachinery field errors.
_REQUIRED = ("FieldValueRequired", "Required value")
_INVALID = ("FieldValueInvalid", "Invalid value")
_TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
_NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
_DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
_TOO_LONG = ("FieldValueTooLong", "Too long")
_TOO_MANY = ("FieldValueTooMany", "Too many")


# ================================================================================================
# Field paths and causes
# ================================================================================================
def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _index(path: str, position: int) -> str:
    return f"{path}[{position}]"


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _cause(path: str, kind: tuple[str, str], detail: str = "", *, value: Any = None) -> Cause:
    reason, prefix = kind
    body = prefix if kind in (_REQUIRED, _TOO_LONG) else f"{prefix}: {bad_value(value)}"
    if detail:
        body += f": {detail}"
    return (path, reason, body)


def unknown_field_message(path: str) -> str:
    """The strict-decoding / warning text for a pruned field, e.g. ``unknown field "spec.x"``."""
    return f'unknown field "{path.lstrip(".")}"'


# ================================================================================================
# Pruning
# ================================================================================================
def prune(obj: JsonDict, schema: SchemaNode) -> tuple[JsonDict, list[str]]:
    """Drop the fields ``schema`` does not specify; return the new object and the dropped paths.

    Paths are as the apiserver reports them for ``fieldValidation`` (``spec.foo``,
    ``spec.items[0].bar``, ``metadata.foo``): the root and every ``x-kubernetes-embedded-resource``
    keep ``apiVersion``, ``kind`` and ``metadata``, whose unknown keys are pruned against
    ObjectMeta.  ``x-kubernetes-preserve-unknown-fields`` keeps unknown keys but still prunes
    inside the properties it does specify.
    """
    result = clone(obj)
    dropped: list[str] = []
    if _is_builtin_kind(schema):
        _prune_typed(result, schema, "", dropped)
        return result, dropped
    _prune(result, schema, "", dropped, embedded=True)
    # The body is pruned first; metadata is coerced (and its unknown fields listed) afterwards.
    dropped.sort(key=lambda path: path.startswith("metadata."))
    return result, dropped


def _is_builtin_kind(schema: SchemaNode) -> bool:
    """Built-in kinds are decoded strictly into Go types rather than pruned structurally."""
    return "x-kubernetes-group-version-kind" in schema.raw


def _prune(value: Any, node: SchemaNode, path: str, dropped: list[str], *, embedded: bool) -> None:
    if not node.known:
        return
    if node.preserve_unknown_fields:
        _prune_inside_preserved(value, node, path, dropped, embedded=embedded)
        return
    if isinstance(value, dict):
        is_embedded = embedded or node.embedded_resource
        properties = node.raw.get("properties", {})
        extra = node.raw.get("additionalProperties")
        for key in list(value):
            field_path = _child(path, key)
            if is_embedded and key in _META_FIELDS:
                if key == "metadata":
                    _prune_metadata(value[key], field_path, dropped)
                continue
            if key in properties or isinstance(extra, dict):
                _prune(value[key], node.property(key), field_path, dropped, embedded=False)
            elif extra is True:
                continue
            else:
                dropped.append(field_path)
                del value[key]
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            _prune(item, items, _index(path, position), dropped, embedded=False)


def _prune_inside_preserved(
    value: Any, node: SchemaNode, path: str, dropped: list[str], *, embedded: bool
) -> None:
    if isinstance(value, dict):
        is_embedded = embedded or node.embedded_resource
        properties = node.raw.get("properties", {})
        has_extra_schema = isinstance(node.raw.get("additionalProperties"), dict)
        for key in list(value):
            field_path = _child(path, key)
            if is_embedded and key in _META_FIELDS:
                if key == "metadata":
                    _prune_metadata(value[key], field_path, dropped)
                continue
            if key in properties or has_extra_schema:
                _prune(value[key], node.property(key), field_path, dropped, embedded=False)
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            _prune(item, items, _index(path, position), dropped, embedded=False)


def _prune_metadata(metadata: Any, path: str, dropped: list[str]) -> None:
    """Keep only ObjectMeta's fields, like the apiserver's strict ObjectMeta round trip."""
    if isinstance(metadata, dict):
        _prune_typed(metadata, builtin_definition(_OBJECT_META), path, dropped)


def _prune_typed(value: Any, node: SchemaNode, path: str, dropped: list[str]) -> None:
    """Strict decoding into a Go type: objects without declared fields (FieldsV1) are opaque."""
    if not node.known:
        return
    if isinstance(value, dict):
        properties = node.raw.get("properties")
        extra = node.raw.get("additionalProperties")
        if not properties and extra is None:
            return
        for key in list(value):
            if (properties and key in properties) or isinstance(extra, dict):
                _prune_typed(value[key], node.property(key), _child(path, key), dropped)
            elif extra is not True:
                dropped.append(_child(path, key))
                del value[key]
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            _prune_typed(item, items, _index(path, position), dropped)


def drop_non_nullable_nulls(obj: JsonDict, schema: SchemaNode) -> JsonDict:
    """Remove ``null`` object fields that are neither nullable nor defaulted (done on decode)."""
    result = clone(obj)
    _drop_nulls(result, schema, root=True)
    return result


def _drop_nulls(value: Any, node: SchemaNode, *, root: bool = False) -> None:
    if isinstance(value, dict):
        for key in list(value):
            if root and key in _META_FIELDS:
                continue
            field_schema = _field_schema(node, key)
            item = value[key]
            if item is None and field_schema is not None and _null_is_dropped(field_schema):
                del value[key]
                continue
            if field_schema is not None:
                _drop_nulls(item, field_schema)
    elif isinstance(value, list) and node.known:
        items = node.items()
        for item in value:
            _drop_nulls(item, items)


def _null_is_dropped(field_schema: SchemaNode) -> bool:
    declared, default = field_schema.default
    return not field_schema.nullable and (not declared or default is None)


def _field_schema(node: SchemaNode, key: str) -> SchemaNode | None:
    """The schema of ``key`` in an object node, or None when the schema says nothing of it."""
    if not node.known:
        return None
    if node.has_property(key) or isinstance(node.raw.get("additionalProperties"), dict):
        return node.property(key)
    return None


# ================================================================================================
# Defaulting
# ================================================================================================
def apply_defaults(obj: JsonDict, schema: SchemaNode) -> JsonDict:
    """Apply ``default:`` values the way the apiserver does (on write and on read).

    A property's default is set when the property is absent (or null while not nullable) and
    its parent object exists; defaults under ``items`` apply to every item, under
    ``additionalProperties`` to every map value; defaulted values are defaulted further.
    """
    result = clone(obj)
    _default(result, schema, root=True)
    return result


def _default(value: Any, node: SchemaNode, *, root: bool = False) -> None:
    if not node.known:
        return
    if isinstance(value, dict):
        for name, sub in node.properties.items():
            if root and name in _META_FIELDS:
                continue
            declared, default = sub.default
            if not declared or default is None:
                continue
            if name not in value or (value[name] is None and not sub.nullable):
                value[name] = clone(default)
        for key, item in value.items():
            if root and key in _META_FIELDS:
                continue
            field_schema = _field_schema(node, key)
            if field_schema is not None:
                _default(item, field_schema)
    elif isinstance(value, list):
        items = node.items()
        for item in value:
            _default(item, items)


def prune_and_default(obj: JsonDict, schema: SchemaNode) -> tuple[JsonDict, list[str]]:
    """The apiserver's decoding of a custom resource: prune, drop bad nulls, then default."""
    pruned, dropped = prune(obj, schema)
    return apply_defaults(drop_non_nullable_nulls(pruned, schema), schema), dropped


# ================================================================================================
# Validation (kube-openapi schema validation, embedded resources, list-type uniqueness)
# ================================================================================================
def validate(obj: JsonDict, schema: SchemaNode) -> list[Cause]:
    """Causes ``(field, reason, message)`` for every way ``obj`` breaks ``schema``.

    Root ``apiVersion``, ``kind`` and ``metadata`` are left to metadata validation.
    """
    causes: list[Cause] = []
    _validate_value(obj, schema, "", causes, skip=_META_FIELDS)
    _validate_embedded(obj, schema, "", causes, root=True)
    _validate_list_types(obj, schema, "", causes, root=True)
    return causes


def _validate_value(
    value: Any, node: SchemaNode, path: str, causes: list[Cause], skip: frozenset[str] = frozenset()
) -> None:
    if not node.known:
        return
    types = _declared_types(node)
    value_format = _supported_format(node.raw.get("format"))
    if value is None:
        if types and not node.nullable:
            causes.append(_type_error(path, ",".join(types), "null"))
        _check_enum(value, node, path, causes)
        return
    _check_type(value, types, value_format, path, causes)
    if isinstance(value, str):
        _check_string(value, node.raw, path, causes)
        if value_format:
            _check_format(value, value_format, path, causes)
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
    return _cause(path, _TYPE_INVALID, detail, value=actual)


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
        causes.append(_cause(path, _TOO_LONG, f"may not be longer than {max_length}"))
        return
    min_length = raw.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        detail = f"{path} in body should be at least {min_length} chars long"
        causes.append(_cause(path, _INVALID, detail, value=value))
        return
    pattern = raw.get("pattern")
    if isinstance(pattern, str) and not _matches(pattern, value):
        detail = f"{path} in body should match '{pattern}'"
        causes.append(_cause(path, _INVALID, detail, value=value))


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
            causes.append(_cause(path, _INVALID, detail, value=value))
    minimum = raw.get("minimum")
    if minimum is not None and is_number(minimum):
        bound = _native_bound(minimum, value)
        exclusive = bool(raw.get("exclusiveMinimum"))
        if value < bound or (exclusive and value == bound):
            relation = "greater than" if exclusive else "greater than or equal to"
            detail = f"{path} in body should be {relation} {_format_bound(bound)}"
            causes.append(_cause(path, _INVALID, detail, value=value))
    maximum = raw.get("maximum")
    if maximum is not None and is_number(maximum):
        bound = _native_bound(maximum, value)
        exclusive = bool(raw.get("exclusiveMaximum"))
        if value > bound or (exclusive and value == bound):
            relation = "less than" if exclusive else "less than or equal to"
            detail = f"{path} in body should be {relation} {_format_bound(bound)}"
            causes.append(_cause(path, _INVALID, detail, value=value))


def _check_array(value: list[Any], node: SchemaNode, path: str, causes: list[Cause]) -> None:
    if "items" in node.raw:
        items = node.items()
        for position, item in enumerate(value):
            _validate_value(item, items, _index(path, position), causes)
    min_items = node.raw.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        detail = f"{path} in body should have at least {min_items} items"
        causes.append(_cause(path, _INVALID, detail, value=len(value)))
    max_items = node.raw.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        causes.append(_too_many(path, len(value), max_items))


def _too_many(path: str, actual: int, maximum: int) -> Cause:
    return _cause(path, _TOO_MANY, f"must have at most {maximum} items", value=actual)


def _check_enum(value: Any, node: SchemaNode, path: str, causes: list[Cause]) -> None:
    allowed = node.raw.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if any(json_equal(value, candidate) for candidate in allowed):
        return
    listed = [c if isinstance(c, str) else go_json(c) for c in allowed]
    detail = "supported values: " + ", ".join(go_quote(v) for v in listed)
    causes.append(_cause(path, _NOT_SUPPORTED, detail, value=value))


def _check_object(
    value: JsonDict, node: SchemaNode, path: str, causes: list[Cause], skip: frozenset[str]
) -> None:
    raw = node.raw
    count = len(value)
    min_properties = raw.get("minProperties")
    if isinstance(min_properties, int) and count < min_properties:
        detail = f"{path} in body should have at least {min_properties} properties"
        causes.append(_cause(path, _INVALID, detail, value=count))
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
            causes.append(_cause(path, _INVALID, detail, value=key))
        elif isinstance(extra, dict):
            _validate_value(item, node.property(key), _child(path, key), causes)
    for key in properties:
        if key in value and key not in skip:
            _validate_value(value[key], node.property(key), _child(path, key), causes)
    for key in raw.get("required", []):
        if key not in value:
            causes.append(_cause(_child(path, key), _REQUIRED))


# --- formats --------------------------------------------------------------------------------------
_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID4 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
)
_UUID5 = re.compile(
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
)
_TIME_OF_DAY = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HEX_COLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

# The formats the apiextensions-apiserver keeps (others are stripped before validation), as
# normalized names (dashes removed).  Formats without a checker here are accepted as they come.
_SUPPORTED_FORMATS = frozenset(
    {
        *("bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac"),
        *("uuid", "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn"),
        *("hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime"),
    }
)


def _supported_format(declared: Any) -> str:
    """The declared format if the apiserver keeps it, else ``""`` (it strips the others)."""
    if not isinstance(declared, str) or not declared:
        return ""
    return declared if declared.replace("-", "") in _SUPPORTED_FORMATS else ""


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _TIME_OF_DAY.match(parts[1])
    if match is None:
        return False
    return match.group(1) <= "23" and match.group(2) <= "59" and match.group(3) <= "59"


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except ValueError:
        return False
    return True


def _is_ip(text: str, separator: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return separator in text


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_hostname(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return 0 < len(text) <= 255 and all(_HOSTNAME_LABEL.match(label) for label in labels)


def _is_uri(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text)) or text.startswith("/")


_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_base64,
    "uuid": lambda text: bool(_UUID.match(text)),
    "uuid3": lambda text: bool(_UUID3.match(text)),
    "uuid4": lambda text: bool(_UUID4.match(text)),
    "uuid5": lambda text: bool(_UUID5.match(text)),
    "ipv4": lambda text: _is_ip(text, "."),
    "ipv6": lambda text: _is_ip(text, ":"),
    "cidr": _is_cidr,
    "mac": lambda text: bool(_MAC.match(text)),
    "hostname": _is_hostname,
    "hexcolor": lambda text: bool(_HEX_COLOR.match(text)),
    "email": lambda text: bool(_EMAIL.match(text)),
    "uri": _is_uri,
}


def _check_format(value: str, value_format: str, path: str, causes: list[Cause]) -> None:
    check = _FORMAT_CHECKS.get(value_format.replace("-", ""))
    if check is not None and not check(value):
        detail = f"{path} in body must be of type {value_format}: {go_quote(value)}"
        causes.append(_cause(path, _TYPE_INVALID, detail, value=value))


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
                    causes.append(_cause(_child(path, field), _REQUIRED, "must not be empty"))
                elif not isinstance(value[field], str):
                    causes.append(
                        _cause(
                            _child(path, field), _INVALID, "must be a string", value=value[field]
                        )
                    )
                elif not value[field]:
                    causes.append(
                        _cause(_child(path, field), _INVALID, "must not be empty", value="")
                    )
        for key, item, sub, _ in _child_schemas(node, value):
            if not (root and key in _META_FIELDS):
                _validate_embedded(item, sub, _child(path, key), causes)
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            _validate_embedded(item, items, _index(path, position), causes)


def _validate_list_types(
    value: Any, node: SchemaNode, path: str, causes: list[Cause], *, root: bool = False
) -> None:
    """Uniqueness of ``x-kubernetes-list-type: set`` items and ``map`` keys."""
    if not node.known:
        return
    if isinstance(value, dict):
        for key, item, sub, kind in _child_schemas(node, value):
            if root and key in _META_FIELDS:
                continue
            sub_path = _child(path, key) if kind == "child" else _key(path, key)
            _validate_list_types(item, sub, sub_path, causes)
    elif isinstance(value, list):
        list_type = node.raw.get("x-kubernetes-list-type")
        if list_type == "set":
            for position in _second_occurrences(value):
                causes.append(_cause(_index(path, position), _DUPLICATE, value=value[position]))
        elif list_type == "map":
            causes.extend(_list_map_duplicates(value, node, path))
        items = node.items()
        for position, item in enumerate(value):
            _validate_list_types(item, items, _index(path, position), causes)


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
            return [_cause(_index(path, position), _INVALID, detail, value=item)]
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
            causes.append(_cause(_index(path, position), _DUPLICATE, value=key_values[position]))
    return causes


# ================================================================================================
# CustomResourceDefinitions
# ================================================================================================
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _dns1035_errors(value: str) -> list[str]:
    found = []
    if len(value) > 63:
        found.append("must be no more than 63 characters")
    if not _DNS1035.match(value):
        found.append(_DNS1035_MESSAGE)
    return found


def _dns1123_subdomain_errors(value: str) -> list[str]:
    found = []
    if len(value) > 253:
        found.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        found.append(_DNS1123_SUBDOMAIN_MESSAGE)
    return found


def default_crd(crd: JsonDict) -> JsonDict:
    """apiextensions.k8s.io/v1 defaulting: names.singular, names.listKind, conversion None."""
    result = clone(crd)
    spec = result.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = str(names.get("kind") or "")
    if not names.get("singular"):
        names["singular"] = kind.lower()
    if not names.get("listKind") and kind:
        names["listKind"] = kind + "List"
    spec.setdefault("conversion", {"strategy": "None"})
    return result


def validate_crd(crd: JsonDict) -> list[Cause]:
    """The CRD rules the apiserver enforces (names, group, scope, versions, schemas)."""
    defaulted = default_crd(crd)
    spec: JsonDict = defaulted["spec"]
    names: JsonDict = spec.get("names") or {}
    group = str(spec.get("group") or "")
    causes: list[Cause] = []
    name = str(defaulted.get("metadata", {}).get("name") or "")
    if name != f"{names.get('plural') or ''}.{group}":
        detail = 'must be spec.names.plural+"."+spec.group'
        causes.append(_cause("metadata.name", _INVALID, detail, value=name))
    causes += _validate_crd_group(group)
    causes += _validate_crd_scope(str(spec.get("scope") or ""))
    causes += _validate_crd_versions(spec.get("versions") or [])
    causes += _validate_crd_names(names)
    return causes


def _validate_crd_group(group: str) -> list[Cause]:
    if not group:
        return [_cause("spec.group", _REQUIRED)]
    errors = _dns1123_subdomain_errors(group)
    if errors:
        return [_cause("spec.group", _INVALID, ",".join(errors), value=group)]
    if "." not in group:
        return [
            _cause("spec.group", _INVALID, "should be a domain with at least one dot", value=group)
        ]
    return []


def _validate_crd_scope(scope: str) -> list[Cause]:
    if not scope:
        return [_cause("spec.scope", _REQUIRED)]
    if scope not in ("Cluster", "Namespaced"):
        detail = 'supported values: "Cluster", "Namespaced"'
        return [_cause("spec.scope", _NOT_SUPPORTED, detail, value=scope)]
    return []


def _versions_value(versions: list[Any]) -> str:
    return "[]apiextensions.CustomResourceDefinitionVersion{" + go_json(versions) + "}"


def _validate_crd_versions(versions: list[Any]) -> list[Cause]:
    if not versions:
        return [_cause("spec.versions", _REQUIRED, "must have at least one version")]
    causes: list[Cause] = []
    names_seen: set[str] = set()
    unique = True
    storage_count = 0
    for position, entry in enumerate(versions):
        version: JsonDict = entry if isinstance(entry, dict) else {}
        path = f"spec.versions[{position}]"
        version_name = str(version.get("name") or "")
        unique = unique and version_name not in names_seen
        names_seen.add(version_name)
        storage_count += 1 if version.get("storage") else 0
        errors = _dns1035_errors(version_name)
        if errors:
            causes.append(_cause(f"{path}.name", _INVALID, ",".join(errors), value=version_name))
        causes += _validate_version_schema(version.get("schema"), f"{path}.schema.openAPIV3Schema")
    shown = _versions_value(versions)
    if not unique:
        causes.append(("spec.versions", *_invalid_body(shown, "must contain unique version names")))
    if storage_count != 1:
        detail = "must have exactly one version marked as storage version"
        causes.append(("spec.versions", *_invalid_body(shown, detail)))
    return causes


def _invalid_body(shown: str, detail: str) -> tuple[str, str]:
    """An Invalid cause whose bad value is a Go struct dump (approximated)."""
    return _INVALID[0], f"{_INVALID[1]}: {shown}: {detail}"


def _validate_version_schema(schema: Any, path: str) -> list[Cause]:
    root = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
    if not isinstance(root, dict):
        return [_cause(path, _REQUIRED, "schemas are required")]
    declared = root.get("type")
    if not declared:
        return [_cause(f"{path}.type", _REQUIRED, "must not be empty at the root")]
    if declared != "object":
        return [_cause(f"{path}.type", _INVALID, "must be object at the root", value=declared)]
    return _structural_type_errors(root, path)


def _structural_type_errors(node: JsonDict, path: str) -> list[Cause]:
    """Specified fields need a type, unless they preserve unknown fields or are int-or-string."""
    causes: list[Cause] = []
    for name, sub in (node.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        sub_path = f"{path}.properties[{name}]"
        untyped = not sub.get("type") and not sub.get("x-kubernetes-int-or-string")
        if untyped and not sub.get("x-kubernetes-preserve-unknown-fields"):
            causes.append(
                _cause(
                    f"{sub_path}.type", _REQUIRED, "must not be empty for specified object fields"
                )
            )
        causes += _structural_type_errors(sub, sub_path)
    items = node.get("items")
    if isinstance(items, dict):
        causes += _structural_type_errors(items, f"{path}.items")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        causes += _structural_type_errors(extra, f"{path}.additionalProperties")
    return causes


def _validate_crd_names(names: JsonDict) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("plural", "singular", "kind", "listKind"):
        if not names.get(field):
            causes.append(_cause(f"spec.names.{field}", _REQUIRED))
    for field in ("plural", "singular"):
        value = str(names.get(field) or "")
        errors = _dns1035_errors(value) if value else []
        if errors:
            causes.append(_cause(f"spec.names.{field}", _INVALID, ",".join(errors), value=value))
    for field in ("kind", "listKind"):
        value = str(names.get(field) or "")
        errors = _dns1035_errors(value.lower()) if value else []
        if errors:
            detail = "may have mixed case, but should otherwise match: " + ",".join(errors)
            causes.append(_cause(f"spec.names.{field}", _INVALID, detail, value=value))
    for position, short_name in enumerate(names.get("shortNames") or []):
        errors = _dns1035_errors(str(short_name))
        if errors:
            path = f"spec.names.shortNames[{position}]"
            causes.append(_cause(path, _INVALID, ",".join(errors), value=str(short_name)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        detail = "kind and listKind may not be the same"
        causes.append(_cause("spec.names.listKind", _INVALID, detail, value=names["kind"]))
    return causes


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def established_crd_status(crd: JsonDict, now: str | None = None) -> JsonDict:
    """The status the naming and establishing controllers give an accepted CRD."""
    spec = default_crd(crd)["spec"]
    names: JsonDict = spec.get("names") or {}
    accepted = {
        field: clone(names[field])
        for field in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
        if names.get(field)
    }
    stored = list(crd.get("status", {}).get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if (
            isinstance(version, dict)
            and version.get("storage")
            and version.get("name") not in stored
        ):
            stored.append(version["name"])
    timestamp = now or _utc_now()
    return {
        "conditions": [
            _condition("NamesAccepted", "NoConflicts", "no conflicts found", timestamp),
            _condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted",
                timestamp,
            ),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    }


def _condition(kind: str, reason: str, message: str, timestamp: str) -> JsonDict:
    return {
        "type": kind,
        "status": "True",
        "lastTransitionTime": timestamp,
        "reason": reason,
        "message": message,
    }


def version_schema(crd: JsonDict, version: str) -> SchemaNode:
    """The custom resource schema of one CRD version (``crd_schema`` of its openAPIV3Schema)."""
    for entry in crd.get("spec", {}).get("versions") or []:
        if isinstance(entry, dict) and entry.get("name") == version:
            return crd_schema((entry.get("schema") or {}).get("openAPIV3Schema"))
    return crd_schema(None)
