"""Field ownership (``metadata.managedFields``) and server-side apply, as pure functions.

Data comes from the request handlers: the live object from the store, the body of a write (POST,
PUT, PATCH) or of an apply patch, the field manager name, and the kind's :class:`SchemaNode`
(list types, list-map keys and map types drive how fields are identified and merged).  Results go
back to the handlers: the object to persist with its ``managedFields`` rewritten, or an
:class:`ApiError` (409 apply conflicts, 400/500 malformed apply bodies).

The model follows Kubernetes' structured-merge-diff (SMD) v4 and the apiserver's field manager
chain (``k8s.io/apimachinery/pkg/util/managedfields/internal``) as of 1.31:

* A *field set* is a set of paths.  Path elements are ``("f", name)`` for object fields,
  ``("k", '{"name":"c"}')`` for list-map items (compact JSON of the key fields, sorted by field
  name as SMD's ``FieldList.Sort`` does), ``("v", '"x"')`` for set items (compact JSON of the
  value) and ``("i", 3)`` for list indices (never produced from Kubernetes schemas).
* :func:`fields_of` is SMD's ``ToFieldSet``: scalars, atomic lists and atomic maps are leaves;
  list items are always members (that is what makes ``"."`` appear under ``k:`` entries); map
  entries that are not declared properties (labels, ``data`` keys, unknown fields) are members;
  declared object fields are members only when they are ``null`` or ``{}``.  Empty granular lists
  contribute nothing, as upstream.
* Never tracked (upstream ``stripMetaManager``): ``apiVersion``, ``kind``, ``metadata`` itself,
  ``metadata.{name,namespace,creationTimestamp,selfLink,uid,clusterName,generation,managedFields,
  resourceVersion}``.  ``metadata.generateName`` IS tracked upstream (pods of a ReplicaSet show
  ``f:generateName``) and is tracked here.  ``metadata.deletionTimestamp`` and
  ``metadata.deletionGracePeriodSeconds`` never reach the field manager upstream (deletion writes
  bypass it); the emulator strips them too so that a store routing deletion through
  :func:`record_update` records the same thing.
* Reset fields (upstream ``GetResetFields``): on the main resource of a kind with a status
  subresource, everything under ``status`` is ignored; on the ``status`` subresource everything
  under ``spec`` is ignored (CRDs and the apps/v1 workloads reset exactly ``spec``).  ``metadata``
  is not filtered for ``/status`` writes (upstream does not filter it either; the status strategy
  just discards metadata changes, which is the store's job).
* An *Update* (POST/PUT/non-apply PATCH) compares old and new objects (SMD ``Compare``): added and
  modified paths go to the writer and are taken away from every other manager, removed paths
  leave every set.  Intermediate maps and lists that did not exist before are "added" too, which
  is where the ``".": {}`` entries of Update managers come from (``f:labels: {".": {}, ...}``).
* An *Apply* merges the configuration into the live object, prunes what the manager applied last
  time but no longer applies (unless someone else owns it), reports conflicts with every other
  manager (Apply or Update) whose fields the apply would change, and makes the manager's set
  exactly the configuration's field set.

Deliberate simplifications (documented for the report): no version conversion of field sets
(``apiVersion`` of entries is recorded but paths are compared as-is), no ``ancient-changes``
capping of more than 10 Update managers, no ``last-applied-configuration`` upgrade/sync logic of
the ``kubectl`` manager, and no ``reconcileManagedFieldsWithSchemaChanges``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, NamedTuple

from kubeemu.clone import clone
from kubeemu.errors import ApiError, bad_request
from kubeemu.goformat import go_float, go_json, go_quote, json_equal
from kubeemu.schema import SchemaNode

JsonDict = dict[str, Any]
PathElement = tuple[str, str | int]
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]

APPLY: Final = "Apply"
UPDATE: Final = "Update"
BEFORE_FIRST_APPLY: Final = "before-first-apply"


def _path(*names: str) -> Path:
    return tuple(("f", name) for name in names)


UNTRACKED_PATHS: Final[FieldSet] = frozenset(
    [
        _path("apiVersion"),
        _path("kind"),
        _path("metadata"),
        *(
            _path("metadata", name)
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
# ``_zero_object``.  Pointer structs (selector, rollingUpdate, securityContext...) are absent.
_VALUE_STRUCT_FIELDS: Final = frozenset(
    {"metadata", "spec", "status", "template", "strategy", "updateStrategy", "jobTemplate"}
)


class _Absent:
    """A field that is not there at all, as opposed to a JSON ``null``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Final = _Absent()


