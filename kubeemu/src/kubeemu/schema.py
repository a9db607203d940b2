"""Read-only navigation of OpenAPI schemas for built-in kinds and CRDs.

Data comes from two places: the Kubernetes 1.31 JSON schemas shipped by the ``kubernetes-validate``
package (``_definitions.json``, with ``$ref`` links and the ``x-kubernetes-*`` list/patch metadata)
and the ``openAPIV3Schema`` of a CustomResourceDefinition version.  Both are exposed through one
:class:`SchemaNode` type, which the patch, server-side-apply, pruning, validation and defaulting
modules use to answer "what is this field, and how do its lists merge?".
"""

from __future__ import annotations

import builtins
import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]

KUBERNETES_SCHEMA_VERSION = "v1.31.0"
_DEFS_PREFIX = "#/$defs/"


class SchemaNode:
    """One node of a schema, with ``$ref`` resolved lazily.

    A node built from ``None`` is the *unknown* node: any value is allowed there, nothing about it
    is known (lists are atomic, maps granular).  ``property()``/``items()`` of the unknown node and
    of nodes preserving unknown fields return the unknown node, so callers can walk any path.

    Schemas never change once built, and every write walks them several times (pruning,
    defaulting, validation, field sets): children and the answers of the accessors below are
    computed once per node and memoized.
    """

    __slots__ = ("_defs", "_kids", "_memo", "_props", "_raw")

    def __init__(self, raw: Mapping[str, Any] | None, defs: Mapping[str, JsonDict] | None = None):
        self._defs: Mapping[str, JsonDict] = defs or {}
        self._raw: JsonDict | None = _resolve(raw, self._defs) if raw is not None else None
        self._kids: dict[int, SchemaNode] = {}
        self._props: dict[str, SchemaNode] = {}
        self._memo: dict[str, Any] = {}

    # --- identity -------------------------------------------------------------------------------
    @property
    def raw(self) -> JsonDict:
        """The resolved schema dict (empty for the unknown node)."""
        return self._raw or {}

    @property
    def known(self) -> bool:
        return self._raw is not None

    def _child(self, raw: Mapping[str, Any] | None) -> SchemaNode:
        """The node of a sub-schema, resolved once: schemas never change, walks repeat."""
        if raw is None:
            return _UNKNOWN_NODE
        kid = self._kids.get(id(raw))
        if kid is None:
            kid = self._kids[id(raw)] = SchemaNode(raw, self._defs)
        return kid

    # --- types ----------------------------------------------------------------------------------
    @property
    def types(self) -> frozenset[str]:
        """JSON types allowed here, without ``null``; empty means unconstrained."""
        memo = self._memo
        if "types" in memo:
            return memo["types"]  # type: ignore[no-any-return]
        raw = self.raw
        declared = raw.get("type")
        if isinstance(declared, str):
            found = {declared}
        elif isinstance(declared, list):
            found = {t for t in declared if isinstance(t, str)}
        else:
            found = set()
        for alternative in raw.get("oneOf", []) + raw.get("anyOf", []):
            found |= self._child(alternative).types
        found.discard("null")
        if raw.get("x-kubernetes-int-or-string"):
            found |= {"integer", "string"}
        memo["types"] = result = frozenset(found)
        return result

    @property
    def nullable(self) -> bool:
        raw = self.raw
        declared = raw.get("type")
        return bool(raw.get("nullable")) or (isinstance(declared, list) and "null" in declared)

    @property
    def is_object(self) -> bool:
        return "object" in self.types or "properties" in self.raw

    @property
    def is_array(self) -> bool:
        return "array" in self.types or "items" in self.raw

    # --- structure ------------------------------------------------------------------------------
    @property
    def properties(self) -> dict[str, SchemaNode]:
        """The declared properties by name (a fresh dict, in the schema's order)."""
        memo = self._memo
        found = memo.get("properties")
        if found is None:
            found = memo["properties"] = {
                name: self._child(sub) for name, sub in self.raw.get("properties", {}).items()
            }
        return dict(found)

    @property
    def additional_properties(self) -> SchemaNode | None:
        """The schema of map values, or None when the object has fixed properties only."""
        memo = self._memo
        if "additional" in memo:
            return memo["additional"]  # type: ignore[no-any-return]
        extra = self.raw.get("additionalProperties")
        found: SchemaNode | None = None
        if isinstance(extra, dict):
            found = self._child(extra)
        elif extra is True:
            found = _UNKNOWN_NODE
        memo["additional"] = found
        return found

    @property
    def preserve_unknown_fields(self) -> bool:
        return bool(self.raw.get("x-kubernetes-preserve-unknown-fields"))

    @property
    def embedded_resource(self) -> bool:
        return bool(self.raw.get("x-kubernetes-embedded-resource"))

    @property
    def int_or_string(self) -> bool:
        return bool(self.raw.get("x-kubernetes-int-or-string")) or self.types == {
            "integer",
            "string",
        }

    def has_property(self, name: str) -> bool:
        return name in self.raw.get("properties", {})

    def property(self, name: str) -> SchemaNode:
        """The schema of field ``name``; the unknown node when nothing describes it."""
        kid = self._props.get(name)
        if kid is not None:
            return kid
        props = self.raw.get("properties", {})
        if name in props:
            # only declared names are remembered: map keys (labels, data) are unbounded
            kid = self._props[name] = self._child(props[name])
            return kid
        extra = self.additional_properties
        if extra is not None:
            return extra
        return _UNKNOWN_NODE

    def items(self) -> SchemaNode:
        memo = self._memo
        found = memo.get("items")
        if found is None:
            raw_items = self.raw.get("items")
            found = memo["items"] = (
                self._child(raw_items) if isinstance(raw_items, dict) else _UNKNOWN_NODE
            )
        return found

    # --- merge semantics ------------------------------------------------------------------------
    @builtins.property
    def list_type(self) -> str:
        """``atomic``, ``set`` or ``map``; unannotated lists are atomic, as in the apiserver."""
        memo = self._memo
        found = memo.get("list_type")
        if found is None:
            declared = self.raw.get("x-kubernetes-list-type")
            if declared in ("atomic", "set", "map"):
                found = str(declared)
            elif self.patch_merge_key:
                found = "map"
            else:
                found = "atomic"
            memo["list_type"] = found
        return found

    @builtins.property
    def list_map_keys(self) -> tuple[str, ...]:
        memo = self._memo
        found = memo.get("list_map_keys")
        if found is None:
            keys = self.raw.get("x-kubernetes-list-map-keys")
            if isinstance(keys, list) and keys:
                found = tuple(str(k) for k in keys)
            else:
                merge_key = self.patch_merge_key
                found = (merge_key,) if merge_key else ()
            memo["list_map_keys"] = found
        return found

    @builtins.property
    def keyed_lists_below(self) -> bool:
        """Whether a list keyed by fields (a list-map) is here or anywhere below.

        Only such lists can fail to turn into field sets (an item without its key).  Walks
        what :meth:`property` and :meth:`items` can reach, to a depth of
        :data:`_KEYED_LISTS_DEPTH`: deeper (a recursive schema such as a CRD's) counts as yes.
        """
        return self._keyed_lists_below(_KEYED_LISTS_DEPTH)

    def _keyed_lists_below(self, depth: int) -> bool:
        if self._raw is None:
            return False  # the unknown node: every list below it is atomic
        memo = self._memo
        found = memo.get("keyed_lists_below")
        if found is not None:
            return found  # type: ignore[no-any-return]
        if depth == 0:
            return True  # too deep to tell: a yes is always safe
        children = [*self.properties.values(), self.items()]
        if self.additional_properties is not None:
            children.append(self.additional_properties)
        found = (self.list_type == "map" and bool(self.list_map_keys)) or any(
            child._keyed_lists_below(depth - 1) for child in children
        )
        memo["keyed_lists_below"] = found
        return found

    @builtins.property
    def map_type(self) -> str:
        """``granular`` (default) or ``atomic`` for objects and maps."""
        declared = self.raw.get("x-kubernetes-map-type")
        return "atomic" if declared == "atomic" else "granular"

    @builtins.property
    def patch_strategy(self) -> frozenset[str]:
        """Strategic-merge-patch strategies of this field (``merge``, ``retainKeys``, ...)."""
        declared = self.raw.get("x-kubernetes-patch-strategy")
        if not isinstance(declared, str):
            return frozenset()
        return frozenset(part.strip() for part in declared.split(",") if part.strip())

    @builtins.property
    def patch_merge_key(self) -> str | None:
        key = self.raw.get("x-kubernetes-patch-merge-key")
        return str(key) if isinstance(key, str) else None

    # --- values ---------------------------------------------------------------------------------
    @builtins.property
    def default(self) -> tuple[bool, Any]:
        """``(True, value)`` when the schema declares a default, else ``(False, None)``."""
        raw = self.raw
        return ("default" in raw, raw.get("default"))

    def at(self, path: list[str]) -> SchemaNode:
        """Walk object fields and (with ``"[]"``) list items."""
        node: SchemaNode = self
        for step in path:
            node = node.items() if step == "[]" else node.property(step)
        return node


