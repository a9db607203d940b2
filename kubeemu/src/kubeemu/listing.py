"""Lists, selections and Tables: what a list, a deletecollection or a watch is made of.

A :class:`Selection` comes from a request's namespace, ``labelSelector`` and ``fieldSelector``
(parsed by ``kubeemu.selectors``) and picks objects from the store; :func:`list_response`
pages a selection (``limit``/``continue`` tokens, ``remainingItemCount``, 410 for a token
older than the compaction floor) into a ``<Kind>List`` or a Table (``kubeemu.table``).
``kubeemu.server`` serves lists with it, ``kubeemu.watch`` filters its events with it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from kubeemu import errors, printers, selectors, table
from kubeemu.emulator import Emulator, Target
from kubeemu.registry import ResourceType
from kubeemu.wire import json_response, wants_table

JsonDict = dict[str, Any]

LATEST = -1  # a continue token's resourceVersion meaning "the current state" (as etcd3's)

_TOO_OLD_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list "
    "result. You can start a new list without the continue parameter, or use the "
    "continue token in this response to retrieve the remainder of the results. "
    "Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was "
    "returned and now may show up in the list."
)


class Selection:
    """Namespace, label and field selection of one request (a named watch adds its name)."""

    def __init__(self, request: web.Request, target: Target):
        rtype = target.rtype
        self.namespace = target.namespace if rtype.namespaced and target.namespace else None
        label_text = request.query.get("labelSelector", "")
        field_text = request.query.get("fieldSelector", "")
        if target.name:
            name_clause = f"metadata.name={target.name}"
            field_text = f"{field_text},{name_clause}" if field_text else name_clause
        self.labels = selectors.parse_label_selector(label_text) if label_text else None
        self.fields = (
            selectors.parse_field_selector(
                field_text,
                allowed=selectors.supported_field_labels(rtype.group, rtype.resource),
                # built-ins word an unsupported label by their conversion; CRs generically
                group=None if rtype.is_custom else rtype.group,
                resource=None if rtype.is_custom else rtype.resource,
            )
            if field_text
            else None
        )

    def matches(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels.matches(meta.get("labels") or {}):
            return False
        return self.fields is None or self.fields.matches(obj)


def select(emulator: Emulator, request: web.Request, target: Target) -> list[JsonDict]:
    """The stored objects a list or deletecollection request selects, in list order."""
    selection = Selection(request, target)
    stored = emulator.store.list(target.rtype.group_resource, selection.namespace)
    return [obj for obj in stored if selection.matches(obj)]


def list_response(emulator: Emulator, request: web.Request, target: Target) -> web.Response:
    """A page of the selected objects as a ``<Kind>List``, or as a Table when asked."""
    rtype = target.rtype
    store = emulator.store
    selection = Selection(request, target)
    stored = store.list(rtype.group_resource, selection.namespace)
    selected = [obj for obj in stored if selection.matches(obj)]
    list_rv = store.revision
    token = request.query.get("continue")
    if token:
        list_rv, start_after = _decode_continue(token)
        if list_rv == LATEST:
            list_rv = store.revision
        elif list_rv < store.oldest_watchable:
            # the apiserver offers a token that continues, inconsistently, at the latest state
            raise errors.expired(
                _TOO_OLD_CONTINUE, {"continue": _encode_continue(LATEST, start_after)}
            )
        selected = [o for o in selected if _sort_key(o) > start_after]
    metadata: JsonDict = {"resourceVersion": str(list_rv)}
    limit = int(request.query.get("limit") or 0)
    if limit > 0 and len(selected) > limit:
        remaining = len(selected) - limit
        selected = selected[:limit]
        metadata["continue"] = _encode_continue(list_rv, _sort_key(selected[-1]))
        if selection.labels is None and selection.fields is None:
            # counted only without selectors: kube-apiserver cannot know how many would match
            metadata["remainingItemCount"] = remaining
    if wants_table(request):
        objects = [emulator.api.present(rtype, obj) for obj in selected]
        include = request.query.get("includeObject", "Metadata")
        return json_response(table_of(rtype, objects, metadata, include))
    if rtype.is_custom:
        # an unstructured list keeps the empty token its storage sets (SetContinue(""))
        metadata.setdefault("continue", "")
    return json_response(list_body(emulator, rtype, selected, metadata))


def list_body(
    emulator: Emulator, rtype: ResourceType, stored: list[JsonDict], metadata: JsonDict
) -> JsonDict:
    """A ``<Kind>List`` of stored objects, served at ``rtype``'s version."""
    items = [emulator.api.present(rtype, o) for o in stored]
    if not rtype.is_custom:
        # items of a built-in list are encoded without their TypeMeta (typed clients see
        # kind=None); custom resources are unstructured and keep apiVersion and kind
        for item in items:
            del item["apiVersion"], item["kind"]
    return {
        "kind": rtype.list_kind,
        "apiVersion": rtype.group_version,
        "metadata": metadata,
        "items": items,
    }


def table_of(
    rtype: ResourceType, objects: list[JsonDict], metadata: JsonDict, include_object: str
) -> JsonDict:
    """A Table of served objects with the kind's columns (a CRD's printer columns, if any)."""
    columns: list[Any] | None
    if rtype.is_custom:
        columns = list(rtype.printer_columns) or None
    else:
        columns = printers.builtin_columns(rtype.group, rtype.resource)
    return table.to_table(
        objects, columns=columns, list_metadata=metadata, include_object=include_object
    )


def _sort_key(obj: JsonDict) -> tuple[str, str]:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


_URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _encode_continue(resource_version: int, last: tuple[str, str]) -> str:
    """An opaque token, unpadded URL-safe base64 of JSON as kube-apiserver's (another layout)."""
    payload = json.dumps({"v": "emu/1", "rv": resource_version, "start": list(last)})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _base64_error_offset(token: str) -> int | None:
    """Where Go's ``base64.RawURLEncoding`` stops decoding ``token`` (None: it decodes)."""
    for offset, character in enumerate(token):
        if character not in _URL_ALPHABET:
            return offset
    if len(token) % 4 == 1:  # a lone last character carries fewer than 8 bits
        return len(token) - 1
    return None


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """The list's version and last key of a token; 400 with kube-apiserver's messages if bad."""
    offset = _base64_error_offset(token)
    if offset is not None:
        raise errors.bad_request(
            "invalid continue token: continue key is not valid: "
            f"illegal base64 data at input byte {offset}"
        )
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(payload["rv"]), (str(payload["start"][0]), str(payload["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise errors.bad_request(
            "invalid continue token: continue key is not valid: "
            "server does not recognize this encoded version"
        ) from None