class _TypedError(Exception):
    """An object that the schema cannot turn into a field set (SMD's typed conversion error)."""


# --- JSON helpers ---------------------------------------------------------------------------------


def _without_managed_fields(obj: Mapping[str, Any]) -> JsonDict:
    result = clone(dict(obj))
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
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


def _item_element(item: Any, list_schema: SchemaNode) -> PathElement:
    """The path element naming ``item`` inside a set or map list (SMD ``listItemToPathElement``)."""
    keys = list_schema.list_map_keys if list_schema.list_type == "map" else ()
    if not keys:
        return ("v", go_json(item))
    if item is None:
        raise _TypedError("associative list with keys may not have a null element")
    if not isinstance(item, dict):
        raise _TypedError("associative list with keys may not have non-map elements")
    key_fields: JsonDict = {}
    for key in keys:
        if key in item:
            key_fields[key] = item[key]
            continue
        has_default, default = _key_default(list_schema.items(), key)
        if not has_default:
            raise _TypedError(
                f'associative list with keys has an element that omits key field "{key}" '
                "(and doesn't have default value)"
            )
        key_fields[key] = default
    return ("k", go_json(key_fields))


def _item_elements(items: list[Any], list_schema: SchemaNode, path: Path) -> list[PathElement]:
    elements = []
    for index, item in enumerate(items):
        try:
            elements.append(_item_element(item, list_schema))
        except _TypedError as error:
            raise _TypedError(f"{format_path(path)}: element {index}: {error}") from None
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


def _element_sort_key(element: PathElement) -> tuple[int, Any]:
    """SMD ``PathElement.Compare`` order: fields < keys < values < indices."""
    kind, value = element
    if kind == "f":
        return (0, value)
    if kind == "k":
        key_fields = json.loads(str(value))
        return (1, tuple((k, _value_sort_key(v)) for k, v in key_fields.items()))
    if kind == "v":
        return (2, _value_sort_key(json.loads(str(value))))
    return (3, value)


def _iteration_key(path: Path) -> tuple[tuple[int, tuple[int, Any]], ...]:
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
                raise _TypedError(f"{format_path(child_path)}: field not declared in schema")
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
        for item, element in zip(value, _item_elements(value, node, path), strict=True):
            if strict and element in seen:
                raise _TypedError(
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


def check_apply_configuration(
    applied: Mapping[str, Any], schema: SchemaNode, api_version: str
) -> None:
    """Raise the apiserver's 500 when an apply configuration does not convert to the typed object.

    That is: an undeclared field (``.spec.foo: field not declared in schema``), a duplicate
    list-map key, a list-map item without its key.
    """
    try:
        _raw_fields(_without_managed_fields(applied), schema, strict=True)
    except _TypedError as error:
        raise ApiError(
            500,
            "",  # a plain Go error: ErrorToAPIStatus gives StatusReasonUnknown
            f"failed to create typed patch object ({_object_label(applied, api_version)}): {error}",
        ) from None


def _raw_fields(obj: Mapping[str, Any], schema: SchemaNode, *, strict: bool = False) -> set[Path]:
    out: set[Path] = set()
    _collect_fields(dict(obj), schema, (), out, strict)
    out.discard(())
    return out


def fields_of(obj: Mapping[str, Any], schema: SchemaNode) -> FieldSet:
    """The fields ``obj`` sets, as a manager would own them (untracked metadata stripped).

    Raises ``ValueError`` when a list-map item lacks a key field that has no default.
    """
    try:
        return frozenset(_raw_fields(obj, schema)) - UNTRACKED_PATHS
    except _TypedError as error:
        raise ValueError(str(error)) from None


def _drop_prefixes(fields: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    prefix_list = list(prefixes)
    return frozenset(path for path in fields if not any(path[: len(p)] == p for p in prefix_list))


class _Tree:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PathElement, _Tree] = {}


def to_fields_v1(fields: Iterable[Path]) -> JsonDict:
    """The ``fieldsV1`` JSON of a field set, keys in SMD's serialization order."""
    root = _Tree()
    for path in fields:
        node = root
        for element in path:
            node = node.children.setdefault(element, _Tree())
        if path:
            node.member = True
    return _emit(root)


def _emit(node: _Tree) -> JsonDict:
    out: JsonDict = {}
    if node.member and node.children:
        out["."] = {}
    for element in sorted(node.children, key=_element_sort_key):
        out[_encode_element(element)] = _emit(node.children[element])
    return out


def from_fields_v1(encoded: Mapping[str, Any]) -> FieldSet:
    """Parse a ``fieldsV1`` JSON object; raises ``ValueError`` when it is malformed."""
    out: set[Path] = set()
    _parse_fields_v1(encoded, (), out)
    return frozenset(out)


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
            set(_drop_prefixes(self.added, prefix_list)),
            set(_drop_prefixes(self.modified, prefix_list)),
            set(_drop_prefixes(self.removed, prefix_list)),
        )

    @property
    def changed(self) -> FieldSet:
        return frozenset(self.added | self.modified)


