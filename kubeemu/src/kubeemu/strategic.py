"""Kubernetes strategic merge patch of built-in objects, as a pure function over JSON dicts.

``kubeemu.patch`` dispatches ``application/strategic-merge-patch+json`` bodies here with the
stored object and its kind's :class:`~kubeemu.schema.SchemaNode`, whose
``x-kubernetes-patch-strategy`` and ``x-kubernetes-patch-merge-key`` drive the merge.  Out comes
the patched object, or the :class:`~kubeemu.errors.ApiError` the apiserver sends.  Written after
``k8s.io/apimachinery/pkg/util/strategicpatch`` (``mergeMap``/``mergeSlice``), including the
directives (``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList``) and the element-order
rules of ``$setElementOrder`` and of plain merge lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any

from kubeemu import errors
from kubeemu.clone import clone
from kubeemu.errors import ApiError
from kubeemu.goformat import json_type_name
from kubeemu.schema import SchemaNode

JsonDict = dict[str, Any]

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ELEMENT_ORDER = "$setElementOrder"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"

# Messages of k8s.io/apimachinery/pkg/util/mergepatch, which the apiserver sends verbatim.
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_NO_LIST_OF_LISTS = "lists of lists are not supported"


class _PatchError(Exception):
    """A strategicpatch error; ``code`` is the HTTP status the apiserver maps it to."""

    def __init__(self, message: str, code: int = 500):
        super().__init__(message)
        self.message = message
        self.code = code


def apply_strategic_merge_patch(target: JsonDict, patch: Any, schema: SchemaNode) -> JsonDict:
    """Kubernetes strategic merge patch of a built-in object.

    Mirrors ``strategicpatch.StrategicMergeMapPatch`` with the apiserver's error mapping: malformed
    directives are 400 BadRequest, lists of lists 422, and the remaining merge errors (a missing
    merge key, an unknown ``$patch`` value…) the apiserver's untyped 500.
    """
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {json_type_name(patch)} into Go value of type "
            "map[string]interface {}"
        )
    try:
        return _merge_map(clone(target), clone(patch), schema)
    except _PatchError as failure:
        raise _smp_error(failure) from failure


def _smp_error(failure: _PatchError) -> ApiError:
    if failure.code == 400:
        return errors.bad_request(failure.message)
    if failure.code == 422:
        return errors.generic_unprocessable(failure.message)  # same generic 422 as for JSON patch
    # ErrorToAPIStatus on a plain Go error: code 500, StatusReasonUnknown (the empty reason).
    return ApiError(500, "", failure.message)


# --- maps ---------------------------------------------------------------------------------------
def _merge_map(original: JsonDict, patch: JsonDict, schema: SchemaNode) -> JsonDict:
    """Merge ``patch`` into ``original`` (both owned by the caller, and consumed)."""
    if _DIRECTIVE in patch:
        return _map_with_directive(patch, schema)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((_directive_field(key, _DELETE_FROM_PRIMITIVE_LIST), value))
        else:
            _merge_field(original, key, value, schema.property(key))
    for field, to_delete in deletions:
        _delete_from_primitive_list(original, field, to_delete)
    return original


def _map_with_directive(patch: JsonDict, schema: SchemaNode) -> JsonDict:
    directive = patch[_DIRECTIVE]
    if directive == "replace":
        rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
        return _merge_map({}, rest, schema)
    if directive == "delete":
        return {}
    raise _PatchError(f"unknown patch type: {_go_format(directive)} in map: {_go_format(patch)}")


def _merge_field(original: JsonDict, key: str, value: Any, schema: SchemaNode) -> None:
    if value is None:
        original.pop(key, None)
        return
    strategy = _list_or_map_strategy(schema)
    current = original.get(key)
    if isinstance(current, dict) and isinstance(value, dict):
        original[key] = (
            _fresh_value(value, schema)
            if strategy == "replace"
            else _merge_map(current, value, schema)
        )
    elif isinstance(current, list) and isinstance(value, list):
        original[key] = _merge_list_field(current, value, schema)
    else:  # absent, or of another JSON type: the patch value wins
        original[key] = _fresh_value(value, schema)


def _list_or_map_strategy(schema: SchemaNode) -> str:
    """``merge``, ``replace`` or ``""``: the field's strategy once ``retainKeys`` is set aside."""
    strategies = schema.patch_strategy - {"retainKeys"}
    if len(strategies) > 1:
        raise _PatchError(f"unexpected patch strategy: {','.join(sorted(strategies))}")
    return next(iter(strategies), "")