_KEYED_LISTS_DEPTH = 24
"""How deep :attr:`SchemaNode.keyed_lists_below` looks (Kubernetes kinds nest about 12 deep)."""
UNKNOWN = SchemaNode(None)
_UNKNOWN_NODE = SchemaNode(None)
"""What ``property()`` and ``items()`` answer where nothing is known (never exposed mutated)."""


def _resolve(raw: Mapping[str, Any], defs: Mapping[str, JsonDict]) -> JsonDict:
    """Inline a ``$ref`` (sibling keys such as list metadata win over the target's)."""
    result = dict(raw)
    seen: set[str] = set()
    while "$ref" in result:
        ref = str(result.pop("$ref"))
        name = ref.split(_DEFS_PREFIX, 1)[-1]
        if name in seen or name not in defs:
            break
        seen.add(name)
        target = dict(defs[name])
        target.update(result)
        result = target
    return result


def _kubernetes_validate_dir() -> Path:
    """Where ``kubernetes-validate``'s data is, without importing it (and jsonschema)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "kubernetes-validate is not installed", name="kubernetes_validate"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _builtin_definitions() -> tuple[dict[str, JsonDict], dict[tuple[str, str, str], str]]:
    """Load ``_definitions.json`` once and index the top-level kinds by (group, version, kind)."""
    root = _kubernetes_validate_dir() / "kubernetes-json-schema"
    path = root / f"{KUBERNETES_SCHEMA_VERSION}-local" / "_definitions.json"
    defs: dict[str, JsonDict] = json.loads(path.read_text())["$defs"]
    by_gvk: dict[tuple[str, str, str], str] = {}
    for name, definition in defs.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            by_gvk[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return defs, by_gvk


def builtin_schema(group: str, version: str, kind: str) -> SchemaNode:
    """The schema of a built-in kind, or the unknown node when the kind is not in 1.31."""
    defs, by_gvk = _builtin_definitions()
    name = by_gvk.get((group, version, kind))
    if name is None:
        return UNKNOWN
    return SchemaNode(defs[name], defs)


@cache
def builtin_definition(name: str) -> SchemaNode:
    """A named definition, e.g. ``io.k8s.api.core.v1.PodTemplateSpec``.

    One node per name for the life of the process, so that its memoized children are reused
    (custom resources' metadata is pruned against ObjectMeta's on every write).
    """
    defs, _ = _builtin_definitions()
    return SchemaNode(defs.get(name), defs) if name in defs else UNKNOWN


def crd_schema(open_api_v3_schema: Mapping[str, Any] | None) -> SchemaNode:
    """The schema of a custom resource version, completed with the standard object fields.

    ``apiVersion``, ``kind`` and ``metadata`` are always known fields of a custom resource, and
    metadata follows the built-in ObjectMeta rules (ownerReferences keyed by uid, and so on).
    """
    defs, _ = _builtin_definitions()
    raw: JsonDict = dict(open_api_v3_schema or {"type": "object"})
    properties = dict(raw.get("properties", {}))
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {
        "$ref": _DEFS_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    raw["properties"] = properties
    raw.setdefault("type", "object")
    return SchemaNode(raw, defs)
