r"""Decode the Kubernetes protobuf request bodies that real clients send to kubeemu.

Where the data comes from: the raw body of a POST/PUT/DELETE whose Content-Type is
``application/vnd.kubernetes.protobuf`` — client-go's typed clientset uses it, and helm
stores its releases as Secrets through that clientset. Where it goes: a JSON-shaped dict
handed to the same admission path as every JSON body.

Why hand-written: decoding needs the message layouts of ``k8s.io/api``'s
``generated.proto``, which no package on PyPI ships; the wire format itself is small
(varints and length-delimited fields). Only the messages that clients actually send
typed are described here — Secret, ConfigMap, DeleteOptions and ObjectMeta with its
parts; any other kind is answered with 415 so a test learns at once what is missing.

The envelope (``k8s\x00`` + ``runtime.Unknown``) is documented in the Kubernetes API
concepts page, "Protobuf encoding".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeemu import errors

JsonDict = dict[str, Any]
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """The body is not well-formed protobuf for the message it claims to be."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == _LENGTH:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    if pos != len(data):
        raise ProtobufError("truncated message")


Decoder = Callable[[int | bytes], Any]


def _string(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited string")
    return value.decode("utf-8")


def _base64(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected bytes")
    return base64.b64encode(value).decode("ascii")


def _integer(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ProtobufError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value


def _boolean(value: int | bytes) -> bool:
    return bool(_integer(value))


def _raw_json(value: int | bytes) -> Any:
    """``FieldsV1`` carries its JSON in field 1."""
    if not isinstance(value, bytes):
        raise ProtobufError("expected a message")
    for number, _, raw in _fields(value):
        if number == 1 and isinstance(raw, bytes):
            return json.loads(raw)
    return {}


def _time(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a Time message")
    seconds = 0
    for number, _, raw in _fields(value):
        if number == 1:
            seconds = _integer(raw)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Field:
    """One protobuf field of a hand-described message: its name and how to decode it."""

    name: str
    decode: Decoder
    repeated: bool = False
    map_value: Decoder | None = None  # set for map<string, X> fields


def _message(layout: dict[int, Field]) -> Decoder:
    def decode(value: int | bytes) -> JsonDict:
        if not isinstance(value, bytes):
            raise ProtobufError("expected a message")
        out: JsonDict = {}
        for number, _, raw in _fields(value):
            field = layout.get(number)
            if field is None:
                continue  # unknown fields are skipped, as protobuf readers do
            if field.map_value is not None:
                key, item = _map_entry(raw, field.map_value)
                out.setdefault(field.name, {})[key] = item
            elif field.repeated:
                out.setdefault(field.name, []).append(field.decode(raw))
            else:
                out[field.name] = field.decode(raw)
        return out

    return decode


def _map_entry(value: int | bytes, decode_value: Decoder) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, item = "", decode_value(b"")
    for number, _, raw in _fields(value):
        if number == 1:
            key = _string(raw)
        elif number == 2:
            item = decode_value(raw)
    return key, item


def _map(name: str, decode_value: Decoder) -> Field:
    return Field(name, _string, map_value=decode_value)


_OWNER_REFERENCE = _message(
    {
        1: Field("kind", _string),
        3: Field("name", _string),
        4: Field("uid", _string),
        5: Field("apiVersion", _string),
        6: Field("controller", _boolean),
        7: Field("blockOwnerDeletion", _boolean),
    }
)

_MANAGED_FIELDS_ENTRY = _message(
    {
        1: Field("manager", _string),
        2: Field("operation", _string),
        3: Field("apiVersion", _string),
        4: Field("time", _time),
        6: Field("fieldsType", _string),
        7: Field("fieldsV1", _raw_json),
        8: Field("subresource", _string),
    }
)

_OBJECT_META = _message(
    {
        1: Field("name", _string),
        2: Field("generateName", _string),
        3: Field("namespace", _string),
        5: Field("uid", _string),
        6: Field("resourceVersion", _string),
        7: Field("generation", _integer),
        8: Field("creationTimestamp", _time),
        9: Field("deletionTimestamp", _time),
        10: Field("deletionGracePeriodSeconds", _integer),
        11: _map("labels", _string),
        12: _map("annotations", _string),
        13: Field("ownerReferences", _OWNER_REFERENCE, repeated=True),
        14: Field("finalizers", _string, repeated=True),
        17: Field("managedFields", _MANAGED_FIELDS_ENTRY, repeated=True),
    }
)

_SECRET = _message(
    {
        1: Field("metadata", _OBJECT_META),
        2: _map("data", _base64),
        3: Field("type", _string),
        4: _map("stringData", _string),
        5: Field("immutable", _boolean),
    }
)

_CONFIG_MAP = _message(
    {
        1: Field("metadata", _OBJECT_META),
        2: _map("data", _string),
        3: _map("binaryData", _base64),
        4: Field("immutable", _boolean),
    }
)

_PRECONDITIONS = _message({1: Field("uid", _string), 2: Field("resourceVersion", _string)})

_DELETE_OPTIONS = _message(
    {
        1: Field("gracePeriodSeconds", _integer),
        2: Field("preconditions", _PRECONDITIONS),
        3: Field("orphanDependents", _boolean),
        4: Field("propagationPolicy", _string),
        5: Field("dryRun", _string, repeated=True),
    }
)

_KINDS: dict[tuple[str, str], Decoder] = {
    ("v1", "Secret"): _SECRET,
    ("v1", "ConfigMap"): _CONFIG_MAP,
    ("v1", "DeleteOptions"): _DELETE_OPTIONS,
    ("meta.k8s.io/v1", "DeleteOptions"): _DELETE_OPTIONS,
}

_SUPPORTED = "Secret, ConfigMap and DeleteOptions"
_TYPE_META = _message({1: Field("apiVersion", _string), 2: Field("kind", _string)})


def decode(body: bytes) -> JsonDict:
    """Decode one protobuf-encoded object into its JSON form, or raise an ApiError."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body does not start with the k8s magic prefix")
    try:
        envelope: JsonDict = {}
        raw = b""
        for number, _, value in _fields(body[len(MAGIC) :]):
            if number == 1:
                envelope = _TYPE_META(value)
            elif number == 2 and isinstance(value, bytes):
                raw = value
        key = (envelope.get("apiVersion", ""), envelope.get("kind", ""))
        decoder = _KINDS.get(key)
        if decoder is None:
            # a real apiserver decodes every built-in; kubeemu only what clients here send
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                f"kubeemu decodes protobuf request bodies only for {_SUPPORTED}; "
                f"got {key[0]}, Kind={key[1]} (send it as application/json)",
            )
        decoded: JsonDict = decoder(raw)
    except (ProtobufError, UnicodeDecodeError, ValueError) as exc:
        raise errors.bad_request(f"error decoding the protobuf request body: {exc}") from None
    decoded["apiVersion"], decoded["kind"] = key
    return decoded