def _shape(left: Any, right: Any) -> str:
    kinds = {type(v) for v in (left, right) if v is not ABSENT and v is not None}
    if kinds == {dict}:
        return "map"
    if kinds == {list}:
        return "list"
    return "leaf"


def _is_empty(value: Any) -> bool:
    return value is ABSENT or value is None or value in ({}, [])


def _compare(old: Any, new: Any, node: SchemaNode, path: Path, out: _Comparison) -> None:
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
        old_items = _index_items(old if isinstance(old, list) else [], node, path)
        new_items = _index_items(new if isinstance(new, list) else [], node, path)
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


def _index_items(items: list[Any], node: SchemaNode, path: Path) -> dict[PathElement, Any]:
    """Items by path element; the first of duplicates wins (SMD ``AllowDuplicates``)."""
    indexed: dict[PathElement, Any] = {}
    for item, element in zip(items, _item_elements(items, node, path), strict=True):
        indexed.setdefault(element, item)
    return indexed


def _compare_objects(old: JsonDict, new: JsonDict, schema: SchemaNode) -> _Comparison:
    out = _Comparison()
    _compare(old, new, schema, (), out)
    for paths in (out.added, out.modified, out.removed):
        paths.discard(())
    return out


def _zero_object(schema: SchemaNode) -> JsonDict:
    """The object a create is compared with (upstream: the Go zero value of the kind).

    Custom resources start from ``{}``.  Built-in kinds start with their Go value structs
    (``spec``, ``status``, ``template``, ``strategy``...) present and their required pointer, list
    and scalar fields null, so that Update entries of creates carry ``"."`` exactly where a real
    apiserver puts them (``f:rollingUpdate: {".": {}}`` but no ``"."`` under ``f:spec``).  The
    list of value-struct names is a heuristic; the OpenAPI schema does not say what is a pointer.
    """
    if "x-kubernetes-group-version-kind" not in schema.raw:
        return {}
    return _zero_struct(schema, depth=0)


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


# --- merge and prune (apply) ------------------------------------------------------------------


def _merge(live: Any, config: Any, node: SchemaNode, path: Path) -> Any:
    """SMD ``Merge``: the applied configuration over the live value."""
    if live is ABSENT:
        return clone(config)
    if isinstance(config, dict):
        if not isinstance(live, dict) or node.map_type == "atomic" or (not live and not config):
            return clone(config)
        merged = clone(live)
        for name, value in config.items():
            merged[name] = _merge(
                live.get(name, ABSENT), value, node.property(name), (*path, ("f", name))
            )
        return merged
    if isinstance(config, list):
        if not isinstance(live, list) or node.list_type == "atomic" or (not live and not config):
            return clone(config)
        return _merge_items(live, config, node, path)
    if config is None:
        # a null over a granular map or list leaves the live entries alone
        if isinstance(live, dict) and live and node.map_type != "atomic":
            return clone(live)
        if isinstance(live, list) and live and node.list_type != "atomic":
            return clone(live)
    return clone(config)


