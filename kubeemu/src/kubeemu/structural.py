"""Pruning, null-dropping and defaulting of custom resources by their structural schema.

Data comes in as a custom resource (plain JSON) plus the :class:`~kubeemu.schema.SchemaNode` of
its CRD version (``schema.crd_schema``), from the admission layer (``kubeemu.admission``) on
every write and from ``kubeemu.api`` on every read (defaults added to a schema later show on
stored objects).  Results go back to admission: pruned objects and the paths of dropped fields
(reported per ``fieldValidation``), objects without the nulls a non-nullable field may not
hold, and defaulted objects.  The algorithms are the apiextensions-apiserver's (1.31)
``structural/pruning`` and ``structural/defaulting``; ``kubeemu.schema_validation`` then
validates the result.
"""

from __future__ import annotations

from typing import Any

from kubeemu.clone import clone
from kubeemu.fielderrors import child_path, index_path
from kubeemu.schema import SchemaNode, builtin_definition

JsonDict = dict[str, Any]

META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def unknown_field_message(path: str) -> str:
    """The strict-decoding / warning text for a pruned field, e.g. ``unknown field "spec.x"``."""
    return f'unknown field "{path.lstrip(".")}"'


def prune(obj: JsonDict, schema: SchemaNode) -> tuple[JsonDict, list[str]]:
    """Drop the fields ``schema`` does not specify; return the new object and the dropped paths.

    Paths are as the apiserver reports them for ``fieldValidation`` (``spec.foo``,
    ``spec.items[0].bar``, ``metadata.foo``): the root and every ``x-kubernetes-embedded-resource``
    keep ``apiVersion``, ``kind`` and ``metadata``, whose unknown keys are pruned against
    ObjectMeta.  ``x-kubernetes-preserve-unknown-fields`` keeps unknown keys but still prunes
    inside the properties it does specify.
    """
    result = clone(obj)
    return result, _walk(result, schema, delete=True)


def unknown_fields(obj: JsonDict, schema: SchemaNode) -> list[str]:
    """The paths :func:`prune` would drop, in its order, without copying or changing ``obj``.

    Most writes carry no unknown field: the admission layer asks this first and copies
    only when there is something to drop.
    """
    return _walk(obj, schema, delete=False)


def _walk(obj: JsonDict, schema: SchemaNode, *, delete: bool) -> list[str]:
    """Find (and with ``delete``, drop) the fields ``schema`` does not specify."""
    dropped: list[str] = []
    if _is_builtin_kind(schema):
        _prune_typed(obj, schema, "", dropped, delete)
        return dropped
    _prune(obj, schema, "", dropped, embedded=True, delete=delete)
    # The body is pruned first; metadata is coerced (and its unknown fields listed) afterwards.
    dropped.sort(key=lambda path: path.startswith("metadata."))
    return dropped


def _is_builtin_kind(schema: SchemaNode) -> bool:
    """Built-in kinds are decoded strictly into Go types rather than pruned structurally."""
    return "x-kubernetes-group-version-kind" in schema.raw


def _prune(
    value: Any, node: SchemaNode, path: str, dropped: list[str], *, embedded: bool, delete: bool
) -> None:
    if not node.known:
        return
    if node.preserve_unknown_fields:
        _prune_inside_preserved(value, node, path, dropped, embedded=embedded, delete=delete)
        return
    if isinstance(value, dict):
        is_embedded = embedded or node.embedded_resource
        properties = node.raw.get("properties", {})
        extra = node.raw.get("additionalProperties")
        for key in list(value):
            field_path = child_path(path, key)
            if is_embedded and key in META_FIELDS:
                if key == "metadata":
                    _prune_metadata(value[key], field_path, dropped, delete)
                continue
            if key in properties or isinstance(extra, dict):
                if not isinstance(value[key], dict | list):
                    continue  # nothing to prune in a scalar
                _prune(
                    value[key],
                    node.property(key),
                    field_path,
                    dropped,
                    embedded=False,
                    delete=delete,
                )
            elif extra is True:
                continue
            else:
                dropped.append(field_path)
                if delete:
                    del value[key]
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            if isinstance(item, dict | list):  # nothing to prune in a scalar
                _prune(
                    item, items, index_path(path, position), dropped, embedded=False, delete=delete
                )


