"""Field sets: the paths an object sets, in structured-merge-diff's (SMD v4) terms.

``kubeemu.managed_fields`` (server-side apply and Update ownership) builds on this module; the
data is a decoded object plus its kind's :class:`~kubeemu.schema.SchemaNode` (list types,
list-map keys and map types decide how fields are identified).  Out come field sets, their
``FieldsV1`` JSON (``metadata.managedFields[].fieldsV1``) and back, the apiserver's notation for
a path in conflict messages, and the difference between two objects (SMD ``Compare``).

* A *field set* is a set of paths.  Path elements are ``("f", name)`` for object fields,
  ``("k", '{"name":"c"}')`` for list-map items (compact JSON of the key fields, sorted by field
  name as SMD's ``FieldList.Sort`` does), ``("v", '"x"')`` for set items (compact JSON of the
  value) and ``("i", 3)`` for list indices (never produced from Kubernetes schemas).
* :func:`fields_of` is SMD's ``ToFieldSet``: scalars, atomic lists and atomic maps are leaves;
  list items are always members (that is what makes ``"."`` appear under ``k:`` entries); map
  entries that are not declared properties (labels, ``data`` keys, unknown fields) are members;
  declared object fields are members only when they are ``null`` or ``{}``.  Empty granular lists
  contribute nothing, as upstream.
* :data:`UNTRACKED_PATHS` are never owned (upstream ``stripMetaManager``): ``apiVersion``,
  ``kind``, ``metadata`` itself, ``metadata.{name,namespace,creationTimestamp,selfLink,uid,
  clusterName,generation,managedFields,resourceVersion}``, plus ``metadata.deletionTimestamp`` and
  ``metadata.deletionGracePeriodSeconds`` (see ``kubeemu.managed_fields``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import orjson

from kubeemu.clone import clone
from kubeemu.goformat import go_float, go_json, go_quote, json_equal
from kubeemu.schema import SchemaNode

JsonDict = dict[str, Any]
PathElement = tuple[str, str | int]
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]


def field_path(*names: str) -> Path:
    return tuple(("f", name) for name in names)


UNTRACKED_PATHS: Final[FieldSet] = frozenset(
    [
        field_path("apiVersion"),
        field_path("kind"),
        field_path("metadata"),
        *(
            field_path("metadata", name)
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
                # emulator addition, see the module docstring
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            )
        ),
    ]
)

# Go value-struct fields that exist (as ``{}``) in the zero value of a built-in kind; see
# ``zero_object``.  Pointer structs (selector, rollingUpdate, securityContext...) are absent.
_VALUE_STRUCT_FIELDS: Final = frozenset(
    {"metadata", "spec", "status", "template", "strategy", "updateStrategy", "jobTemplate"}
)


class _Absent:
    """A field that is not there at all, as opposed to a JSON ``null``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Final = _Absent()


class TypedConversionError(Exception):
    """An object that the schema cannot turn into a field set (SMD's typed conversion error)."""


# --- JSON helpers ---------------------------------------------------------------------------------


def without_managed_fields(obj: Mapping[str, Any]) -> JsonDict:
    """``obj`` without ``metadata.managedFields``, to read: everything else is shared with it.

    Only the top level and ``metadata`` are new dicts; callers that change the result must
    copy what they change (field sets and comparisons only read it).
    """
    result = dict(obj)
    metadata = result.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        result["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return result


# --- path elements --------------------------------------------------------------------------


def _key_default(item_schema: SchemaNode, key: str) -> tuple[bool, Any]:
    """The default of a list-map key field; ``protocol`` defaults to TCP as in k8s ``+default``."""
    declared, value = item_schema.property(key).default
    if declared:
        return True, value
    if key == "protocol":
        return True, "TCP"
    return False, None


def item_element(item: Any, list_schema: SchemaNode) -> PathElement:
    """The path element naming ``item`` inside a set or map list (SMD ``listItemToPathElement``)."""
    keys = list_schema.list_map_keys if list_schema.list_type == "map" else ()
    if not keys:
        return ("v", go_json(item))
    if item is None:
        raise TypedConversionError("associative list with keys may not have a null element")
    if not isinstance(item, dict):
        raise TypedConversionError("associative list with keys may not have non-map elements")
    key_fields: JsonDict = {}
    for key in keys:
        if key in item:
            key_fields[key] = item[key]
            continue
        has_default, default = _key_default(list_schema.items(), key)
        if not has_default:
            raise TypedConversionError(
                f'associative list with keys has an element that omits key field "{key}" '
                "(and doesn't have default value)"
            )
        key_fields[key] = default
    return ("k", go_json(key_fields))


def item_elements(items: list[Any], list_schema: SchemaNode, path: Path) -> list[PathElement]:
    elements = []
    for index, item in enumerate(items):
        try:
            elements.append(item_element(item, list_schema))
        except TypedConversionError as error:
            raise TypedConversionError(f"{format_path(path)}: element {index}: {error}") from None
    return elements


def _encode_element(element: PathElement) -> str:
    kind, value = element
    return f"{kind}:{value}"


def _decode_element(text: str) -> PathElement:
    kind, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(f"invalid path element {text!r}")
    if kind == "f":
        return ("f", rest)
    if kind == "k":
        key_fields = json.loads(rest)
        if not isinstance(key_fields, dict):
            raise ValueError(f"invalid key in path element {text!r}")
        return ("k", go_json(key_fields))
    if kind == "v":
        return ("v", go_json(json.loads(rest)))
    if kind == "i":
        return ("i", int(rest))
    raise ValueError(f"invalid path element {text!r}")


def _value_sort_key(value: Any) -> tuple[int, Any]:
    """SMD ``value.Compare`` order: numbers < strings < booleans < lists < maps < null."""
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, int | float):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_sort_key(item) for item in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_sort_key(v)) for k, v in sorted(value.items())))
    return (5, 0)