def _merge_items(live: list[Any], config: list[Any], node: SchemaNode, path: Path) -> list[Any]:
    """Merge associative lists in SMD's order (``mergingWalker.visitListItems``).

    Items only in the live list keep their place, items of both lists follow the order of the
    configuration, new items go where the configuration puts them relative to shared items
    (appended when nothing shared follows them).
    """
    item_node = node.items()
    live_elements = _item_elements(live, node, path)
    config_elements = _item_elements(config, node, path)
    live_items = _index_items(live, node, path)
    config_items = _index_items(config, node, path)
    shared = [e for e in config_elements if e in live_items]
    shared_position = 0

    def next_shared() -> PathElement | None:
        return shared[shared_position] if shared_position < len(shared) else None

    def merge_item(element: PathElement) -> Any:
        return _merge(
            live_items.get(element, ABSENT), config_items[element], item_node, (*path, element)
        )

    out: list[Any] = []
    merged: set[PathElement] = set()
    li = ri = 0
    while li < len(live_elements) or ri < len(config_elements):
        if li < len(live_elements) and ri < len(config_elements):
            element = live_elements[li]
            if element == config_elements[ri]:
                merged.add(element)
                out.append(merge_item(element))
                li += 1
                ri += 1
                shared_position += 1
                continue
            upcoming = next_shared()
            if element in config_items and upcoming is not None and upcoming != element:
                li += 1
                continue
        if li < len(live_elements):
            element = live_elements[li]
            if element not in config_items:
                out.append(clone(live[li]))
                li += 1
                continue
            if element in merged:
                li += 1
                continue
        if ri < len(config_elements):
            element = config_elements[ri]
            merged.add(element)
            out.append(merge_item(element))
            ri += 1
            if next_shared() == element:
                shared_position += 1
    return out


def _prune(obj: JsonDict, last: FieldSet, owned: FieldSet, schema: SchemaNode) -> JsonDict:
    """Remove what the applier owned last time and nobody owns now (SMD ``Updater.prune``).

    A path is kept while any manager (the applier's new set included) owns it or something below
    it; fields nobody ever owned stay unless their parent goes; key fields of a surviving list
    item stay; maps and lists emptied by the removal are dropped (SMD turns them into null).
    """
    owned_ancestors = {path[:i] for path in owned for i in range(1, len(path))}
    doomed = {path for path in last if path not in owned and path not in owned_ancestors}
    result = clone(obj)
    for path in sorted(doomed, key=len):
        if _is_key_field_of_surviving_item(path, doomed):
            continue
        _remove_path(result, path, schema)
    return result


def _is_key_field_of_surviving_item(path: Path, doomed: set[Path]) -> bool:
    if len(path) < 2 or path[-1][0] != "f" or path[-2][0] != "k":
        return False
    key_fields = json.loads(str(path[-2][1]))
    return path[-1][1] in key_fields and path[:-1] not in doomed


def _remove_path(obj: JsonDict, path: Path, schema: SchemaNode) -> None:
    """Delete the value at ``path`` (if present) and the containers this leaves empty."""
    trail: list[tuple[Any, Any]] = []  # (container, index or name) from the root down
    container: Any = obj
    node = schema
    for element in path:
        kind, value = element
        if kind == "f":
            if not isinstance(container, dict) or value not in container:
                return
            trail.append((container, value))
            container = container[value]
            node = node.property(str(value))
            continue
        if not isinstance(container, list):
            return
        index = _find_item(container, element, node)
        if index is None:
            return
        trail.append((container, index))
        container = container[index]
        node = node.items()
    for depth in range(len(trail) - 1, -1, -1):
        parent, key = trail[depth]
        del parent[key]
        if parent or depth == 0 or not isinstance(trail[depth - 1][1], str):
            return


def _find_item(items: list[Any], element: PathElement, node: SchemaNode) -> int | None:
    kind, value = element
    if kind == "i":
        return int(value) if 0 <= int(value) < len(items) else None
    for index, item in enumerate(items):
        try:
            if _item_element(item, node) == element:
                return index
        except _TypedError:
            continue
    return None