def _fresh_value(value: Any, schema: SchemaNode) -> Any:
    """A patch value landing where nothing mergeable exists: nulls and directives are dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        return _merge_list_field([], value, schema)
    return value


def _apply_retain_keys(original: JsonDict, patch: JsonDict) -> None:
    """``$retainKeys``: drop every key of ``original`` not listed (after validating the patch)."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _PatchError(_BAD_RETAIN_KEYS, 400)
    allowed = {name for name in retained if isinstance(name, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in allowed:
            raise _PatchError(_BAD_RETAIN_KEYS, 400)
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _directive_field(key: str, prefix: str) -> str:
    """``$setElementOrder/containers`` → ``containers``."""
    head, slash, field = key.partition("/")
    if head != prefix or not slash:
        bad = (
            _BAD_PRIMITIVE_LIST if prefix == _DELETE_FROM_PRIMITIVE_LIST else _BAD_SET_ELEMENT_ORDER
        )
        raise _PatchError(bad, 400)
    return field


def _delete_from_primitive_list(original: JsonDict, field: str, to_delete: Any) -> None:
    """``$deleteFromPrimitiveList/<field>``: remove these values from a list of scalars."""
    if to_delete is None:
        original.pop(field, None)
        return
    if not isinstance(to_delete, list):
        raise _PatchError(_bad_arg_type("slice", to_delete))
    current = original.get(field)
    if not isinstance(current, list):
        return
    unwanted = {_scalar_identity(value) for value in to_delete if not isinstance(value, dict)}
    original[field] = [
        item for item in current if isinstance(item, dict) or _scalar_identity(item) not in unwanted
    ]


# --- $setElementOrder ---------------------------------------------------------------------------
def _merge_ordered_lists(original: JsonDict, patch: JsonDict, schema: SchemaNode) -> None:
    """Merge each list that has a ``$setElementOrder/<field>`` and put it in that order.

    The directive and the list it orders are removed from ``patch`` so the plain field loop does
    not see them again (``mergePatchIntoOriginal`` upstream).
    """
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        field = _directive_field(key, _SET_ELEMENT_ORDER)
        if not isinstance(order, list):
            raise _PatchError(_bad_arg_type("slice", order))
        field_schema = schema.property(field)
        merge_key = field_schema.patch_merge_key or ""
        current = original.get(field)
        patch_list = patch.pop(field, None)
        if current is not None and not isinstance(current, list):
            raise _PatchError(_bad_arg_type("slice", current))
        if patch_list is not None and not isinstance(patch_list, list):
            raise _PatchError(_bad_arg_type("slice", patch_list))
        if current is None and patch_list is None:
            continue
        _check_patch_follows_order(patch_list or [], order, merge_key)
        if patch_list is None:
            merged = list(current or [])
        else:
            merged = _merge_list_field(list(current or []), patch_list, field_schema)
        identity = _identity_function(merged + order, merge_key)
        original[field] = _normalize_element_order(merged, order, current or [], identity)


def _check_patch_follows_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch's items must appear in ``$setElementOrder`` in the same relative order."""
    if not patch_list or not order:
        return
    kept = [item for item in patch_list if not (isinstance(item, dict) and _DIRECTIVE in item)]
    identity = _identity_function(kept + order, merge_key)
    position = 0
    for item in kept:
        wanted = identity(item)
        while position < len(order) and identity(order[position]) != wanted:
            position += 1
        if position == len(order):
            raise _PatchError(
                f"The order in patch list:\n{_go_format(patch_list)}\n doesn't match "
                f"{_SET_ELEMENT_ORDER} list:\n{_go_format(order)}\n"
            )
        position += 1


# --- lists --------------------------------------------------------------------------------------
def _merge_list_field(current: list[Any], patch_list: list[Any], schema: SchemaNode) -> list[Any]:
    """A list field: merged when its strategy is ``merge``, replaced otherwise."""
    if _list_or_map_strategy(schema) != "merge":
        return [_fresh_value(item, schema.items()) for item in patch_list]
    return _merge_list(current, patch_list, schema.items(), schema.patch_merge_key or "")


def _merge_list(
    original: list[Any], patch: list[Any], item_schema: SchemaNode, merge_key: str
) -> list[Any]:
    """``mergeSlice``: union of scalars, or merge of maps by ``merge_key``, then reorder."""
    if not original and not patch:
        return original
    if _element_kind(original + patch) == "map":
        if not merge_key:
            raise _PatchError("cannot merge lists without merge key for type map")
        original, patch = _apply_list_directives(original, patch, item_schema, merge_key)
        merged = _merge_maps_by_key(original, patch, item_schema, merge_key)
    else:
        merged = _unique_scalars(original + patch)
    identity = _identity_function(merged + patch, merge_key)
    return _normalize_element_order(merged, patch, original, identity)


def _element_kind(items: list[Any]) -> str:
    """``map`` or ``scalar``; lists of lists and mixed lists are rejected like upstream."""
    kinds = {json_type_name(item) if item is not None else "null" for item in items}
    if "array" in kinds:
        raise _PatchError(_NO_LIST_OF_LISTS, 422)
    if len(kinds) > 1:
        raise _PatchError(f"list element types are not identical: {_go_format(items)}")
    return "map" if kinds == {"object"} else "scalar"


def _apply_list_directives(
    original: list[Any], patch: list[Any], item_schema: SchemaNode, merge_key: str
) -> tuple[list[Any], list[Any]]:
    """``$patch`` items of a merge list: ``delete`` drops by key, ``replace`` replaces the list.

    Returns the (possibly reduced) original list and the patch items without directives; after a
    ``replace`` the original is the patch's items and nothing remains to merge.
    """
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _PatchError(_no_merge_key(item, merge_key))
            doomed = _scalar_identity(item[merge_key])
            original = [old for old in original if not _has_key_value(old, merge_key, doomed)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise _PatchError(
                f"unknown patch type: {_go_format(directive)} in map: {_go_format(item)}"
            )
    if replace:
        return [_merge_map({}, item, item_schema) for item in plain], []
    return original, plain


def _merge_maps_by_key(
    original: list[Any], patch: list[Any], item_schema: SchemaNode, merge_key: str
) -> list[Any]:
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _PatchError(_no_merge_key(item, merge_key))
        wanted = _scalar_identity(item[merge_key])
        for index, old in enumerate(merged):
            if _has_key_value(old, merge_key, wanted):
                merged[index] = _merge_map(old, item, item_schema)
                break
        else:
            merged.append(_merge_map({}, item, item_schema))
    return merged


def _has_key_value(item: Any, merge_key: str, wanted: Hashable) -> bool:
    return (
        isinstance(item, dict) and merge_key in item and _scalar_identity(item[merge_key]) == wanted
    )


def _unique_scalars(items: list[Any]) -> list[Any]:
    seen: set[Hashable] = set()
    unique: list[Any] = []
    for item in items:
        identity = _scalar_identity(item)
        if identity not in seen:
            seen.add(identity)
            unique.append(item)
    return unique


# --- element order ------------------------------------------------------------------------------
def _normalize_element_order(
    merged: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    identity: Callable[[Any], Hashable],
) -> list[Any]:
    """``normalizeElementOrder``: the order of a merged list, as the apiserver computes it.

    Items named by the patch (or by ``$setElementOrder``) take the patch's order; the other
    (server-only) items keep their order in the live list; the two runs are then interleaved,
    a server-only item going first only when it preceded the next patch item in the live list.
    So a brand-new item lands before the server-only items that follow it, as upstream does.
    """
    in_patch = {identity(item) for item in patch_order}
    patch_items = [item for item in merged if identity(item) in in_patch]
    server_only = [item for item in merged if identity(item) not in in_patch]
    patch_items = _sorted_by_position(patch_items, patch_order, identity)
    server_only = _sorted_by_position(server_only, server_order, identity)
    return _interleave(server_only, patch_items, server_order, identity)


def _positions(items: list[Any], identity: Callable[[Any], Hashable]) -> dict[Hashable, int]:
    positions: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        positions.setdefault(identity(item), index)
    return positions


def _sorted_by_position(
    items: list[Any], order: list[Any], identity: Callable[[Any], Hashable]
) -> list[Any]:
    """Stable sort by first position in ``order``; items missing from it keep their place last."""
    positions = _positions(order, identity)
    return sorted(items, key=lambda item: positions.get(identity(item), len(order)))


def _interleave(
    server_only: list[Any],
    patch_items: list[Any],
    server_order: list[Any],
    identity: Callable[[Any], Hashable],
) -> list[Any]:
    """``mergeSortedSlice``: insert the server-only items into the patch items."""
    positions = _positions(server_order, identity)
    result: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if right >= len(patch_items):
            result.append(server_only[left])
            left += 1
        elif left >= len(server_only):
            result.append(patch_items[right])
            right += 1
        else:
            left_at = positions.get(identity(server_only[left]))
            right_at = positions.get(identity(patch_items[right]))
            if left_at is not None and right_at is not None and left_at < right_at:
                result.append(server_only[left])
                left += 1
            else:
                result.append(patch_items[right])
                right += 1
    return result


# --- identities and messages --------------------------------------------------------------------
def _scalar_identity(value: Any) -> Hashable:
    """Go interface equality of JSON scalars: numbers compare by value, never equal to bools."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    return ("other", json.dumps(value, sort_keys=True))


def _identity_function(items: list[Any], merge_key: str) -> Callable[[Any], Hashable]:
    """How list items are told apart: by merge key value for maps, by value for scalars."""
    if merge_key and any(isinstance(item, dict) for item in items):
        return lambda item: _scalar_identity(
            item.get(merge_key) if isinstance(item, dict) else None
        )
    return _scalar_identity


def _no_merge_key(item: JsonDict, merge_key: str) -> str:
    return f"map: {_go_format(item)} does not contain declared merge key: {merge_key}"


def _bad_arg_type(expected: str, actual: Any) -> str:
    return f"expected a {expected}, but received a {_go_kind(actual)}"


def _go_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "invalid"
    return "float64"


def _go_format(value: Any) -> str:
    """Render a JSON value like Go's ``%v`` does for ``map[string]interface{}`` data."""
    if isinstance(value, dict):
        inner = " ".join(f"{key}:{_go_format(value[key])}" for key in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