@lru_cache(maxsize=1 << 16)
def _element_sort_key(element: PathElement) -> tuple[int, Any]:
    """SMD ``PathElement.Compare`` order: fields < keys < values < indices (memoized)."""
    kind, value = element
    if kind == "f":
        return (0, value)
    if kind == "k":
        key_fields = json.loads(str(value))
        return (1, tuple((k, _value_sort_key(v)) for k, v in key_fields.items()))
    if kind == "v":
        return (2, _value_sort_key(json.loads(str(value))))
    return (3, value)


def iteration_key(path: Path) -> tuple[tuple[int, tuple[int, Any]], ...]:
    """SMD ``Set.Iterate`` order: at every level the members first, then the children."""
    last = len(path) - 1
    return tuple((0 if i == last else 1, _element_sort_key(e)) for i, e in enumerate(path))


def _value_string(value: Any) -> str:
    """SMD ``value.ToString`` (strings quoted, numbers and booleans bare)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else go_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(_value_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_value_string(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_path(path: Path) -> str:
    """A path in the apiserver's notation: ``.spec.containers[name="c"].image``."""
    parts = []
    for kind, value in path:
        if kind == "f":
            parts.append(f".{value}")
        elif kind == "k":
            key_fields = json.loads(str(value))
            parts.append(
                "[" + ",".join(f"{k}={_value_string(v)}" for k, v in key_fields.items()) + "]"
            )
        elif kind == "v":
            parts.append(f"[={_value_string(json.loads(str(value)))}]")
        else:
            parts.append(f"[{value}]")
    return "".join(parts)


# --- field sets ---------------------------------------------------------------------------------


def _collect_fields(value: Any, node: SchemaNode, path: Path, out: set[Path], strict: bool) -> None:
    if isinstance(value, dict):
        if node.map_type == "atomic":
            out.add(path)
            return
        for name, child in value.items():
            child_path = (*path, ("f", name))
            if strict and _undeclared(node, name):
                raise TypedConversionError(
                    f"{format_path(child_path)}: field not declared in schema"
                )
            _collect_fields(child, node.property(name), child_path, out, strict)
            if child is None or child == {} or not node.has_property(name):
                out.add(child_path)
        return
    if isinstance(value, list):
        if node.list_type == "atomic":
            out.add(path)
            return
        item_node = node.items()
        seen: set[PathElement] = set()
        for item, element in zip(value, item_elements(value, node, path), strict=True):
            if strict and element in seen:
                raise TypedConversionError(
                    f"{format_path(path)}: duplicate entries for key {format_path((element,))}"
                )
            seen.add(element)
            item_path = (*path, element)
            _collect_fields(item, item_node, item_path, out, strict)
            out.add(item_path)
        return
    out.add(path)


_EMBEDDED_OBJECT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _undeclared(node: SchemaNode, name: str) -> bool:
    """Whether SMD's typed conversion rejects field ``name`` of an object at ``node``.

    Only objects that list their fields can reject one: maps (``additionalProperties``),
    ``x-kubernetes-preserve-unknown-fields`` and opaque objects (no properties at all, e.g.
    FieldsV1 or RawExtension) take any key; embedded resources also take their type and metadata.
    """
    if not node.known or node.preserve_unknown_fields:
        return False
    raw = node.raw
    properties = raw.get("properties")
    extra = raw.get("additionalProperties")
    if not properties or (extra is not None and extra is not False):
        return False
    if node.embedded_resource and name in _EMBEDDED_OBJECT_FIELDS:
        return False
    return name not in properties