def _merge_config(live: JsonDict, config: JsonDict, schema: SchemaNode) -> JsonDict:
    merged = _merge(live, config, schema, ())
    assert isinstance(merged, dict)
    return merged


# --- managers ---------------------------------------------------------------------------------


class ManagerKey(NamedTuple):
    """How the apiserver tells managers apart (``BuildManagerIdentifier``).

    Apply managers are not keyed by apiVersion (``api_version`` is ``""`` for them); Update
    managers are, so one manager writing two versions has two Update entries.
    """

    manager: str
    operation: str
    api_version: str
    subresource: str

    def identifier(self) -> str:
        """The JSON identifier upstream sorts conflicting managers by."""
        parts = [f'"manager":{go_json(self.manager)}', f'"operation":{go_json(self.operation)}']
        if self.api_version:
            parts.append(f'"apiVersion":{go_json(self.api_version)}')
        if self.subresource:
            parts.append(f'"subresource":{go_json(self.subresource)}')
        return "{" + ",".join(parts) + "}"

    def describe(self) -> str:
        """Upstream ``printManager``: ``"kubectl"`` or ``"x" using apps/v1``."""
        text = go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {go_quote(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


def _key_for(manager: str, operation: str, api_version: str, subresource: str | None) -> ManagerKey:
    return ManagerKey(
        manager, operation, api_version if operation == UPDATE else "", subresource or ""
    )


@dataclass(frozen=True)
class _Entry:
    key: ManagerKey
    api_version: str
    time: str | None
    fields: FieldSet
    encoded: JsonDict | None = None  # the original fieldsV1, reused while ``fields`` is unchanged

    def with_fields(self, fields: FieldSet) -> _Entry:
        if fields == self.fields:
            return self
        return replace(self, fields=fields, encoded=None)

    def to_json(self) -> JsonDict:
        entry: JsonDict = {
            "manager": self.key.manager,
            "operation": self.key.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = clone(self.encoded) or to_fields_v1(self.fields)
        if self.key.subresource:
            entry["subresource"] = self.key.subresource
        return entry


Managed = dict[ManagerKey, _Entry]


def _decode_managed_fields(raw: Any) -> Managed:
    """Decode ``metadata.managedFields``; raises ``ValueError`` on malformed entries."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ValueError("managedFields is not a list")
    managed: Managed = {}
    for entry in raw:
        if not isinstance(entry, dict):
            raise ValueError("managedFields entry is not an object")
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError(f"invalid operation {operation!r}")
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError(f"invalid fieldsType {entry.get('fieldsType')!r}")
        api_version = str(entry.get("apiVersion", ""))
        key = _key_for(
            str(entry.get("manager", "")), operation, api_version, entry.get("subresource")
        )
        if key in managed:
            raise ValueError(f"duplicate manager {key.identifier()}")
        encoded = entry.get("fieldsV1") or {}
        time = entry.get("time")
        managed[key] = _Entry(
            key,
            api_version,
            str(time) if time else None,
            from_fields_v1(encoded),
            clone(encoded),
        )
    return managed


def _epoch_seconds(time: str | None) -> int:
    if not time:
        return 0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode_managed_fields(managed: Managed) -> list[JsonDict]:
    """Entries with fields, sorted like upstream (Apply first, then by time, manager...)."""
    entries = [entry for entry in managed.values() if entry.fields]
    entries.sort(
        key=lambda e: (
            e.key.operation,
            _epoch_seconds(e.time),
            e.key.manager,
            e.api_version,
            e.key.subresource,
        )
    )
    return [entry.to_json() for entry in entries]


def _with_managed_fields(obj: JsonDict, managed: Managed) -> JsonDict:
    encoded = _encode_managed_fields(managed)
    metadata = obj.setdefault("metadata", {})
    if encoded:
        metadata["managedFields"] = encoded
    else:
        metadata.pop("managedFields", None)
    return obj


def _reset_prefixes(
    schema: SchemaNode, subresource: str | None, status_subresource: bool | None
) -> list[Path]:
    """Fields the strategy resets, hence never owned (upstream ``GetResetFields``)."""
    if subresource == "status":
        return [_path("spec")]
    if subresource:
        return []
    has_status = schema.has_property("status") if status_subresource is None else status_subresource
    return [_path("status")] if has_status else []


def _object_label(obj: Mapping[str, Any], api_version: str) -> str:
    """``ns/name; apps/v1, Kind=StatefulSet`` as in upstream typed-conversion errors."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    group, _, version = api_version.rpartition("/")
    return (
        f"{metadata.get('namespace', '')}/{metadata.get('name', '')}; "
        f"{group}/{version}, Kind={obj.get('kind', '')}"
    )


def conflict_error(conflicts: Iterable[tuple[ManagerKey, Path]]) -> ApiError:
    """The 409 of an apply that would change fields other managers own (upstream wording).

    Causes are ordered by manager identifier, then in SMD set order (upstream iterates a Go map,
    so its order across managers is arbitrary); the message of several conflicts groups the paths
    per manager, managers sorted, as ``getConflictMessage`` does.
    """
    ordered = sorted(conflicts, key=lambda c: (c[0].identifier(), _iteration_key(c[1])))
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {key.describe()}",
            "field": format_path(path),
        }
        for key, path in ordered
    ]
    if len(ordered) == 1:
        key, path = ordered[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {key.describe()}: {format_path(path)}"
        )
    else:
        lines: list[str] = []
        current: ManagerKey | None = None
        for key, path in ordered:
            if key != current:
                lines.append(f"conflicts with {key.describe()}:")
                current = key
            lines.append(f"- {format_path(path)}")
        message = f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


# --- public operations --------------------------------------------------------------------------


def server_side_apply(
    live: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    *,
    manager: str,
    force: bool,
    schema: SchemaNode,
    api_version: str,
    now: str,
    subresource: str | None = None,
    status_subresource: bool | None = None,
) -> JsonDict:
    """The object after ``manager`` applies ``applied`` to ``live`` (``None``: create).

    ``status_subresource`` says whether the kind has a status subresource (``None``: it has one
    when the schema declares ``status``; pass ``False`` for a CRD without the subresource).
    Raises ``ApiError`` 409 on conflicts without ``force``, 400 when the configuration carries
    ``metadata.managedFields``, 500 when a list-map item lacks a key (upstream wording).
    """
    applied_metadata = applied.get("metadata")
    if isinstance(applied_metadata, dict) and applied_metadata.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    config = _without_managed_fields(applied)
    ignored = _reset_prefixes(schema, subresource, status_subresource)
    try:
        applied_fields = _drop_prefixes(
            frozenset(_raw_fields(config, schema, strict=True)) - UNTRACKED_PATHS, ignored
        )
    except _TypedError as error:
        raise ApiError(
            500,
            "",  # a plain Go error: ErrorToAPIStatus gives StatusReasonUnknown
            f"failed to create typed patch object ({_object_label(config, api_version)}): {error}",
        ) from None

    base = _without_managed_fields(live) if live is not None else {}
    try:
        managed = (
            _decode_managed_fields(live.get("metadata", {}).get("managedFields")) if live else {}
        )
    except ValueError:
        managed = {}
    try:
        if live is not None and not managed:
            managed = _before_first_apply(
                base,
                schema=schema,
                api_version=api_version,
                now=now,
                subresource=subresource,
                ignored=ignored,
            )
        key = _key_for(manager, APPLY, api_version, subresource)
        previous = managed.get(key)
        others = {k: e for k, e in managed.items() if k != key}
        owned = frozenset(applied_fields.union(*(e.fields for e in others.values())))
        result = _merge_config(base, config, schema)
        if previous is not None:
            result = _prune(result, previous.fields, owned, schema)
        comparison = _compare_objects(base, result, schema).without(ignored)
    except _TypedError as error:
        raise ApiError(
            500,
            "",  # a plain Go error: ErrorToAPIStatus gives StatusReasonUnknown
            f"failed to create typed live object ({_object_label(base, api_version)}): {error}",
        ) from None

    changed = comparison.changed
    conflicts = [(k, path) for k, e in others.items() for path in e.fields & changed]
    if conflicts and not force:
        raise conflict_error(conflicts)

    updated: Managed = {
        k: e.with_fields(e.fields - changed - comparison.removed) for k, e in others.items()
    }
    object_changed = live is None or not json_equal(base, result)
    time = now if object_changed else (previous.time if previous else None)
    if previous is not None and previous.fields == applied_fields:
        updated[key] = replace(previous, api_version=api_version, time=time)
    else:
        updated[key] = _Entry(key, api_version, time, applied_fields)
    return _with_managed_fields(result, updated)


def _before_first_apply(
    base: JsonDict,
    *,
    schema: SchemaNode,
    api_version: str,
    now: str,
    subresource: str | None,
    ignored: list[Path],
) -> Managed:
    """Ownership of an untracked object's fields, given to ``before-first-apply`` (upstream)."""
    comparison = _compare_objects(_zero_object(schema), base, schema).without(ignored)
    fields = comparison.changed - UNTRACKED_PATHS
    if not fields:
        return {}
    key = _key_for(BEFORE_FIRST_APPLY, UPDATE, api_version, subresource)
    return {key: _Entry(key, api_version, now, fields)}


def _tracking_base(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], subresource: str | None
) -> Managed:
    """The managed fields an update starts from (upstream ``decodeLiveOrNew``).

    Subresource writes always use the live entries.  Otherwise entries sent by the client win
    when they decode (clients may rewrite ownership); ``[]`` or ``[{}]`` resets tracking; absent,
    ``null`` or undecodable entries fall back to the live object's.
    """
    live_raw = (old or {}).get("metadata", {}).get("managedFields") if old else None
    new_metadata = new.get("metadata")
    sent = new_metadata.get("managedFields") if isinstance(new_metadata, dict) else None
    if not subresource and isinstance(sent, list):
        if sent in ([], [{}]):
            return {}
        try:
            return _decode_managed_fields(sent)
        except ValueError:
            pass
    try:
        return _decode_managed_fields(live_raw)
    except ValueError:
        return {}


