"""Field ownership (``metadata.managedFields``) and server-side apply, as pure functions.

Data comes from the request handlers: the live object from the store, the body of a write (POST,
PUT, PATCH) or of an apply patch, the field manager name, and the kind's :class:`SchemaNode`
(list types, list-map keys and map types drive how fields are identified and merged).  Results go
back to the handlers: the object to persist with its ``managedFields`` rewritten, or an
:class:`ApiError` (409 apply conflicts, 400/500 malformed apply bodies).

The model follows Kubernetes' structured-merge-diff (SMD) v4 and the apiserver's field manager
chain (``k8s.io/apimachinery/pkg/util/managedfields/internal``) as of 1.31; field sets, their
``FieldsV1`` encoding and the comparison of two objects are in ``kubeemu.fieldsets``:

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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, NamedTuple

from kubeemu.clone import clone
from kubeemu.errors import ApiError, bad_request
from kubeemu.fieldsets import (
    ABSENT,
    UNTRACKED_PATHS,
    FieldSet,
    JsonDict,
    Path,
    PathElement,
    TypedConversionError,
    compare_objects,
    configuration_fields,
    drop_prefixes,
    equal_objects,
    field_path,
    format_path,
    from_fields_v1,
    index_items,
    item_element,
    item_elements,
    iteration_key,
    shared_fields_v1,
    without_managed_fields,
    zero_object,
)
from kubeemu.goformat import go_json, go_quote
from kubeemu.schema import SchemaNode

APPLY: Final = "Apply"
UPDATE: Final = "Update"
BEFORE_FIRST_APPLY: Final = "before-first-apply"


def check_apply_configuration(
    applied: Mapping[str, Any], schema: SchemaNode, api_version: str
) -> FieldSet:
    """Raise the apiserver's 500 when an apply configuration does not convert to the typed object.

    That is: an undeclared field (``.spec.foo: field not declared in schema``), a duplicate
    list-map key, a list-map item without its key.  Returns the configuration's fields, which
    :func:`server_side_apply` takes as ``configuration_fields`` while ``applied`` is unchanged.
    """
    try:
        return configuration_fields(without_managed_fields(applied), schema)
    except TypedConversionError as error:
        raise ApiError(
            500,
            "",  # a plain Go error: ErrorToAPIStatus gives StatusReasonUnknown
            f"failed to create typed patch object ({_object_label(applied, api_version)}): {error}",
        ) from None


# --- merge and prune (apply) ------------------------------------------------------------------


def _merge(live: Any, config: Any, node: SchemaNode, path: Path) -> Any:
    """SMD ``Merge``: the applied configuration over the live value."""
    if config is not None and not isinstance(config, dict | list):
        return config  # a scalar replaces whatever is there
    if live is ABSENT:
        return clone(config)
    if isinstance(config, dict):
        if not isinstance(live, dict) or node.map_type == "atomic" or (not live and not config):
            return clone(config)
        # merged in the configuration's order (the order errors surface in), laid out as
        # the live map with the new names after; each value is copied once
        merged_values = {
            name: _merge(live.get(name, ABSENT), value, node.property(name), (*path, ("f", name)))
            for name, value in config.items()
        }
        merged = {
            name: merged_values[name] if name in merged_values else clone(value)
            for name, value in live.items()
        }
        for name, value in merged_values.items():
            merged.setdefault(name, value)
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
    live_elements = item_elements(live, node, path)
    config_elements = item_elements(config, node, path)
    live_items = index_items(live, node, path)
    config_items = index_items(config, node, path)
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
            if item_element(item, node) == element:
                return index
        except TypedConversionError:
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
        # shared, not copied: fieldsV1 objects are never changed in place (stored objects
        # are not, and every write builds its managedFields entries anew)
        entry["fieldsV1"] = self.encoded or shared_fields_v1(self.fields)
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
        # ``encoded`` is not copied: entries only read it, and to_json copies it out
        managed[key] = _Entry(
            key, api_version, str(time) if time else None, from_fields_v1(encoded), encoded
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
        return [field_path("spec")]
    if subresource:
        return []
    has_status = schema.has_property("status") if status_subresource is None else status_subresource
    return [field_path("status")] if has_status else []


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
    ordered = sorted(conflicts, key=lambda c: (c[0].identifier(), iteration_key(c[1])))
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
    checked_fields: FieldSet | None = None,
) -> JsonDict:
    """The object after ``manager`` applies ``applied`` to ``live`` (``None``: create).

    ``checked_fields``: what :func:`check_apply_configuration` returned for this very
    ``applied``, when the caller checked it (they are not computed again).

    ``status_subresource`` says whether the kind has a status subresource (``None``: it has one
    when the schema declares ``status``; pass ``False`` for a CRD without the subresource).
    Raises ``ApiError`` 409 on conflicts without ``force``, 400 when the configuration carries
    ``metadata.managedFields``, 500 when a list-map item lacks a key (upstream wording).
    """
    applied_metadata = applied.get("metadata")
    if isinstance(applied_metadata, dict) and applied_metadata.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    config = without_managed_fields(applied)
    ignored = _reset_prefixes(schema, subresource, status_subresource)
    try:
        if checked_fields is None:
            checked_fields = configuration_fields(config, schema)
        applied_fields = drop_prefixes(checked_fields - UNTRACKED_PATHS, ignored)
    except TypedConversionError as error:
        raise ApiError(
            500,
            "",  # a plain Go error: ErrorToAPIStatus gives StatusReasonUnknown
            f"failed to create typed patch object ({_object_label(config, api_version)}): {error}",
        ) from None

    base = without_managed_fields(live) if live is not None else {}
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
        comparison = compare_objects(base, result, schema).without(ignored)
    except TypedConversionError as error:
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
    object_changed = live is None or not equal_objects(base, result)
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
    comparison = compare_objects(zero_object(schema), base, schema).without(ignored)
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
    copy: bool = True,
) -> JsonDict:
    """``new`` with the ownership changes of a non-apply write by ``manager`` recorded.

    ``old`` is ``None`` on create.  Fields added or changed go to ``manager``'s Update entry and
    leave every other entry (an Update always wins); removed fields leave every entry; the time of
    the entry changes only when the write gave it fields.  As upstream, an existing object with no
    tracked fields (or a write sending ``managedFields: []``) stays untracked: the result has no
    ``managedFields``; so does a write whose object the schema cannot key (upstream
    ``UpdateNoErrors`` drops managedFields on error).  The result is a copy of ``new``; without
    ``copy`` it shares ``new``'s contents and rewrites its ``metadata`` in place (for a caller
    that gives ``new`` up).
    """
    result = clone(dict(new)) if copy else dict(new)
    managed = _tracking_base(old, new, subresource)
    if old is not None and not managed:
        return _with_managed_fields(result, {})
    ignored = _reset_prefixes(schema, subresource, status_subresource)
    before = without_managed_fields(old) if old is not None else zero_object(schema)
    try:
        comparison = compare_objects(before, without_managed_fields(new), schema).without(ignored)
    except TypedConversionError:
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