def raw_fields(obj: Mapping[str, Any], schema: SchemaNode, *, strict: bool = False) -> set[Path]:
    out: set[Path] = set()
    _collect_fields(dict(obj), schema, (), out, strict)
    out.discard(())
    return out


def fields_of(obj: Mapping[str, Any], schema: SchemaNode) -> FieldSet:
    """The fields ``obj`` sets, as a manager would own them (untracked metadata stripped).

    Raises ``ValueError`` when a list-map item lacks a key field that has no default.
    """
    try:
        return frozenset(raw_fields(obj, schema)) - UNTRACKED_PATHS
    except TypedConversionError as error:
        raise ValueError(str(error)) from None


def drop_prefixes(fields: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    """The paths of ``fields`` under none of ``prefixes`` (a prefix is under itself)."""
    prefix_list = list(prefixes)
    if not prefix_list:
        return frozenset(fields)
    if all(len(p) == 1 for p in prefix_list):
        # the reset fields of every kind: one top-level field (``status``, ``spec``)
        heads = {p[0] for p in prefix_list}
        return frozenset(path for path in fields if not path or path[0] not in heads)
    return frozenset(path for path in fields if not any(path[: len(p)] == p for p in prefix_list))


_CACHE_LIMIT: Final = 4096
"""Entries each memo below holds before it starts over (a few managers per stored object)."""
_encoded_sets: dict[FieldSet, JsonDict] = {}
_decoded_sets: dict[bytes, FieldSet] = {}
_zero_objects: dict[int, tuple[SchemaNode, JsonDict]] = {}
_element_texts: dict[PathElement, str] = {}
_configuration_fields: dict[tuple[int, bytes], tuple[SchemaNode, FieldSet]] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Store ``value`` under ``key``, emptying ``memo`` first once it is full."""
    if len(memo) >= _CACHE_LIMIT:
        memo.clear()
    memo[key] = value


def to_fields_v1(fields: Iterable[Path]) -> JsonDict:
    """The ``fieldsV1`` JSON of a field set, keys in SMD's serialization order (a fresh copy)."""
    if not isinstance(fields, frozenset):
        return _encode_fields(fields)
    return clone(shared_fields_v1(fields))


def shared_fields_v1(fields: FieldSet) -> JsonDict:
    """:func:`to_fields_v1`, memoized and shared: to store or encode, never to change.

    Field sets recur (every write re-encodes the managedFields of every manager).
    """
    encoded = _encoded_sets.get(fields)
    if encoded is None:
        encoded = _encode_fields(fields)
        _remember(_encoded_sets, fields, encoded)
        # the next write of the object decodes this very text: have its answer ready
        _remember(_decoded_sets, orjson.dumps(encoded), fields)
    return encoded


_TreeNode = list[Any]
"""``[member, children]``: whether the path is in the set, and the nodes below it by element."""


def _encode_fields(fields: Iterable[Path]) -> JsonDict:
    root: dict[PathElement, _TreeNode] = {}
    for path in fields:
        if not path:
            continue
        children = root
        for element in path[:-1]:
            node = children.get(element)
            if node is None:
                node = children[element] = [False, {}]
            children = node[1]
        node = children.get(path[-1])
        if node is None:
            children[path[-1]] = [True, {}]
        else:
            node[0] = True
    return _emit(root)


def _emit(children: dict[PathElement, _TreeNode]) -> JsonDict:
    out: JsonDict = {}
    ordered = sorted(children, key=_element_sort_key) if len(children) > 1 else children
    for element in ordered:
        member, below = children[element]
        text = _element_texts.get(element)
        if text is None:
            text = _encode_element(element)
            _remember(_element_texts, element, text)
        if below:
            encoded = _emit(below)
            out[text] = {".": {}, **encoded} if member else encoded
        else:
            out[text] = {}
    return out


def from_fields_v1(encoded: Mapping[str, Any]) -> FieldSet:
    """Parse a ``fieldsV1`` JSON object; raises ``ValueError`` when it is malformed.

    Memoized by the object's JSON text: every write decodes the managedFields of the live
    object, which mostly are those the previous write encoded.
    """
    try:
        key = orjson.dumps(encoded)
    except TypeError:  # not JSON (a non-string key...): parse it, and let that fail
        key = None
    fields = _decoded_sets.get(key) if key is not None else None
    if fields is None:
        out: set[Path] = set()
        _parse_fields_v1(encoded, (), out)
        fields = frozenset(out)
        if key is not None:
            _remember(_decoded_sets, key, fields)
    return fields


def _parse_fields_v1(node: Mapping[str, Any], prefix: Path, out: set[Path]) -> None:
    if not isinstance(node, Mapping):
        raise ValueError(f"fieldsV1 at {format_path(prefix) or '.'} is not an object")
    for text, child in node.items():
        if text == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, _decode_element(text))
        if isinstance(child, Mapping) and not child:
            out.add(path)
        else:
            _parse_fields_v1(child, path, out)