def record_update(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    manager: str,
    schema: SchemaNode,
    api_version: str,
    now: str,
    subresource: str | None = None,
    status_subresource: bool | None = None,
) -> JsonDict:
    """``new`` with the ownership changes of a non-apply write by ``manager`` recorded.

    ``old`` is ``None`` on create.  Fields added or changed go to ``manager``'s Update entry and
    leave every other entry (an Update always wins); removed fields leave every entry; the time of
    the entry changes only when the write gave it fields.  As upstream, an existing object with no
    tracked fields (or a write sending ``managedFields: []``) stays untracked: the result has no
    ``managedFields``; so does a write whose object the schema cannot key (upstream
    ``UpdateNoErrors`` drops managedFields on error).
    """
    result = clone(dict(new))
    managed = _tracking_base(old, new, subresource)
    if old is not None and not managed:
        return _with_managed_fields(result, {})
    ignored = _reset_prefixes(schema, subresource, status_subresource)
    before = _without_managed_fields(old) if old is not None else _zero_object(schema)
    try:
        comparison = _compare_objects(before, _without_managed_fields(new), schema).without(ignored)
    except _TypedError:
        return _with_managed_fields(result, {})

    changed = comparison.changed
    updated: Managed = {
        k: e.with_fields(e.fields - changed - comparison.removed) for k, e in managed.items()
    }
    gained = changed - UNTRACKED_PATHS
    if gained:
        key = _key_for(manager, UPDATE, api_version, subresource)
        previous = updated.get(key)
        fields = gained | (previous.fields if previous else frozenset())
        updated[key] = _Entry(key, api_version, now, fields)
    return _with_managed_fields(result, updated)


def managers_of(obj: Mapping[str, Any], path: Path) -> list[str]:
    """Names of the managers owning ``path`` in ``obj`` (a convenience for handlers and tests)."""
    metadata = obj.get("metadata")
    raw = metadata.get("managedFields") if isinstance(metadata, dict) else None
    return sorted({e.key.manager for e in _decode_managed_fields(raw).values() if path in e.fields})
