"""The non-apply PATCH types of the Kubernetes API, as pure functions over JSON dicts.

Input: the stored object (a JSON dict), the raw PATCH body with its ``Content-Type``, and the
:class:`~kubeemu.schema.SchemaNode` of the kind (whose ``x-kubernetes-patch-strategy`` and
``x-kubernetes-patch-merge-key`` drive strategic merge patch).  Output: the patched object, which
the HTTP layer then validates, defaults and stores; or an :class:`~kubeemu.errors.ApiError`
carrying the Status the real apiserver would send.

Three media types are handled here:

* ``application/merge-patch+json``: RFC 7386 JSON merge patch;
* ``application/json-patch+json``: RFC 6902 JSON patch, applied with the ``jsonpatch`` library;
* ``application/strategic-merge-patch+json``: Kubernetes strategic merge patch, in
  ``kubeemu.strategic``.

Server-side apply (``application/apply-patch+yaml``) lives elsewhere: :func:`apply_patch` raises
``ValueError`` for it so the caller routes the request to the apply engine.
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer

from kubeemu import errors, jsonio
from kubeemu.clone import clone
from kubeemu.goformat import json_type_name
from kubeemu.schema import SchemaNode
from kubeemu.strategic import apply_strategic_merge_patch

JsonDict = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


# ================================================================================================
# Dispatcher
# ================================================================================================
def media_type(content_type: str) -> str:
    """``application/json-patch+json; charset=utf-8`` → ``application/json-patch+json``."""
    return content_type.split(";", 1)[0].strip().lower()


def apply_patch(
    content_type: str,
    target: JsonDict,
    body: bytes,
    schema: SchemaNode,
    *,
    is_custom_resource: bool,
) -> JsonDict:
    """Parse a PATCH body and apply it to ``target`` according to its media type.

    Raises ``ValueError`` for apply patches (server-side apply is handled by another module) and
    :class:`ApiError` 415 for unknown media types or strategic merge patch on a custom resource.
    """
    kind = media_type(content_type)
    if kind == APPLY_PATCH:
        raise ValueError("apply patches are handled by server-side apply, not by kubeemu.patch")
    if kind == MERGE_PATCH:
        return apply_merge_patch(target, _decode_merge_patch_body(body))
    if kind == JSON_PATCH:
        return apply_json_patch(target, _decode_json_body(body))
    if kind == STRATEGIC_MERGE_PATCH and not is_custom_resource:
        return apply_strategic_merge_patch(target, _decode_json_body(body), schema)
    raise errors.unsupported_media_type()


def _decode_json_body(body: bytes) -> Any:
    """JSON-decode a body; a syntax error is a 400 worded like Go's ``encoding/json``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.bad_request("invalid character in JSON input: body is not UTF-8") from exc
    try:
        return jsonio.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.bad_request(_go_syntax_error(text, exc)) from exc


def _decode_merge_patch_body(body: bytes) -> Any:
    """The json-patch library behind the apiserver answers any unparsable merge patch so."""
    try:
        return jsonio.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.bad_request("Invalid JSON Patch") from exc


def _go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Word a Python JSON syntax error the way Go's ``encoding/json`` words it."""
    if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
        return "unexpected end of JSON input"
    char = _go_char(text[exc.pos])
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if exc.msg.startswith("Expecting ','"):
        where = (
            "object key:value pair" if _innermost_bracket(text, exc.pos) == "{" else "array element"
        )
        return f"invalid character {char} after {where}"
    if exc.msg.startswith("Extra data"):
        return f"invalid character {char} after top-level value"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    return f"invalid character {char} looking for beginning of value"


def _innermost_bracket(text: str, end: int) -> str:
    """The innermost ``{`` or ``[`` still open at ``end`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return f"'{char}'" if char.isprintable() else repr(char)


# ================================================================================================
# RFC 7386 JSON merge patch
# ================================================================================================
def apply_merge_patch(target: JsonDict, patch: Any) -> JsonDict:
    """RFC 7386: ``null`` deletes, objects merge recursively, anything else replaces."""
    if patch is None:
        raise errors.bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {json_type_name(patch)} into Go value of type "
            "map[string]interface {}"
        )
    return _merge_patch_object(target, patch)


def _merge_patch_object(target: Any, patch: JsonDict) -> JsonDict:
    result: JsonDict = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _merge_patch_object(result.get(key), value)
        else:
            result[key] = _without_null_fields(value)
    return result


def _without_null_fields(value: Any) -> Any:
    """A copy of a new value with null object fields dropped (as evanphx/json-patch prunes them)."""
    if isinstance(value, dict):
        return {k: _without_null_fields(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_null_fields(item) for item in value]
    return value


# ================================================================================================
# RFC 6902 JSON patch
# ================================================================================================
def apply_json_patch(target: JsonDict, operations: Any) -> JsonDict:
    """RFC 6902 via ``jsonpatch``.

    A body that does not decode as a list of operation objects is a 400, like the apiserver's
    ``jsonpatch.DecodePatch`` failure.  Everything that fails while applying (a malformed or
    unknown operation, a missing path, a failed ``test``) is the apiserver's generic 422; the
    precise reason is carried in ``details.causes[0].message``.
    """
    if operations is None:  # Go decodes ``null`` into an empty patch
        return clone(target)
    if not isinstance(operations, list):
        raise errors.bad_request(
            f"json: cannot unmarshal {json_type_name(operations)} into Go value of type "
            "jsonpatch.Patch"
        )
    for operation in operations:
        if not isinstance(operation, dict):
            raise errors.bad_request(
                f"json: cannot unmarshal {json_type_name(operation)} into Go value of type "
                "jsonpatch.Operation"
            )
    document: Any = clone(target)
    for index, operation in enumerate(operations):
        document = _apply_json_patch_operation(document, operation, index)
    if not isinstance(document, dict):
        raise errors.generic_unprocessable(
            f"json: cannot unmarshal {json_type_name(document)} into Go value of type "
            "map[string]interface {}"
        )
    return document


def _apply_json_patch_operation(document: Any, operation: JsonDict, index: int) -> Any:
    """Apply one operation, turning the library's exceptions into evanphx/json-patch-like texts."""
    op_name = str(operation.get("op", ""))
    path = str(operation.get("path", ""))
    try:
        return jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise errors.generic_unprocessable(f"testing value {path} failed: test failed") from exc
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.generic_unprocessable(f"operation {index} is malformed: {exc}") from exc
    except (
        jsonpatch.JsonPatchConflict,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        raise errors.generic_unprocessable(
            f'{op_name} operation does not apply: doc is missing path: "{path}": {exc}'
        ) from exc