# --- compare ----------------------------------------------------------------------------------


@dataclass
class _Comparison:
    """SMD ``Comparison`` between an old and a new object."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def without(self, prefixes: Iterable[Path]) -> _Comparison:
        prefix_list = list(prefixes)
        return _Comparison(
            set(drop_prefixes(self.added, prefix_list)),
            set(drop_prefixes(self.modified, prefix_list)),
            set(drop_prefixes(self.removed, prefix_list)),
        )

    @property
    def changed(self) -> FieldSet:
        return frozenset(self.added | self.modified)


def _shape(left: Any, right: Any) -> str:
    """``map`` or ``list`` when every value present (not absent, not null) is one, else ``leaf``."""
    left_type = None if left is ABSENT or left is None else type(left)
    right_type = None if right is ABSENT or right is None else type(right)
    kind = left_type or right_type
    if kind is None or (left_type is not None and right_type is not None and left_type != kind):
        return "leaf"
    if kind is dict:
        return "map"
    if kind is list:
        return "list"
    return "leaf"


def _is_empty(value: Any) -> bool:
    return value is ABSENT or value is None or value in ({}, [])


def _same_json(old: Any, new: Any) -> bool:
    """Whether two containers are the same JSON, to the type of every value.

    ``==`` alone takes ``true`` for ``1``; the encodings tell them apart (and ``1`` from
    ``1.0``, which only sends that pair down the full comparison).
    """
    if old != new:
        return False
    try:
        return orjson.dumps(old) == orjson.dumps(new)
    except TypeError:  # beyond orjson (an integer over 64 bits): compare the long way
        return False


def equal_objects(old: JsonDict, new: JsonDict) -> bool:
    """``json_equal`` of two decoded objects, in C when they are identical or plainly differ.

    ``==`` failing means ``json_equal`` fails too; identical encodings mean it holds.  Only
    what ``==`` cannot tell (``true`` against ``1``, ``1`` against ``1.0``) takes the walk.
    """
    if old != new:
        return False
    return _same_json(old, new) or json_equal(old, new)


def configuration_fields(config: JsonDict, schema: SchemaNode) -> FieldSet:
    """``raw_fields(config, schema, strict=True)``, remembered by the configuration's JSON.

    Controllers apply the same configurations again and again; a configuration that does
    not convert raises :class:`TypedConversionError` every time.
    """
    try:
        key: tuple[int, bytes] | None = (id(schema), orjson.dumps(config))
    except TypeError:  # beyond orjson: no memo
        key = None
    entry = _configuration_fields.get(key) if key is not None else None
    if entry is not None:
        return entry[1]  # the node is kept in the entry: its id stays its own
    fields = frozenset(raw_fields(config, schema, strict=True))
    if key is not None:
        _remember(_configuration_fields, key, (schema, fields))
    return fields


def _check_typed(value: Any, node: SchemaNode, path: Path) -> None:
    """Raise what comparing ``value`` with an identical value raises, or nothing.

    Comparing identical values finds no difference, but it still turns them into typed
    values, which fails on an associative list item without its key: this walks the lists
    the comparison would index, in its order, and indexes them the same way.
    """
    if not node.keyed_lists_below:
        return
    if isinstance(value, dict):
        if not value or node.map_type == "atomic":
            return
        for name, child in value.items():
            if isinstance(child, dict | list):
                _check_typed(child, node.property(name), (*path, ("f", name)))
    elif isinstance(value, list):
        if not value or node.list_type == "atomic":
            return
        item_node = node.items()
        keys = node.list_map_keys if node.list_type == "map" else ()
        if keys:
            if item_node.keyed_lists_below or not all(
                isinstance(item, dict) and all(key in item for key in keys) for item in value
            ):
                # index the items as comparing does: its errors, and the first item of each key
                for element, item in index_items(value, node, path).items():
                    if isinstance(item, dict | list):
                        _check_typed(item, item_node, (*path, element))
            # else every item has its keys, and nothing below them can fail: no error here
            return
        for item in value:  # a set: its items are their own keys, and cannot fail to be keyed
            if isinstance(item, dict | list):
                _check_typed(item, item_node, (*path, item_element(item, node)))


def _all_paths(value: Any, node: SchemaNode, path: Path, out: set[Path]) -> None:
    """Add ``path`` and every path below it: comparing with a side that is absent.

    What :func:`_compare` finds for a value added (or removed) whole: every granular map or
    list it walks, every leaf, and the typed-value errors of its associative lists.
    """
    if value:
        if isinstance(value, dict):
            if node.map_type != "atomic":
                for name, child in value.items():
                    _all_paths(child, node.property(name), (*path, ("f", name)), out)
        elif isinstance(value, list) and node.list_type != "atomic":
            item_node = node.items()
            for element, item in index_items(value, node, path).items():
                _all_paths(item, item_node, (*path, element), out)
    out.add(path)


def _compare(old: Any, new: Any, node: SchemaNode, path: Path, out: _Comparison) -> None:
    if old is ABSENT:
        _all_paths(new, node, path, out.added)
        return
    if new is ABSENT:
        _all_paths(old, node, path, out.removed)
        return
    if isinstance(old, dict | list) and type(old) is type(new) and _same_json(old, new):
        _check_typed(old, node, path)  # no difference below, but the same typed-value errors
        return
    shape = _shape(old, new)
    granular = (
        (shape == "map" and node.map_type != "atomic")
        or (shape == "list" and node.list_type != "atomic")
    ) and not (_is_empty(old) and _is_empty(new))
    if not granular:
        if old is ABSENT:
            out.added.add(path)
        elif new is ABSENT:
            out.removed.add(path)
        elif not json_equal(old, new):
            out.modified.add(path)
        return
    if shape == "map":
        old_map = old if isinstance(old, dict) else {}
        new_map = new if isinstance(new, dict) else {}
        for name in {**old_map, **new_map}:
            _compare(
                old_map.get(name, ABSENT),
                new_map.get(name, ABSENT),
                node.property(name),
                (*path, ("f", name)),
                out,
            )
    else:
        old_items = index_items(old if isinstance(old, list) else [], node, path)
        new_items = index_items(new if isinstance(new, list) else [], node, path)
        item_node = node.items()
        for element in {**old_items, **new_items}:
            _compare(
                old_items.get(element, ABSENT),
                new_items.get(element, ABSENT),
                item_node,
                (*path, element),
                out,
            )
    if old is ABSENT:
        out.added.add(path)
    elif new is ABSENT:
        out.removed.add(path)


def index_items(items: list[Any], node: SchemaNode, path: Path) -> dict[PathElement, Any]:
    """Items by path element; the first of duplicates wins (SMD ``AllowDuplicates``)."""
    indexed: dict[PathElement, Any] = {}
    for item, element in zip(items, item_elements(items, node, path), strict=True):
        indexed.setdefault(element, item)
    return indexed


def compare_objects(old: JsonDict, new: JsonDict, schema: SchemaNode) -> _Comparison:
    out = _Comparison()
    _compare(old, new, schema, (), out)
    for paths in (out.added, out.modified, out.removed):
        paths.discard(())
    return out


def zero_object(schema: SchemaNode) -> JsonDict:
    """The object a create is compared with (upstream: the Go zero value of the kind).

    Custom resources start from ``{}``.  Built-in kinds start with their Go value structs
    (``spec``, ``status``, ``template``, ``strategy``...) present and their required pointer, list
    and scalar fields null, so that Update entries of creates carry ``"."`` exactly where a real
    apiserver puts them (``f:rollingUpdate: {".": {}}`` but no ``"."`` under ``f:spec``).  The
    list of value-struct names is a heuristic; the OpenAPI schema does not say what is a pointer.
    """
    if "x-kubernetes-group-version-kind" not in schema.raw:
        return {}
    cached = _zero_objects.get(id(schema))
    if cached is None:
        # the node is kept with its zero object: its id stays its own while the entry lives
        cached = (schema, _zero_struct(schema, depth=0))
        _remember(_zero_objects, id(schema), cached)
    return clone(cached[1])


def _is_struct(node: SchemaNode) -> bool:
    return bool(node.raw.get("properties")) and node.map_type != "atomic"


def _zero_struct(node: SchemaNode, depth: int) -> JsonDict:
    out: JsonDict = {}
    if depth > 8:
        return out
    required = set(node.raw.get("required", []))
    for name, child in node.properties.items():
        if name in ("apiVersion", "kind"):
            continue
        if name in _VALUE_STRUCT_FIELDS and _is_struct(child):
            out[name] = _zero_struct(child, depth + 1)
        elif name in required:
            out[name] = _zero_struct(child, depth + 1) if _is_struct(child) else None
    return out