def _prune_inside_preserved(
    value: Any, node: SchemaNode, path: str, dropped: list[str], *, embedded: bool, delete: bool
) -> None:
    if isinstance(value, dict):
        is_embedded = embedded or node.embedded_resource
        properties = node.raw.get("properties", {})
        has_extra_schema = isinstance(node.raw.get("additionalProperties"), dict)
        for key in list(value):
            field_path = child_path(path, key)
            if is_embedded and key in META_FIELDS:
                if key == "metadata":
                    _prune_metadata(value[key], field_path, dropped, delete)
                continue
            if key in properties or has_extra_schema:
                if not isinstance(value[key], dict | list):
                    continue
                _prune(
                    value[key],
                    node.property(key),
                    field_path,
                    dropped,
                    embedded=False,
                    delete=delete,
                )
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            if isinstance(item, dict | list):  # nothing to prune in a scalar
                _prune(
                    item, items, index_path(path, position), dropped, embedded=False, delete=delete
                )


def _prune_metadata(metadata: Any, path: str, dropped: list[str], delete: bool) -> None:
    """Keep only ObjectMeta's fields, like the apiserver's strict ObjectMeta round trip."""
    if isinstance(metadata, dict):
        _prune_typed(metadata, builtin_definition(_OBJECT_META), path, dropped, delete)


def _prune_typed(
    value: Any, node: SchemaNode, path: str, dropped: list[str], delete: bool = True
) -> None:
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
                child = value[key]
                if isinstance(child, dict | list):  # nothing to prune in a scalar
                    _prune_typed(child, node.property(key), child_path(path, key), dropped, delete)
            elif extra is not True:
                dropped.append(child_path(path, key))
                if delete:
                    del value[key]
    elif isinstance(value, list):
        items = node.items()
        for position, item in enumerate(value):
            if isinstance(item, dict | list):
                _prune_typed(item, items, index_path(path, position), dropped, delete)


def drop_non_nullable_nulls(obj: JsonDict, schema: SchemaNode) -> JsonDict:
    """Remove ``null`` object fields that are neither nullable nor defaulted (done on decode)."""
    result = clone(obj)
    _drop_nulls(result, schema, root=True)
    return result


def _drop_nulls(value: Any, node: SchemaNode, *, root: bool = False) -> None:
    if isinstance(value, dict):
        for key in list(value):
            if root and key in META_FIELDS:
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
def apply_defaults(obj: JsonDict, schema: SchemaNode, *, copy: bool = True) -> JsonDict:
    """Apply ``default:`` values the way the apiserver does (on write and on read).

    A property's default is set when the property is absent (or null while not nullable) and
    its parent object exists; defaults under ``items`` apply to every item, under
    ``additionalProperties`` to every map value; defaulted values are defaulted further.
    The result is a defaulted copy, or ``obj`` itself defaulted in place when not ``copy``.
    """
    result = clone(obj) if copy else obj
    _default(result, schema, root=True)
    return result


def _default(value: Any, node: SchemaNode, *, root: bool = False) -> None:
    if not node.known:
        return
    if isinstance(value, dict):
        for name, sub in node.properties.items():
            if root and name in META_FIELDS:
                continue
            declared, default = sub.default
            if not declared or default is None:
                continue
            if name not in value or (value[name] is None and not sub.nullable):
                value[name] = clone(default)
        for key, item in value.items():
            if root and key in META_FIELDS:
                continue
            if not isinstance(item, dict | list):
                continue  # nothing to default inside a scalar
            field_schema = _field_schema(node, key)
            if field_schema is not None:
                _default(item, field_schema)
    elif isinstance(value, list):
        items = node.items()
        for item in value:
            if isinstance(item, dict | list):
                _default(item, items)


def decode_stored(obj: JsonDict, schema: SchemaNode) -> JsonDict:
    """A stored custom resource as the apiserver reads it, changed in place and returned.

    The schema may have changed since the object was written (a CRD upgraded, or replaced by
    another's): upstream's storage decoder prunes what the schema no longer specifies, drops
    nulls it no longer admits and defaults what it adds, on every read; the stored object
    keeps all of it until its next write.
    """
    if schema.known:
        _walk(obj, schema, delete=True)
        _drop_nulls(obj, schema, root=True)
        _default(obj, schema, root=True)
    return obj


def prune_and_default(obj: JsonDict, schema: SchemaNode) -> tuple[JsonDict, list[str]]:
    """The apiserver's decoding of a custom resource: prune, drop bad nulls, then default."""
    pruned, dropped = prune(obj, schema)
    return apply_defaults(drop_non_nullable_nulls(pruned, schema), schema), dropped
